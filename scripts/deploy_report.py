#!/usr/bin/env python3
"""deploy_report.py — the deployment report: teacher and student as ONNX, FP32 and INT8, plain and
optimised, with size, accuracy, F1 and latency, as one Markdown table.

    deploy_report.py --teacher SRC --student SRC --data TEST.tsv|TEST.h5 --distill build/train/distill
                     [--calib TRAIN.tsv|TRAIN.h5] [--calib-rows 300] [--fp16]
                     [--latency-rows 100] [--out report.md] [--workdir DIR] [--note TEXT]

SRC is what `distill export` takes: a Hugging Face folder or a training checkpoint (.h5). For each
model the script
  1. exports it with `distill export --onnx` (FP32; --fp16 also a float16 export), optimises it with
     ONNX Runtime's transformer optimizer (model_type bert; the fused operator counts are listed),
     and quantizes the plain and the optimised graph with scripts/quantize.py (dynamic INT8, QInt8
     weights per channel); with --calib also static INT8 (QDQ, MinMax calibration on --calib-rows
     rows of the training file);
  2. runs every file in ONNX Runtime (CPU) on every row of the labelled file: accuracy, F1 of class 1
     (binary tasks; macro F1 otherwise), how often its argmax agrees with the FP32 graph's, and the
     time for the whole file (batches of 32, 2 threads);
  3. times batch 1, one row at a time at its own length, over the first --latency-rows rows, after
     one warm-up pass, with 1 and with 2 intra-op threads: the median per sample;
  4. runs `distill eval` (the engine's own C forward) on the same prepared file with 1 and 2
     threads: its accuracy and F1 (which must match ONNX Runtime's FP32 row) and its batch-1 latency
     over the same first rows.
A TSV is first turned into HDF5 by `distill prepare` with the teacher's vocabulary, so ONNX Runtime
and the engine see exactly the same token ids.

The table has the columns of ONNX Runtime's BERT quantization tutorial (BERT-base on MRPC: FP32
F1 0.9019, 438 MB, 160 s; INT8 F1 0.8953, 181 MB, 90 s), plus accuracy, the agreement with FP32 and
per-sample latencies. Writes the Markdown to stdout (and to --out).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_check as oc  # noqa: E402
import quantize as q  # noqa: E402

REFERENCE = ("Reference (ONNX Runtime's BERT-base quantization tutorial, MRPC): FP32 F1 0.9019, "
             "438 MB, 160 s for the dev set; INT8 F1 0.8953, 181 MB, 90 s.")


def die(msg):
    print(f"deploy_report.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def scores(pred, labels, classes):
    acc = float((pred == labels).mean())
    f1s = []
    for c in ([1] if classes == 2 else range(classes)):
        tp = float(((pred == c) & (labels == c)).sum())
        f1s.append(2 * tp / max(1.0, float((pred == c).sum() + (labels == c).sum())))
    return acc, float(np.mean(f1s))


def predict(path, rows):
    """Logits of every row (batches of 32, length-sorted, 2 threads) and the seconds it took."""
    sess = oc.ort_session(path, threads=2)
    t = time.perf_counter()
    out = None
    for idx in oc.length_batches(rows["lengths"], 32):
        b = oc.batch(rows, idx)
        logits = oc.ort_run(sess, b["ids"], b["types"], b["lengths"])["logits"]
        if out is None:
            out = np.zeros((len(rows["lengths"]), logits.shape[1]), np.float32)
        out[idx] = logits
    return out, time.perf_counter() - t


def latency_ms(path, rows, n, threads):
    """Median ms per sample at batch 1 over the first n rows (each at its own length), after a
    warm-up pass over the same rows."""
    sess = oc.ort_session(path, threads=threads)
    n = min(n, len(rows["lengths"]))
    one = [oc.batch(rows, np.array([i])) for i in range(n)]
    for b in one:
        oc.ort_run(sess, b["ids"], b["types"], b["lengths"])
    times = []
    for b in one:
        t = time.perf_counter()
        oc.ort_run(sess, b["ids"], b["types"], b["lengths"])
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def engine_eval(distill, src, h5, threads, n):
    out = run([distill, "eval", "--model", src, "--data", h5, "--json", "--threads", str(threads),
               "--latency-rows", str(n)])
    return json.loads(out.strip().splitlines()[-1])


def model_rows(a, name, src, h5, rows, work):
    """The report's rows for one model, and its fused operator counts."""
    d = os.path.join(work, name)
    os.makedirs(d)
    fp32 = os.path.join(d, "fp32.onnx")
    run([a.distill, "export", "--model" if os.path.isdir(src) else "--checkpoint", src,
         "--onnx", fp32])
    cfg = oc.model_meta(fp32)["config"]
    if cfg.get("num_labels", 0) < 1:
        die(f"{src}: the model has no classifier (a BertModel): nothing to score")
    opt = os.path.join(d, "fp32-opt.onnx")
    counts = oc.optimize(fp32, opt, cfg["num_attention_heads"], cfg["hidden_size"])
    files = [("FP32", "plain", fp32), ("FP32", "optimised", opt)]
    int8 = os.path.join(d, "int8.onnx")
    q.quantize(fp32, int8)
    int8_opt = os.path.join(d, "int8-opt.onnx")
    q.quantize(fp32, int8_opt, optimize=True)
    files += [("INT8 dynamic", "plain", int8), ("INT8 dynamic", "optimised", int8_opt)]
    if a.calib:
        st = os.path.join(d, "int8-static.onnx")
        vocab = os.path.join(src, "vocab.txt") if os.path.isdir(src) else None
        q.quantize(fp32, st, static=True, calib=a.calib, calib_rows=a.calib_rows, vocab=vocab)
        files.append(("INT8 static", "plain", st))
    if a.fp16:
        f16 = os.path.join(d, "fp16.onnx")
        run([a.distill, "export", "--model" if os.path.isdir(src) else "--checkpoint", src,
             "--onnx", f16, "--fp16"])
        files.append(("FP16", "plain", f16))

    labels = rows["labels"]
    classes = int(max(labels.max() + 1, cfg["num_labels"]))
    ref = None
    out = []
    for prec, graph, path in files:
        logits, secs = predict(path, rows)
        pred = logits.argmax(1)
        if ref is None:
            ref = pred
        acc, f1 = scores(pred, labels, classes)
        out.append({"model": name, "precision": prec, "graph": graph,
                    "mb": os.path.getsize(path) / 1e6, "acc": acc, "f1": f1,
                    "agree": float((pred == ref).mean()), "secs": secs,
                    "ort1": latency_ms(path, rows, a.latency_rows, 1),
                    "ort2": latency_ms(path, rows, a.latency_rows, 2)})
        print(f"  {name} {prec} {graph}: {out[-1]['mb']:.1f} MB, accuracy {acc:.4f}, F1 {f1:.4f}",
              file=sys.stderr, flush=True)
    for threads in (1, 2):
        e = engine_eval(a.distill, src, h5, threads, a.latency_rows)
        out[0][f"eng{threads}"] = e["latency_ms_b1"]
        out[0]["eng_acc"], out[0]["eng_f1"] = e["accuracy"], e.get("f1")
    return out, counts


