#!/usr/bin/env python3
"""bench_latency.py — batch-1 latency of `distill eval` against ONNX Runtime on the same FP32
export of the same student, on the same SST-2 rows, in one run (issue 10: "no slower than ONNX
Runtime's").

    bench_latency.py [--distill BIN ...] [--model DIR|CKPT.h5] [--rows 64] [--rounds 3]
                     [--threads 2] [--workdir DIR] [--json FILE]

What it does
  1. prepares the first --rows rows of SST-2's test split (../shared/data/sst2/test.tsv) with
     `distill prepare` (bert-base-uncased vocabulary, labels 0,1);
  2. the student: --model (a Hugging Face folder or a training checkpoint, e.g.
     runs/demo/tiny/best), or else a TinyBERT-4-shaped student (4 layers, hidden 312, 12 heads,
     FFN 1200, 2 labels) made by a one-step `distill` fine-tune from random weights (its
     accuracy means nothing; its latency is the shape's);
  3. exports it with `distill export --onnx` (FP32, the plain graph);
  4. alternates, --rounds times: ONNX Runtime (CPUExecutionProvider, intra_op_num_threads =
     --threads, sequential) and `distill eval --batch-size 1 --threads N --latency-rows ROWS`
     for each --distill binary (several: e.g. a build before and after a change). Both sides time
     batch 1, one row at a time at its own length, the rows in file order, after a warm-up pass;
     distill eval reports the median over 3 passes (its own timer around input upload + forward),
     ONNX Runtime here the median over 3 passes of session.run (Python's call overhead included,
     a few microseconds);
  5. prints a table (median over the rounds of each round's median per sample, min and max) and
     one JSON object (also written to --json).

The machine may be shared: compare only figures from the same run; the rounds alternate so a
neighbour's load falls on every side alike.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import onnx_check as oc  # noqa: E402

STUDENT_YAML = """task: finetune
run:       {{name: latency-student, dir: {dir}, seed: 42, overwrite: true}}
device:    cpu
threads:   {threads}
student:   {{init: random, layers: 4, hidden: 312, heads: 12, intermediate: 1200, num_labels: 2}}
data:      {{train: {h5}, dev: {h5}, batch_size: 8, eval_batch_size: 32}}
losses:
  - {{type: hard_ce, weight: 1.0}}
