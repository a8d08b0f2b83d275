#!/usr/bin/env python3
"""test_hf_export.py — hf_save's folder, read by the tools Hugging Face users have.

test_hf_tool export writes a small random model (non-default value in every config field, three
named labels) with the BERT-base uncased vocabulary. This script checks, independently of our
reader:
  - the folder holds exactly config.json, model.safetensors, vocab.txt, tokenizer_config.json and
    special_tokens_map.json;
  - the `safetensors` package reads model.safetensors with metadata format=pt and exactly the
    tensor names, shapes and dtype (F32) of Hugging Face's BertForSequenceClassification — the
    expected list is written out below from the architecture, not taken from our output;
  - config.json holds exactly the expected keys and values (floats written as the shortest
    decimal of the float32 value, so 0.15 reads back as 0.15);
  - vocab.txt is a byte copy; the `tokenizers` package tokenizes with it; the tokenizer files say
    BertTokenizer, lower case (an uncased vocabulary), model_max_length = max_position_embeddings;
  - hf_load of the export gives back exactly the tensors the `safetensors` package reads (bits);
  - scripts/torch_bert.py loads the export with nothing missing or unexpected, and its float64
    forward matches the C forward of the exported folder (logits, pooled output, hidden states).
Exits 1 with the list of what differed.

Usage: test_hf_export.py --tool build/tests/test_hf_tool --vocab .../bert-base-uncased-vocab.txt
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_bert import TorchBert  # noqa: E402

CONFIG = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
              intermediate_size=37, max_position_embeddings=40, type_vocab_size=3,
              layer_norm_eps=1e-6, hidden_dropout_prob=0.15, attention_probs_dropout_prob=0.05,
              classifier_dropout=0.25, initializer_range=0.05, pad_token_id=0)
LABELS = ["negative", "positive", "neutral"]
PROBLEM = "single_label_classification"

# Tolerance for the forward comparison: float32 C against a float64 reference; reductions are at
# most 37 long (the FFN), ~sqrt(37) * 2^-24 = 3.6e-7 relative per dot product, over 3 layers plus
# embeddings and pooler/classifier (~6 stages) with a ~3x margin for softmax/LayerNorm/GELU:
# 1e-5 times the tensor's largest magnitude (at least 1). A wrong name mapping gives O(1) errors.
REL_TOL = 1e-5


def expected_tensors(c, num_labels):
    """HF BertForSequenceClassification's state_dict names and shapes (weights (out, in))."""
    H, I = c["hidden_size"], c["intermediate_size"]
    t = {
        "bert.embeddings.word_embeddings.weight": (c["vocab_size"], H),
        "bert.embeddings.position_embeddings.weight": (c["max_position_embeddings"], H),
        "bert.embeddings.token_type_embeddings.weight": (c["type_vocab_size"], H),
        "bert.embeddings.LayerNorm.weight": (H,),
        "bert.embeddings.LayerNorm.bias": (H,),
    }
    for l in range(c["num_hidden_layers"]):
        p = f"bert.encoder.layer.{l}."
        for lin, (out, inp) in {"attention.self.query": (H, H), "attention.self.key": (H, H),
                                "attention.self.value": (H, H), "attention.output.dense": (H, H),
                                "intermediate.dense": (I, H), "output.dense": (H, I)}.items():
            t[p + lin + ".weight"] = (out, inp)
            t[p + lin + ".bias"] = (out,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = (H,)
            t[p + ln + ".bias"] = (H,)
    t["bert.pooler.dense.weight"] = (H, H)
    t["bert.pooler.dense.bias"] = (H,)
    t["classifier.weight"] = (num_labels, H)
    t["classifier.bias"] = (num_labels,)
    return t


def expected_config():
    c = dict(CONFIG)
    c.update({
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "id2label": {str(i): n for i, n in enumerate(LABELS)},
        "label2id": {n: i for i, n in enumerate(LABELS)},
        "problem_type": PROBLEM,
        "torch_dtype": "float32",
        "use_cache": True,
    })
    return c  # plus "transformers_version", a version string, checked separately


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"test_hf_export: FAIL: {' '.join(cmd)} exited {r.returncode}: "
                         f"{r.stderr.strip()}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)
        return cond

    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        out = os.path.join(work, "student")
        keys = [f"{k}={v}" for k, v in CONFIG.items()]
        run([args.tool, "export", out, args.vocab, "--seed", "5", *keys,
             "id2label=" + ",".join(LABELS), "problem_type=" + PROBLEM])

        files = sorted(os.listdir(out))
        check(files == sorted(["config.json", "model.safetensors", "vocab.txt",
                               "tokenizer_config.json", "special_tokens_map.json"]),
              f"files in the export: {files}")
        check(sorted(os.listdir(work)) == ["student"], f"left beside the export: {os.listdir(work)}")

        # ---- model.safetensors through the safetensors package ----
        want = expected_tensors(CONFIG, len(LABELS))
        st_path = os.path.join(out, "model.safetensors")
        with safe_open(st_path, framework="np") as f:
            check(f.metadata() == {"format": "pt"}, f"metadata {f.metadata()}")
            names = set(f.keys())
            check(names == set(want), f"names: missing {sorted(set(want) - names)}, "
                                      f"unexpected {sorted(names - set(want))}")
            for n in sorted(names & set(want)):
                sl = f.get_slice(n)
                check(tuple(sl.get_shape()) == want[n] and sl.get_dtype() == "F32",
                      f"{n}: {sl.get_dtype()} {sl.get_shape()}, expected F32 {list(want[n])}")
        with open(st_path, "rb") as fh:
            hlen = int.from_bytes(fh.read(8), "little")
        check(hlen % 8 == 0, f"header length {hlen} is not a multiple of 8")

        # ---- config.json ----
        with open(os.path.join(out, "config.json")) as fh:
            cfg = json.load(fh)
        exp = expected_config()
        ver = cfg.pop("transformers_version", None)
        check(isinstance(ver, str) and ver[:1].isdigit(), f"transformers_version {ver!r}")
        for k in sorted(set(exp) | set(cfg)):
            check(cfg.get(k, "<absent>") == exp.get(k, "<absent>"),
                  f"config.json {k}: {cfg.get(k, '<absent>')!r}, expected {exp.get(k, '<absent>')!r}")

        # ---- tokenizer files ----
        with open(args.vocab, "rb") as a, open(os.path.join(out, "vocab.txt"), "rb") as b:
            check(a.read() == b.read(), "vocab.txt is not a byte copy")
        with open(os.path.join(out, "tokenizer_config.json")) as fh:
            tc = json.load(fh)
        specials = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                    "unk_token": "[UNK]", "mask_token": "[MASK]"}
        for k, v in dict(specials, tokenizer_class="BertTokenizer", do_lower_case=True,
                         model_max_length=CONFIG["max_position_embeddings"]).items():
            check(tc.get(k) == v, f"tokenizer_config.json {k}: {tc.get(k)!r}, expected {v!r}")
        with open(os.path.join(out, "special_tokens_map.json")) as fh:
            check(json.load(fh) == specials, "special_tokens_map.json")
        from tokenizers import BertWordPieceTokenizer
        tok = BertWordPieceTokenizer(os.path.join(out, "vocab.txt"), lowercase=tc["do_lower_case"])
        enc = tok.encode("Hello World")
        check(enc.ids == [101, 7592, 2088, 102], f"tokenizers with the exported vocab: {enc.ids}")

        # ---- hf_load gives back exactly what the safetensors package reads ----
        dump = os.path.join(work, "dump.safetensors")
        run([args.tool, "dump", out, dump])
        mine, theirs = load_file(dump), load_file(st_path)
        check(set(mine) == set(theirs), "hf_load's tensors differ in names")
        for n in sorted(set(mine) & set(theirs)):
            check(mine[n].shape == theirs[n].shape and
                  np.array_equal(mine[n].view(np.uint32), theirs[n].view(np.uint32)),
                  f"{n}: hf_load's copy is not bit-exact")

        # ---- the export runs the same in the PyTorch reference and in C ----
        rng = np.random.default_rng(3)
        B, S = 3, 11
        ids = rng.integers(1000, 30000, size=(B, S)).astype(np.int32)
        ids[:, 0] = 101
        types = (np.arange(S)[None, :] >= 6).astype(np.int32).repeat(B, 0) * np.array([[0], [1], [2]])
        lengths = np.array([11, 7, 4], np.int32)
        for b in range(B):
            ids[b, lengths[b]:] = 0
            types[b, lengths[b]:] = 0
        inp = os.path.join(work, "input.txt")
        with open(inp, "w") as fh:
            fh.write(f"{B} {S}\n")
            for arr in (ids, types):
                for row in arr:
                    fh.write(" ".join(map(str, row.tolist())) + "\n")
            fh.write(" ".join(map(str, lengths.tolist())) + "\n")
        fwd = os.path.join(work, "forward.safetensors")
        run([args.tool, "forward", out, inp, fwd])
        c = load_file(fwd)

    ref = TorchBert(cfg)
    info = ref.load_hf_state_dict({k: torch.from_numpy(v) for k, v in theirs.items()})
    check(info == {"missing": [], "unexpected": []}, f"reference load of the export: {info}")
    ref = ref.double().eval()
    mask = (torch.arange(S)[None, :] < torch.from_numpy(lengths)[:, None]).long()
    with torch.no_grad():
        o = ref(torch.from_numpy(ids).long(), mask, torch.from_numpy(types).long())
    pairs = [("logits", o["logits"]), ("pooled", o["pooled"])]
    pairs += [(f"hidden.{l}", h) for l, h in enumerate(o["hidden_states"])]
    for name, want_t in pairs:
        w = want_t.numpy()
        got = c.get(name)
        if not check(got is not None and got.shape == w.shape, f"{name}: missing or misshaped"):
            continue
        bound = REL_TOL * max(1.0, float(np.abs(w).max()))
        err = float(np.abs(got.astype(np.float64) - w).max())
        print(f"{name:9s} max|diff| {err:.3e}  bound {bound:.3e}")
        check(err <= bound, f"{name}: max |diff| {err:.3e} > {bound:.3e}")

    if problems:
        print("test_hf_export: FAIL:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print("test_hf_export: the export is a Hugging Face BertForSequenceClassification folder")


if __name__ == "__main__":
    main()