def fmt(v, spec, none="—"):
    return none if v is None else format(v, spec)


def table(rows):
    head = ("| model | precision | graph | size (MB) | accuracy | F1 | agrees with FP32 | set (s) | "
            "ORT 1 thread (ms) | ORT 2 threads (ms) | engine C 1 thread (ms) | "
            "engine C 2 threads (ms) |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['model']} | {r['precision']} | {r['graph']} | {r['mb']:.1f} | "
                     f"{r['acc']:.4f} | {r['f1']:.4f} | {r['agree']:.2%} | {r['secs']:.1f} | "
                     f"{r['ort1']:.2f} | "
                     f"{r['ort2']:.2f} | {fmt(r.get('eng1'), '.2f')} | {fmt(r.get('eng2'), '.2f')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--data", required=True, help="labelled TSV or prepared HDF5 (the test set)")
    ap.add_argument("--distill", required=True, help="the distill binary")
    ap.add_argument("--calib", help="training rows for static INT8 (TSV or prepared HDF5)")
    ap.add_argument("--calib-rows", type=int, default=300)
    ap.add_argument("--fp16", action="store_true", help="also an fp16 export")
    ap.add_argument("--latency-rows", type=int, default=100)
    ap.add_argument("--out")
    ap.add_argument("--workdir")
    ap.add_argument("--note", help="a line printed under the title (e.g. where the models come from)")
    a = ap.parse_args()
    for p in (a.teacher, a.student, a.data, a.distill) + ((a.calib,) if a.calib else ()):
        if not os.path.exists(p):
            die(f"{p}: no such file or folder")

    import onnxruntime
    if a.workdir:
        os.makedirs(a.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="deploy-report-", dir=a.workdir)
    try:
        h5 = a.data
        if not a.data.endswith((".h5", ".hdf5")):
            if not os.path.isdir(a.teacher):
                die("a TSV needs a teacher folder with vocab.txt to tokenise it (or give an .h5)")
            h5 = os.path.join(work, "data.h5")
            run([a.distill, "prepare", "--vocab", os.path.join(a.teacher, "vocab.txt"),
                 "--input", a.data, "--output", h5])
        rows = oc.load_rows(h5)
        if (rows["labels"] < 0).any():
            die(f"{a.data}: expected labels")
        all_rows, fused = [], {}
        for name, src in (("teacher", a.teacher), ("student", a.student)):
            print(f"deploy_report: {name} {src}", file=sys.stderr, flush=True)
            r, counts = model_rows(a, name, src, h5, rows, work)
            all_rows += r
            fused[name] = counts
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cpu = "?"
    if os.path.isfile("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    md = [f"# Deployment report: {os.path.basename(a.data)}, {len(rows['lengths'])} rows", ""]
    if a.note:
        md += [a.note, ""]
    md += [f"Teacher `{a.teacher}`, student `{a.student}`. ONNX Runtime {onnxruntime.__version__} "
           f"(CPU), {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}.", "",
           table(all_rows), "",
           "set (s): ONNX Runtime's time for every row of the file (batches of 32, 2 threads), "
           "the reference's time column. Latency: median per sample at batch 1 over the first "
           f"{min(a.latency_rows, len(rows['lengths']))} rows, each at its own length, after a "
           "warm-up pass. The engine's columns are `distill eval` (its own C forward, FP32) on the "
           "same prepared rows; it reports accuracy "
           + ", ".join(f"{r['eng_acc']:.4f} ({r['model']})" for r in all_rows if "eng_acc" in r)
           + ", which must equal the FP32 plain rows'. INT8 dynamic: QInt8 weights per output "
           "channel (scripts/quantize.py). Agreement: rows whose argmax equals the FP32 plain "
           "graph's. FP16 targets GPU runtimes; its CPU latency is shown for completeness.", ""]
    for name, c in fused.items():
        md.append(f"Fused by the optimizer ({name}): " +
                  ", ".join(f"{k} {v}" for k, v in c.items() if v) + ".")
    md += ["", REFERENCE]
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
