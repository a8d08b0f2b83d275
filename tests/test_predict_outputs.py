#!/usr/bin/env python3
"""test_predict_outputs.py — `distill predict` on a small random classifier: outputs, input forms,
batching, truncation and error paths, against scripts/torch_bert.py fed by the `tokenizers` package.

The model is made here: TorchBert with a fixed seed (2 layers, hidden 32, 4 heads, 3 labels, the
shared bert-base-uncased vocabulary), saved as a Hugging Face folder (config.json with id2label,
model.safetensors, vocab.txt, tokenizer_config.json). A second folder holds the same encoder with
no classifier (a BertModel). Checks:
  - --output logits / probs / label (and the default, label) for every row of each input form —
    TSV with a header (sentence1/sentence2 pairs found by name), TSV without a header (column by
    index), CSV with quoted commas, quotes and a newline, JSONL with --text/--text-pair keys —
    equal the float64 reference of the same rows tokenised by `tokenizers` (lower-casing on);
  - --batch-size 3 over rows of mixed lengths (sorted inside a window) keeps input order; a
    window boundary is crossed (--batch-size 1: windows of 16 rows, 20 rows);
  - --max-seq 12 truncates pairs longest-first exactly as `tokenizers`;
  - --out FILE holds what stdout held;
  - errors: missing model, unreadable input, unknown column, a bad row after the first window, an
    embedding-only model asked for logits, a bad --output, --max-seq over the model's positions:
    exit 1 (2 for usage errors) with "distill: error: ..." naming the problem, no --out file
    created, an existing --out left as it was, and no temporary file left beside it.

Usage: test_predict_outputs.py --distill build/train/distill --vocab VOCAB.txt
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_bert import TorchBert  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
MAX_POS = 64

# Tolerance on logits. The C engine runs in float32, the reference in float64. Each dot product
# of length K (K <= 37 here: hidden 32, intermediate 37) carries a relative rounding error of about
# sqrt(K) * 2^-24 ~ 3.6e-7 of the sum of its terms' magnitudes; the path to the logits has 2 encoder
# layers (4 GEMMs each, plus softmax, GELU and 2 LayerNorms), the pooler and the classifier, about
# 12 rounding stages, and LayerNorm rescales to unit variance so the errors add rather than
# multiply: 12 x 3.6e-7 x a 5x margin for the magnitude of the terms (weights drawn with std 0.3,
# larger than HF's 0.02, so logits are spread over several units and the argmax is well defined)
# gives 2e-5 of the largest logit magnitude (at least 1). Printed values carry 9 significant digits,
# which reproduce the float32 exactly, so the printing adds nothing. A wrong token, position, token
# type, mask or weight moves logits by 1e-2 and up.
LOGIT_TOL = 2e-5
# Probabilities: |d softmax_i / d z_j| <= 1/4 and sum_j |d p_i/d z_j| <= 1/2, so an error e on every
# logit moves a probability by at most e/2; bound by the logit bound, plus float32's half-ulp
# (2^-24) from the C side's rounding of the printed value.
PROB_TOL = LOGIT_TOL + 2.0 ** -24

ROWS = [
    ("The movie was great!", "I loved every minute of it."),
    ("Terrible.", "Never again."),
    ("It was fine, I guess; nothing special, but the acting, music and sets were all competent "
     "and the story held together until the end.", "Meh."),
    ("Café déjà vu — naïve, \"quoted\", and, commas", "second, with a comma"),
    ("ok", "a much longer second segment that goes on and on so that truncation hits it first"),
    ("A B C D E F G H", "x"),
    ("Short one.", "Another short one."),
]


def fail(msg):
    print(f"test_predict_outputs: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def make_model(folder, vocab, classifier):
    torch.manual_seed(1233)  # a seed whose rows fall in all three classes (checked below)
    config = {
        "architectures": ["BertForSequenceClassification" if classifier else "BertModel"],
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 37, "max_position_embeddings": MAX_POS,
        "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.3, "pad_token_id": 0, "position_embedding_type": "absolute",
    }
    if classifier:
        config["id2label"] = {str(i): n for i, n in enumerate(LABELS)}
        config["label2id"] = {n: i for i, n in enumerate(LABELS)}
    model = TorchBert(config).eval()
    os.makedirs(folder)
    state = {n: p.detach().contiguous() for n, p in model.hf_named_parameters()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(vocab, "rb") as src, open(os.path.join(folder, "vocab.txt"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    return model


def reference_logits(model, vocab, rows, max_seq):
    """float64 logits of each row run alone (no padding), tokenised by `tokenizers`."""
    from tokenizers import BertWordPieceTokenizer
    tok = BertWordPieceTokenizer(vocab, lowercase=True)
    tok.enable_truncation(max_length=max_seq)
    ref = model.double()
    out = []
    for a, b in rows:
        e = tok.encode(a, b) if b is not None else tok.encode(a)
        ids = torch.tensor([e.ids])
        with torch.no_grad():
            o = ref(ids, torch.ones_like(ids), torch.tensor([e.type_ids]))
        out.append(o["logits"][0].numpy())
    model.float()
    return np.array(out)


def run(distill, args, expect_rc=0):
    r = subprocess.run([distill, "predict"] + args, capture_output=True, text=True)
    if r.returncode != expect_rc:
        fail(f"distill predict {' '.join(args)}: exit {r.returncode}, expected {expect_rc}\n"
             f"stderr: {r.stderr}")
    return r


def parse_jsonl(text, n, what):
    lines = text.splitlines()
    if len(lines) != n:
        fail(f"{what}: expected {n} JSON lines, found {len(lines)}:\n{text[:2000]}")
    return [json.loads(line) for line in lines]


def check_logits(got, want, what):
    got = np.array([g["logits"] for g in got], dtype=np.float64)
    if got.shape != want.shape:
        fail(f"{what}: logits shape {got.shape}, expected {want.shape}")
    bound = LOGIT_TOL * max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    if not err <= bound:
        fail(f"{what}: logits differ by {err:.3e} > {bound:.3e}\n got {got}\nwant {want}")
    print(f"ok   {what}: logits max|diff| {err:.2e} (bound {bound:.2e}, max|logit| "
          f"{float(np.abs(want).max()):.2f})")


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def csv_field(s):
    return '"' + s.replace('"', '""') + '"'


def expect_error(distill, args, rc, needle, out=None, old=None):
    r = run(distill, args, expect_rc=rc)
    if not r.stderr.startswith("distill: error: ") or needle not in r.stderr:
        fail(f"predict {' '.join(args)}: expected 'distill: error: ...{needle}...' on stderr, "
             f"found {r.stderr!r}")
    if r.stdout:
        fail(f"predict {' '.join(args)}: printed to stdout on error: {r.stdout[:200]!r}")
    if out is not None:
        if old is None and os.path.exists(out):
            fail(f"predict {' '.join(args)}: left {out} behind on error")
        if old is not None:
            with open(out) as f:
                if f.read() != old:
                    fail(f"predict {' '.join(args)}: changed the existing {out} on error")
        folder = os.path.dirname(out)
        stray = [n for n in os.listdir(folder) if ".tmp-" in n]
        if stray:
            fail(f"predict {' '.join(args)}: left temporary files {stray}")
    print(f"ok   error: {needle!r} (exit {rc})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--distill", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    d = args.distill

    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        cls_dir, enc_dir = os.path.join(work, "cls"), os.path.join(work, "enc")
        model = make_model(cls_dir, args.vocab, classifier=True)
        make_model(enc_dir, args.vocab, classifier=False)
        want = reference_logits(model, args.vocab, ROWS, 128)
        singles = [(a, None) for a, _ in ROWS]
        want_single = reference_logits(model, args.vocab, singles, 128)

        # Inline text, single and pair.
        r = run(d, ["--model", cls_dir, "--text", ROWS[0][0], "--output", "logits"])
        check_logits(parse_jsonl(r.stdout, 1, "--text"), want_single[:1], "--text")
        r = run(d, ["--model", cls_dir, "--text", ROWS[0][0], "--text-pair", ROWS[0][1],
                    "--output", "logits"])
        check_logits(parse_jsonl(r.stdout, 1, "--text-pair"), want[:1], "--text --text-pair")

        # Input forms, batch size 3 over rows of mixed lengths.
        tsv_h = os.path.join(work, "pairs.tsv")
        write(tsv_h, "sentence1\tsentence2\tlabel\n" +
              "".join(f"{a}\t{b}\t{i % 3}\n" for i, (a, b) in enumerate(ROWS)))
        tsv_n = os.path.join(work, "plain.tsv")
        write(tsv_n, "".join(f"{i}\t{a}\n" for i, (a, _) in enumerate(ROWS)))
        csv_p = os.path.join(work, "rows.csv")
        write(csv_p, "id,text,other\r\n" + "".join(
            f"{i},{csv_field(a)},{csv_field(b + chr(10) + 'line two')}\r\n"
            for i, (a, b) in enumerate(ROWS)))
        want_csv = reference_logits(model, args.vocab, [(a, b + "\nline two") for a, b in ROWS], 128)
        jsonl = os.path.join(work, "rows.jsonl")
        write(jsonl, "".join(json.dumps({"q": a, "p": b, "n": i}) + "\n"
                             for i, (a, b) in enumerate(ROWS)))
        forms = [
            ("TSV with header", [tsv_h], want),
            ("TSV without header, --text 1", [tsv_n, "--text", "1"], want_single),
            ("CSV with quotes, --text text --text-pair other",
             [csv_p, "--text", "text", "--text-pair", "other"], want_csv),
            ("JSONL --text q --text-pair p", [jsonl, "--text", "q", "--text-pair", "p"], want),
            ("JSONL --text q", [jsonl, "--text", "q", "--format", "jsonl"], want_single),
        ]
        for what, inp, ref in forms:
            r = run(d, ["--model", cls_dir, "--input"] + inp + ["--output", "logits",
                                                                "--batch-size", "3"])
            check_logits(parse_jsonl(r.stdout, len(ROWS), what), ref, what)

        # probs, label (and the default), --out.
        base = ["--model", cls_dir, "--input", tsv_h, "--batch-size", "2"]
        r = run(d, base + ["--output", "probs"])
        got = np.array([g["probs"] for g in parse_jsonl(r.stdout, len(ROWS), "probs")])
        err = float(np.abs(got - softmax(want)).max())
        if not err <= PROB_TOL:
            fail(f"probs differ by {err:.3e} > {PROB_TOL:.3e}")
        print(f"ok   probs max|diff| {err:.2e} (bound {PROB_TOL:.2e})")
        top2 = np.sort(want, axis=1)[:, -2:]
        if float((top2[:, 1] - top2[:, 0]).min()) <= 100 * LOGIT_TOL * np.abs(want).max():
            fail(f"test data: two classes tie within the tolerance, the argmax is not defined: {want}")
        if len(set(np.argmax(want, axis=1))) != len(LABELS):
            fail(f"test data: the rows do not cover every class, so id2label is not fully checked")
        for kind in (["--output", "label"], []):
            r = run(d, base + kind)
            got = parse_jsonl(r.stdout, len(ROWS), "label")
            p = softmax(want)
            for i, g in enumerate(got):
                k = int(np.argmax(want[i]))
                if set(g) != {"label", "id", "score"} or g["label"] != LABELS[k] or g["id"] != k \
                        or abs(g["score"] - p[i, k]) > PROB_TOL:
                    fail(f"label row {i}: {g}, expected label {LABELS[k]} id {k} score {p[i, k]}")
            print(f"ok   label {' '.join(kind) or '(default)'}: "
                  f"{[g['label'] for g in got]}")
        out = os.path.join(work, "out", "pred.jsonl")
        os.makedirs(os.path.dirname(out))
        r = run(d, base + ["--output", "probs", "--out", out])
        with open(out) as f:
            saved = f.read()
        r2 = run(d, base + ["--output", "probs"])
        if r.stdout or saved != r2.stdout:
            fail("--out: the file differs from standard output (or stdout was written too)")
        print("ok   --out holds what stdout held")

        # Window boundary: 20 rows at --batch-size 1 (windows of 16), order kept.
        many = [ROWS[i % len(ROWS)] for i in range(20)]
        many_p = os.path.join(work, "many.tsv")
        write(many_p, "sentence1\tsentence2\n" + "".join(f"{a}\t{b}\n" for a, b in many))
        r = run(d, ["--model", cls_dir, "--input", many_p, "--output", "logits",
                    "--batch-size", "1"])
        check_logits(parse_jsonl(r.stdout, 20, "20 rows"), want[[i % len(ROWS) for i in range(20)]],
                     "20 rows across a window boundary")

        # Truncation: --max-seq 12, longest first, as `tokenizers`.
        want12 = reference_logits(model, args.vocab, ROWS, 12)
        r = run(d, ["--model", cls_dir, "--input", tsv_h, "--output", "logits", "--max-seq", "12"])
        check_logits(parse_jsonl(r.stdout, len(ROWS), "max-seq 12"), want12, "--max-seq 12")

        # Errors.
        bad_out = os.path.join(work, "out", "bad.jsonl")
        expect_error(d, ["--model", os.path.join(work, "nope"), "--text", "x", "--out", bad_out],
                     1, "nope", bad_out)
        expect_error(d, ["--model", cls_dir, "--input", os.path.join(work, "missing.tsv"),
                         "--out", bad_out], 1, "missing.tsv", bad_out)
        expect_error(d, ["--model", cls_dir, "--input", tsv_h, "--text", "nosuch", "--out", bad_out],
                     1, "nosuch", bad_out)
        bad_rows = os.path.join(work, "bad.jsonl")
        write(bad_rows, "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(20)) +
              "[1, 2]\n")
        expect_error(d, ["--model", cls_dir, "--input", bad_rows, "--batch-size", "1",
                         "--out", bad_out], 1, "bad.jsonl:21", bad_out)
        expect_error(d, ["--model", enc_dir, "--text", "x", "--output", "logits", "--out", bad_out],
                     1, "only --output embedding", bad_out)
        expect_error(d, ["--model", cls_dir, "--text", "x", "--max-seq", "65", "--out", bad_out],
                     1, "--max-seq 65", bad_out)
        expect_error(d, ["--model", cls_dir, "--text", "x", "--output", "nonsense"], 2,
                     "--output")
        expect_error(d, ["--model", cls_dir, "--text", "x", "--bogus"], 2, "--bogus")
        with open(bad_out, "w") as f:
            f.write("old content\n")
        expect_error(d, ["--model", cls_dir, "--input", bad_rows, "--batch-size", "1",
                         "--out", bad_out], 1, "bad.jsonl:21", bad_out, old="old content\n")

        # The encoder-only model still gives embeddings (shape and unit norm).
        r = run(d, ["--model", enc_dir, "--input", jsonl, "--text", "q", "--normalize"])
        emb = np.array([g["embedding"] for g in parse_jsonl(r.stdout, len(ROWS), "embedding")])
        # Each printed component is the float32 nearest the float64 quotient (relative error
        # 2^-24), so the norm is 1 within ~1e-7; 1e-6 leaves a 10x margin.
        if emb.shape != (len(ROWS), 32) or np.abs(np.linalg.norm(emb, axis=1) - 1).max() > 1e-6:
            fail(f"embedding: shape {emb.shape}, norms {np.linalg.norm(emb, axis=1)}")
        print("ok   encoder-only model: default output is a unit-norm embedding of width 32")
    print("test_predict_outputs: all checks passed")


if __name__ == "__main__":
    main()