optimizer: {{lr: 1.0e-4}}
train:     {{max_steps: 1, eval_every: 0, log_every: 1, checkpoint_every: 1, keep_last: 1}}
"""


def die(msg):
    print(f"bench_latency: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        die(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ort_latency_ms(sess, one, passes=3):
    """Median ms per sample over `passes` passes of the rows, after a warm-up pass."""
    for b in one:
        oc.ort_run(sess, b["ids"], b["types"], b["lengths"])
    times = []
    for _ in range(passes):
        for b in one:
            t = time.perf_counter()
            oc.ort_run(sess, b["ids"], b["types"], b["lengths"])
            times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def distill_latency_ms(binary, model, h5, threads, rows):
    out = run([binary, "eval", "--model", model, "--data", h5, "--batch-size", "1", "--threads", str(threads),
               "--latency-rows", str(rows), "--json"])
    d = json.loads(out.strip().splitlines()[-1])
    return float(d["latency_ms_b1"]), d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distill", action="append", help="distill binary (repeat to compare builds; "
                    "default build/train/distill)")
    ap.add_argument("--model", help="a Hugging Face folder or checkpoint (default: a random TinyBERT-4 student)")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--shared", default=os.environ.get("DISTILL_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")))
    a = ap.parse_args()
    binaries = a.distill or [os.path.join(REPO, "build", "train", "distill")]
    for b in binaries:
        if not os.access(b, os.X_OK):
            die(f"{b}: not an executable (build the distill target, or pass --distill BIN)")
    if a.rows < 1 or a.rounds < 1 or a.threads < 1:
        die("--rows, --rounds and --threads must be at least 1")
    work = a.workdir or tempfile.mkdtemp(prefix="bench-latency-")
    os.makedirs(work, exist_ok=True)
    tool = binaries[0]

    # 1. the rows
    src = os.path.join(a.shared, "sst2", "test.tsv")
    vocab = os.path.join(a.shared, "vocab", "bert-base-uncased-vocab.txt")
    for p in (src, vocab):
        if not os.path.exists(p):
            die(f"{p}: not found (the shared data folder; --shared DIR or DISTILL_SHARED_DATA)")
    cut = os.path.join(work, "rows.tsv")
    with open(src) as f, open(cut, "w") as g:
        for i, line in enumerate(f):
            if i > a.rows:
                break
            g.write(line)
    h5 = os.path.join(work, "rows.h5")
    run([tool, "prepare", "--vocab", vocab, "--input", cut, "--output", h5, "--max-seq", "128", "--labels", "0,1"])
    rows = oc.load_rows(h5)
    n = len(rows["lengths"])

    # 2. the student
    model = a.model
    if not model:
        cfg = os.path.join(work, "student.yaml")
        with open(cfg, "w") as f:
            f.write(STUDENT_YAML.format(dir=os.path.join(work, "student"), threads=a.threads, h5=h5))
        run([tool, "--config", cfg])
        model = os.path.join(work, "student", "final")
        if not os.path.isdir(model):
            die(f"{model}: the one-step fine-tune wrote no final model")

    # 3. the export
    onnx_path = os.path.join(work, "student.onnx")
    run([tool, "export", "--model" if os.path.isdir(model) else "--checkpoint", model, "--onnx", onnx_path])
    meta = oc.model_meta(onnx_path)["config"]
    shape = f"{meta['num_hidden_layers']}/{meta['hidden_size']}/{meta['num_attention_heads']}/{meta['intermediate_size']}"

    # 4. alternating rounds
    sess = oc.ort_session(onnx_path, threads=a.threads)
    one = [oc.batch(rows, np.array([i])) for i in range(n)]
    sides = ["onnxruntime"] + [f"distill[{i}]" for i in range(len(binaries))]
    got = {s: [] for s in sides}
    load = []
    for r in range(a.rounds):
        load.append(os.getloadavg()[0])
        got["onnxruntime"].append(ort_latency_ms(sess, one))
        for i, b in enumerate(binaries):
            ms, _ = distill_latency_ms(b, model, h5, a.threads, n)
            got[f"distill[{i}]"].append(ms)
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{s} {got[s][-1]:.3f} ms" for s in sides), file=sys.stderr)

    # 5. report
    import onnxruntime as ort
    ort_ms = statistics.median(got["onnxruntime"])
    result = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"), "threads": a.threads, "rows": n,
              "mean_tokens": float(np.mean(rows["lengths"])), "rounds": a.rounds, "model": shape,
              "onnxruntime_version": ort.__version__, "load_1min": load, "sides": []}
    print(f"batch-1 latency per sample, student {shape} (L/H/A/FFN), {n} SST-2 test rows "
          f"(mean {result['mean_tokens']:.1f} tokens), {a.threads} threads, {a.rounds} rounds, "
          f"{result['cpu']}, 1-min load {min(load):.1f}-{max(load):.1f}")
    print(f"{'side':<40} {'median ms':>10} {'min':>8} {'max':>8} {'vs ORT':>7}")
    for s in sides:
        name = "ONNX Runtime " + ort.__version__ if s == "onnxruntime" else f"distill eval ({binaries[int(s[8:-1])]})"
        med = statistics.median(got[s])
        print(f"{name:<40} {med:>10.3f} {min(got[s]):>8.3f} {max(got[s]):>8.3f} {med / ort_ms:>6.2f}x")
        result["sides"].append({"side": name, "median_ms": med, "rounds_ms": got[s], "ratio_to_ort": med / ort_ms})
    text = json.dumps(result)
    print(text)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
