#!/usr/bin/env python3
"""test_prepare.py — `distill prepare` end to end, read back with h5py.

usage: test_prepare.py DISTILL VOCAB SHARED_DATA

- SST-2 dev.tsv and generated TSV/CSV/JSONL inputs (header or not, pairs, quoted CSV fields with
  commas and newlines, integer, string, listed and regression labels, no labels, cased) are
  prepared; every row's ids, token types and length equal Hugging Face `tokenizers` on the same
  text, padding is zero, labels and attributes are what the input and options say, the datasets
  are chunked and gzip-compressed.
- Bad rows (missing column, unknown label, invalid UTF-8, negative class, bad number, unclosed
  quote) stop the run with "distill: error: FILE:LINE: ...", exit 1, and leave no output and no
  temporary file (an existing output file is left as it was); with --skip-bad-rows they are
  reported with their lines, counted, and left out.
Exit 0 on success, 1 on any failure, 77 (skip) when h5py or tokenizers or the shared
data is missing (1 then under CI=true: tests/ci_skip.py).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
    from tokenizers import BertWordPieceTokenizer
except ImportError as e:
    from ci_skip import missing_reference
    missing_reference(f"a reference package cannot be imported: {e}")

DISTILL, VOCAB, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
if not os.path.isfile(VOCAB) or not os.path.isdir(os.path.join(SHARED, "sst2")):
    from ci_skip import missing_reference
    missing_reference(f"the shared data ({VOCAB}, {SHARED}/sst2) is not there")
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def prepare(inp, out, *args):
    r = subprocess.run([DISTILL, "prepare", "--vocab", VOCAB, "--input", inp, "--output", out, *args],
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def hf(lower=True, max_seq=128):
    t = BertWordPieceTokenizer(VOCAB, lowercase=lower)
    t.enable_truncation(max_length=max_seq, strategy="longest_first")
    return t


def check_file(name, path, texts, labels, max_seq=128, lower=True, label_names=None, regression=False, source=None):
    """texts: list of str or (str, str); labels: list (or None for no labels)."""
    with h5py.File(path, "r") as f:
        n = len(texts)
        ids, types, lengths = f["input_ids"][:], f["token_type_ids"][:], f["lengths"][:]
        if ids.shape != (n, max_seq) or ids.dtype != np.int32 or types.dtype != np.uint8 or lengths.dtype != np.int32:
            fail(f"{name}: shapes/dtypes {ids.shape} {ids.dtype} {types.dtype} {lengths.dtype}, want ({n}, {max_seq})")
            return
        for d in ("input_ids", "token_type_ids", "lengths"):
            if f[d].compression != "gzip" or f[d].chunks is None:
                fail(f"{name}: /{d} is not chunked and gzip-compressed")
        enc = hf(lower, max_seq).encode_batch(texts)
        bad = 0
        for i, e in enumerate(enc):
            L = len(e.ids)
            ok = (lengths[i] == L and list(ids[i, :L]) == e.ids and list(types[i, :L]) == e.type_ids
                  and not ids[i, L:].any() and not types[i, L:].any())
            if not ok:
                bad += 1
                if bad <= 3:
                    fail(f"{name}: row {i} {texts[i]!r}: file {list(ids[i, :lengths[i]])} hf {e.ids}")
        a = f.attrs
        vocab_bytes = open(VOCAB, "rb").read()
        want_attrs = {"max_seq": max_seq, "vocab_size": len(vocab_bytes.decode().splitlines()),
                      "vocab_sha256": hashlib.sha256(vocab_bytes).hexdigest(), "do_lower_case": int(lower)}
        for k, v in want_attrs.items():
            if k not in a or a[k] != v:
                fail(f"{name}: attribute {k} = {a.get(k)!r}, want {v!r}")
        if source is not None and a.get("source") != source:
            fail(f"{name}: source {a.get('source')!r}")
        if not str(a.get("created_by", "")).startswith("distill prepare"):
            fail(f"{name}: created_by {a.get('created_by')!r}")
        vocab = [v.decode() for v in f["vocab"][:]]
        if vocab != vocab_bytes.decode().splitlines():
            fail(f"{name}: /vocab differs from the vocabulary file")
        if labels is None:
            if "labels" in f:
                fail(f"{name}: /labels present without labels")
        else:
            got = f["labels"][:]
            want_dtype = np.float32 if regression else np.int32
            if got.dtype != want_dtype or list(got) != list(np.array(labels, dtype=want_dtype)):
                fail(f"{name}: labels {got[:10]} ({got.dtype}), want {labels[:10]}")
        names = [s.decode() if isinstance(s, bytes) else s for s in a["label_names"]] if "label_names" in a else None
        if names != label_names:
            fail(f"{name}: label_names {names}, want {label_names}")
        print(f"{name}: {n} rows, {n - bad} identical to tokenizers")


def write(path, text, mode="w"):
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
        f.write(text)


def main():
    tmp = tempfile.mkdtemp(prefix="distill_test_prepare_")
    try:
        return run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    j = lambda n: os.path.join(tmp, n)

    # ---- SST-2 dev
    dev = os.path.join(SHARED, "sst2", "dev.tsv")
    rc, out, err = prepare(dev, j("dev.h5"))
    if rc != 0:
        fail(f"sst2 dev: exit {rc}: {err}")
    else:
        lines = open(dev, encoding="utf-8").read().split("\n")[1:]
        rows = [l.split("\t") for l in lines if l]
        check_file("sst2 dev", j("dev.h5"), [r[0] for r in rows], [int(r[1]) for r in rows], source=dev)

    # ---- CSV: quoted fields (commas, doubled quotes, newlines), string labels sorted, CRLF
    recs = [("Hello, world", "pos"), ('She said "hi"\nthen left', "neg"), ("plain", "neutral"),
            ("Ünïcödé ÀÉÎ 你好", "pos"), ("", "neg")]
    body = "text,label\r\n" + "".join('"' + t.replace('"', '""') + '",' + l + "\r\n" for t, l in recs)
    write(j("a.csv"), body)
    rc, out, err = prepare(j("a.csv"), j("a.h5"))
    if rc != 0:
        fail(f"csv: exit {rc}: {err}")
    else:
        names = sorted({l for _, l in recs})
        check_file("csv string labels", j("a.h5"), [t for t, _ in recs], [names.index(l) for _, l in recs],
                   label_names=names)
    # --labels fixes the order
    rc, out, err = prepare(j("a.csv"), j("a2.h5"), "--labels", "neg,neutral,pos")
    if rc != 0:
        fail(f"csv --labels: exit {rc}: {err}")
    else:
        order = ["neg", "neutral", "pos"]
        check_file("csv --labels", j("a2.h5"), [t for t, _ in recs], [order.index(l) for _, l in recs],
                   label_names=order)

    # ---- JSONL pairs, numeric labels, truncation, cased
    objs = [{"premise": "A man is playing a guitar on stage tonight.", "hypothesis": "Someone plays music.", "y": 0},
            {"premise": "x " * 80, "hypothesis": "short one", "y": 2},
            {"premise": "Short", "hypothesis": "y " * 90, "y": 1},
            {"premise": "Café CRÈME", "hypothesis": "ΣΑΣ İstanbul", "y": 1}]
    write(j("b.jsonl"), "\n".join(json.dumps(o, ensure_ascii=False) for o in objs) + "\n")
    for lower in (True, False):
        args = ["--text", "premise", "--text-pair", "hypothesis", "--label", "y", "--max-seq", "32"]
        rc, out, err = prepare(j("b.jsonl"), j("b.h5"), *args, *([] if lower else ["--no-lower-case"]))
        if rc != 0:
            fail(f"jsonl: exit {rc}: {err}")
        else:
            check_file(f"jsonl pairs lower={lower}", j("b.h5"), [(o["premise"], o["hypothesis"]) for o in objs],
                       [o["y"] for o in objs], max_seq=32, lower=lower)
            if "4 rows" not in out or "2 truncated" not in out:
                fail(f"jsonl: summary {out!r}")

    # ---- TSV without header: columns by index, label = last column; regression; no labels
    write(j("c.tsv"), "first text\tsecond text\t0.25\nanother one\tand its pair\t-1.5\n")
    rc, out, err = prepare(j("c.tsv"), j("c.h5"), "--text-pair", "1", "--regression")
    if rc != 0:
        fail(f"tsv regression: exit {rc}: {err}")
    else:
        check_file("tsv no header regression", j("c.h5"), [("first text", "second text"),
                                                           ("another one", "and its pair")], [0.25, -1.5],
                   regression=True)
    write(j("d.tsv"), "just some text\nmore text here\n")
    rc, out, err = prepare(j("d.tsv"), j("d.h5"), "--no-label", "--format", "tsv")
    if rc != 0:
        fail(f"tsv no label: exit {rc}: {err}")
    else:
        check_file("tsv no labels", j("d.h5"), ["just some text", "more text here"], None)

    # ---- bad rows: error with FILE:LINE, exit 1, nothing written
    bad_cases = [
        ("missing column", "e.tsv", "sentence\tlabel\ngood row\t1\nno label column here\ngood again\t0\n", [],
         ":3: expected 2 columns"),
        ("unknown label", "f.tsv", "sentence\tlabel\nok\tpos\nhmm\tmaybe\n", ["--labels", "pos,neg"],
         ":3: unknown label 'maybe'"),
        ("invalid UTF-8", "g.tsv", b"sentence\tlabel\nfine\t1\nbad \xff\xfe byte\t0\n", [],
         ":3: invalid UTF-8 in the text at byte 5"),
        ("negative class", "h.tsv", "sentence\tlabel\na\t1\nb\t-1\n", [], ":3: the label -1 is negative"),
        ("not a number", "i.tsv", "sentence\tlabel\na\t0.5\nb\tlots\n", ["--regression"],
         ":3: expected a number as the label"),
        ("unclosed quote", "k.csv", 'text,label\n"fine",1\n"never closed,0\nmore,1\n', [],
         ":3: a quoted field is not closed"),
        ("bad JSON", "l.jsonl", '{"text": "ok", "label": 1}\n{"text": broken\n', [], ":2: expected a JSON object"),
    ]
    for name, fn, body, args, needle in bad_cases:
        write(j(fn), body, "wb" if isinstance(body, bytes) else "w")
        out_path = j(fn + ".h5")
        write(out_path, "previous contents")  # an existing output must survive a failed run
        rc, out, err = prepare(j(fn), out_path, *args)
        if rc != 1 or f"distill: error: {j(fn)}{needle}" not in err:
            fail(f"{name}: exit {rc}, stderr {err!r}, want 'distill: error: {j(fn)}{needle}'")
        if open(out_path).read() != "previous contents":
            fail(f"{name}: the existing output file was changed")
        left = [x for x in os.listdir(tmp) if ".tmp" in x]
        if left:
            fail(f"{name}: temporary files left behind: {left}")
        os.unlink(out_path)
        rc, out, err = prepare(j(fn), out_path, *args)
        if os.path.exists(out_path):
            fail(f"{name}: an output file was written")
    print("bad rows: reported with file and line, nothing written")

    # ---- --skip-bad-rows: reported, counted, left out
    write(j("m.tsv"), "sentence\tlabel\nkeep one\t1\nno tab here\nkeep two\t0\nbad \udcff\t1\nkeep three\t1\n"
          .encode("utf-8", "surrogateescape"), "wb")
    rc, out, err = prepare(j("m.tsv"), j("m.h5"), "--skip-bad-rows")
    if rc != 0:
        fail(f"--skip-bad-rows: exit {rc}: {err}")
    else:
        if f"{j('m.tsv')}:3:" not in err or f"{j('m.tsv')}:5:" not in err or "2 bad rows skipped" not in out:
            fail(f"--skip-bad-rows: stderr {err!r} stdout {out!r}")
        check_file("--skip-bad-rows", j("m.h5"), ["keep one", "keep two", "keep three"], [1, 0, 1])
    write(j("n.tsv"), "sentence\tlabel\nonly\n")
    rc, out, err = prepare(j("n.tsv"), j("n.h5"), "--skip-bad-rows")
    if rc != 1 or "no rows to write" not in err or os.path.exists(j("n.h5")):
        fail(f"all rows bad: exit {rc}, {err!r}")

    # ---- usage errors
    rc, out, err = prepare(j("d.tsv"), j("u.h5"), "--max-seq", "2")
    if rc != 2 or os.path.exists(j("u.h5")):
        fail(f"--max-seq 2: exit {rc} {err!r}")
    rc, out, err = prepare(j("d.tsv"), j("u.h5"), "--bogus")
    if rc != 2:
        fail(f"unknown option: exit {rc}")

    if failures:
        print(f"{failures} failures")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
