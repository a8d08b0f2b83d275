#!/usr/bin/env python3
"""results_table.py — the demo's table from `distill eval --json` lines.

Usage: results_table.py EVAL.jsonl --names NAME [NAME ...]

The first line is the reference for speed-up (BERT-base's shape); accuracy is printed only for
models that have real weights (a random-shape line carries no accuracy). Kept accuracy is each
model's accuracy over the best accuracy before it that is not the reference (the teacher). F1 is
class 1's F1 with two classes (as GLUE reports it) and the macro-F1 with more.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--names", nargs="+", required=True)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.jsonl) if l.strip()]
    if len(rows) != len(a.names):
        sys.exit(f"results_table: {len(rows)} result lines but {len(a.names)} names")
    ref = rows[0]
    teacher_acc = None
    print("| model | shape (L/H/A/FFN) | parameters | file size | accuracy | F1 | kept | latency/sample b1 | b32 | speed-up b1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in zip(a.names, rows):
        shape = f"{r['layers']}/{r['hidden']}/{r['heads']}/{r['intermediate']}"
        acc = r.get("accuracy")
        kept = ""
        if acc is not None:
            if teacher_acc is None:
                teacher_acc = acc
            else:
                kept = f"{100 * acc / teacher_acc:.1f}%"
        speed = ref["latency_ms_b1"] / r["latency_ms_b1"]
        acc_s = "" if acc is None else f"{100 * acc:.2f}%"
        f1 = r.get("f1", r.get("macro_f1"))  # binary: class 1's F1; more classes: macro-F1
        f1_s = "" if acc is None or f1 is None else f"{f1:.4f}"
        print(f"| {name} | {shape} | {r['parameters'] / 1e6:.1f}M | {r['file_bytes'] / 1e6:.1f} MB | "
              f"{acc_s} | {f1_s} | {kept} | "
              f"{r['latency_ms_b1']:.2f} ms | {r['latency_ms_b32']:.2f} ms | {speed:.1f}x |")
    print(f"\n(latency: distill eval, CPU, {ref['threads']} threads, median per sample over the first rows of "
          f"{ref['data']}; speed-up relative to the first row)")


if __name__ == "__main__":
    main()
