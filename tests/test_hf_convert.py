#!/usr/bin/env python3
"""test_hf_convert.py — scripts/convert_pytorch_bin.py makes a folder hf_load reads exactly.

Saves a small random BERT (scripts/torch_bert.py) with torch.save as a legacy BertForPreTraining-
style pytorch_model.bin: "bert."-prefixed names, an int64 position_ids buffer, the MLM decoder
weight tied to (sharing storage with) the word embedding, and NaN in one tensor. Checks that:
  - hf_load refuses the folder before conversion and names the converter;
  - the converter writes model.safetensors and refuses to overwrite it without --force;
  - test_hf_tool dump (hf_load) then gives every model tensor bit for bit, skipping the
    pre-training head and the buffer;
  - a corrupt .bin is refused with an error and leaves no file behind.
Exits 1 with the list of what failed.

Usage: test_hf_convert.py --tool build/tests/test_hf_tool
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
from torch_bert import TorchBert  # noqa: E402

CONVERTER = os.path.join(HERE, "..", "scripts", "convert_pytorch_bin.py")
CONFIG = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=20, max_position_embeddings=10, type_vocab_size=2,
              model_type="bert", architectures=["BertForPreTraining"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    def run(*cmd):
        return subprocess.run(list(cmd), capture_output=True, text=True)

    torch.manual_seed(0)
    model = TorchBert(CONFIG)
    state = {n: p.detach().clone() for n, p in model.hf_named_parameters()}
    state["bert.encoder.layer.0.output.dense.bias"][3] = float("nan")
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.bias"] = torch.zeros(CONFIG["vocab_size"])
    state["bert.embeddings.position_ids"] = torch.arange(CONFIG["max_position_embeddings"])[None]

    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        d = os.path.join(work, "legacy")
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(CONFIG, f)
        torch.save(state, os.path.join(d, "pytorch_model.bin"))

        r = run(args.tool, "load", d, "--num-labels", "0")
        check(r.returncode == 1 and "convert_pytorch_bin.py" in r.stderr,
              f"before conversion: exit {r.returncode}, {r.stderr.strip()}")
        r = run(sys.executable, CONVERTER, d)
        check(r.returncode == 0, f"converter exit {r.returncode}: {r.stderr.strip()}")
        r = run(sys.executable, CONVERTER, d)
        check(r.returncode == 1 and "--force" in r.stderr, f"overwrite without --force: {r.stderr}")

        out = os.path.join(work, "dump.safetensors")
        r = run(args.tool, "dump", d, out, "--num-labels", "0")
        check(r.returncode == 0, f"dump exit {r.returncode}: {r.stderr.strip()}")
        if r.returncode == 0:
            got = load_file(out)
            want = {n: p.numpy() for n, p in state.items() if not n.startswith("cls.")
                    and not n.endswith("position_ids")}
            check(set(got) == set(want), f"names: {sorted(set(got) ^ set(want))}")
            for n in sorted(set(got) & set(want)):
                check(got[n].shape == want[n].shape and
                      np.array_equal(got[n].view(np.uint32), want[n].view(np.uint32)),
                      f"{n}: not bit-exact after conversion")

        bad = os.path.join(work, "bad")
        os.makedirs(bad)
        with open(os.path.join(bad, "pytorch_model.bin"), "wb") as f:
            f.write(b"this is not a pickle")
        r = run(sys.executable, CONVERTER, bad)
        check(r.returncode == 1 and "cannot load" in r.stderr, f"corrupt .bin: {r.stderr.strip()}")
        check(os.listdir(bad) == ["pytorch_model.bin"], f"left in the folder: {os.listdir(bad)}")

    if problems:
        print("test_hf_convert: FAIL:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print("test_hf_convert: pytorch_model.bin converts and loads bit for bit")


if __name__ == "__main__":
    main()
