#!/usr/bin/env python3
"""test_hf_dtypes.py — F16 and BF16 (and mixed-dtype) safetensors checkpoints load exactly.

Writes small BERT checkpoints with the `safetensors` package from a randomly initialised
scripts/torch_bert.py model: one all-F16 without the "bert." prefix (a BertModel checkpoint, as
sentence-transformers saves), one all-BF16 with the prefix and a 3-label classifier, and one with
F32, F16 and BF16 tensors mixed, and one F32 with TF-era LayerNorm names (gamma/beta, as
bert-base-uncased's checkpoint has them). Special values are planted in one tensor of each: signed zeros,
the smallest subnormal, the largest finite value, infinities and NaN. `test_hf_tool dump` loads
each folder with hf_load and writes the parameters back as F32; every value must equal torch's own
conversion to float32 bit for bit (NaN: any NaN of the same sign). Exits 1 on any difference.

Usage: test_hf_dtypes.py --tool build/tests/test_hf_tool
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
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_bert import TorchBert  # noqa: E402

BASE = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=24, max_position_embeddings=12, type_vocab_size=2,
            layer_norm_eps=1e-12, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            initializer_range=0.3, pad_token_id=0, model_type="bert", hidden_act="gelu")

SPECIAL = {
    # zeros, subnormals (smallest, one with several mantissa bits, largest), smallest normal,
    # largest finite, infinities, NaN, an inexact value
    torch.float16: [0.0, -0.0, 2.0 ** -24, -(2.0 ** -24), 5 * 2.0 ** -24, 1023 * 2.0 ** -24,
                    2.0 ** -14, 65504.0, float("inf"), float("-inf"), float("nan"), 1.0 / 3.0],
    torch.bfloat16: [0.0, -0.0, 2.0 ** -133, -(2.0 ** -133), 5 * 2.0 ** -133, 127 * 2.0 ** -133,
                     2.0 ** -126, 3.3895313892515355e38, float("inf"), float("-inf"),
                     float("nan"), 1.0 / 3.0],
    torch.float32: [0.0, -0.0, 2.0 ** -149, 1e-40, 2.0 ** -126, 3.4028234663852886e38,
                    float("inf"), float("-inf"), float("nan"), 1.0 / 3.0],
}


def make_state(config, prefixed, dtype_of, seed, tf_names=False):
    """HF-named tensors of a random model; dtype_of(name) picks each tensor's dtype; tf_names
    writes LayerNorm parameters as TF-era checkpoints (bert-base-uncased) do: gamma and beta."""
    torch.manual_seed(seed)
    model = TorchBert(config)
    state = {}
    for name, p in model.hf_named_parameters():
        key = name if prefixed or not name.startswith("bert.") else name[len("bert."):]
        if tf_names:
            key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                             "LayerNorm.beta")
        state[key] = p.detach().clone().to(dtype_of(name)).contiguous()
    return state


def model_name(key):
    """The parameter name hf_load gives a checkpoint key."""
    name = key if key.startswith(("bert.", "classifier.")) else "bert." + key
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                       "LayerNorm.bias")


def plant(state, key):
    t = state[key]
    vals = torch.tensor(SPECIAL[t.dtype], dtype=torch.float32).to(t.dtype)
    flat = t.view(-1)
    flat[: len(vals)] = vals


def write_folder(folder, config, state):
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def compare(tag, state, dumped, problems):
    n = 0
    for key, t in state.items():
        name = model_name(key)
        if name not in dumped:
            problems.append(f"{tag}: {name} not loaded")
            continue
        want = t.float().numpy()
        got = dumped[name]
        if got.shape != want.shape:
            problems.append(f"{tag}: {name} shape {got.shape}, expected {want.shape}")
            continue
        wn, gn = np.isnan(want), np.isnan(got)
        same = np.array_equal(wn, gn) and np.array_equal(np.signbit(want[wn]), np.signbit(got[gn]))
        same &= np.array_equal(want[~wn].view(np.uint32), got[~gn].view(np.uint32))
        if not same:
            bad = np.flatnonzero(~((want.view(np.uint32) == got.view(np.uint32)) | (wn & gn)))
            problems.append(f"{tag}: {name} differs at {bad[:5].tolist()}: "
                            f"{got.reshape(-1)[bad[:5]].tolist()} vs {want.reshape(-1)[bad[:5]].tolist()}")
        n += 1
    if len(dumped) != len(state):
        problems.append(f"{tag}: {len(dumped)} tensors loaded, {len(state)} in the checkpoint")
    print(f"{tag}: {n} tensors compared bit for bit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    problems = []
    cases = [
        ("f16_bertmodel", dict(BASE, architectures=["BertModel"]), False,
         lambda n: torch.float16, "embeddings.LayerNorm.bias", ["--num-labels", "0"]),
        ("bf16_classifier", dict(BASE, architectures=["BertForSequenceClassification"],
                                 id2label={"0": "a", "1": "b", "2": "c"}), True,
         lambda n: torch.bfloat16, "bert.encoder.layer.1.output.dense.bias", []),
        ("mixed", dict(BASE, architectures=["BertForSequenceClassification"], num_labels=2), True,
         lambda n: (torch.float16 if "attention" in n else
                    torch.bfloat16 if "intermediate" in n else torch.float32),
         "bert.encoder.layer.0.attention.self.query.bias", []),
        ("tf_names", dict(BASE, architectures=["BertForPreTraining"]), True,
         lambda n: torch.float32, "bert.embeddings.LayerNorm.beta", ["--num-labels", "0"]),
    ]
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for i, (tag, config, prefixed, dtype_of, special_key, extra) in enumerate(cases):
            state = make_state(config, prefixed, dtype_of, seed=100 + i, tf_names=tag == "tf_names")
            plant(state, special_key)
            folder = os.path.join(work, tag)
            write_folder(folder, config, state)
            out = os.path.join(work, tag + ".dump.safetensors")
            r = subprocess.run([args.tool, "dump", folder, out, *extra], capture_output=True,
                               text=True)
            if r.returncode != 0:
                problems.append(f"{tag}: test_hf_tool dump exited {r.returncode}: {r.stderr.strip()}")
                continue
            compare(tag, state, load_file(out), problems)
    if problems:
        print("test_hf_dtypes: FAIL:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print("test_hf_dtypes: F16, BF16 and mixed checkpoints load exactly")


if __name__ == "__main__":
    main()
