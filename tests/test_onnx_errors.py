#!/usr/bin/env python3
"""test_onnx_errors.py — bad ONNX export and quantization requests fail with a clear message and
leave nothing behind.

Through test_onnx_tool export (checkpoints/onnx_export.h) and, with --distill, `distill export
--onnx` (the command users run):
  - an unknown source (no such path; a file that is not a training checkpoint) -> exit 1,
    "distill: error: <path>: ..." naming what was expected;
  - an unwritable target (missing folder, a path below a regular file, a folder given as the file,
    a read-only folder when not running as root) -> exit 1 with the reason;
  - a bad opset (13, 18) or fp16 below opset 17 -> exit 1 with the accepted range;
  - a write that fails half-way (the file size limit, RLIMIT_FSIZE, set below the model's size) ->
    exit 1 with the write error;
  and after each: no file at the target, an existing file there unchanged, no temporary file left.
  Good exports through `distill export --onnx` from a folder and from a checkpoint pass
  onnx.checker (the command works end to end).
scripts/quantize.py: a missing input and an unwritable output folder exit non-zero with a message
and write nothing.
"""

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

failures = []
HERE = os.path.dirname(os.path.abspath(__file__))
QUANTIZE = os.path.join(HERE, "..", "scripts", "quantize.py")


def check(cond, msg):
    print(("ok    " if cond else "FAIL  ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def expect_error(argv, target, want, folder, label, limit_bytes=None):
    """Runs argv; expects exit 1, `want` in stderr after "distill: error:", nothing new in folder
    and target (absent or unchanged)."""
    before = listing(folder)
    old = open(target, "rb").read() if os.path.isfile(target) else None

    def limit():
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    r = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limit)
    err = r.stderr.strip().splitlines()
    last = err[-1] if err else ""
    check(r.returncode == 1 and last.startswith("distill: error:") and want in last,
          f"{label}: exit {r.returncode}, message {last!r} (want {want!r})")
    now = open(target, "rb").read() if os.path.isfile(target) else None
    check(now == old, f"{label}: target {'unchanged' if old is not None else 'not created'}")
    check(listing(folder) == before, f"{label}: no file left behind in {folder}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, help="test_onnx_tool")
    ap.add_argument("--hf-tool", required=True, help="test_hf_tool (makes a small model)")
    ap.add_argument("--distill", help="the distill binary (also test `distill export --onnx`)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="onnx-errors-", dir=a.workdir)
    try:
        run(a, work)
    finally:
        for root, dirs, _ in os.walk(work):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"test_onnx_errors: {len(failures)} check(s) failed:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print("test_onnx_errors: all checks passed")


def run(a, work):
    model = os.path.join(work, "model")
    subprocess.run([a.hf_tool, "export", model, "-", "vocab_size=97", "hidden_size=32",
                    "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=37",
                    "id2label=a,b"], check=True, stdout=subprocess.DEVNULL)
    out_dir = os.path.join(work, "out")
    os.makedirs(out_dir)
    target = os.path.join(out_dir, "model.onnx")
    not_ckpt = os.path.join(work, "notes.h5")
    with open(not_ckpt, "w") as f:
        f.write("not an HDF5 file\n")

    def exporters(src, dst, *extra):
        yield "tool", [a.tool, "export", src, dst, *extra]
        if a.distill:
            flag = "--model" if os.path.isdir(src) else "--checkpoint"
            yield "distill", [a.distill, "export", flag, src, "--onnx", dst, *extra]

    missing = os.path.join(work, "no-such-model")
    for who, argv in exporters(missing, target):
        expect_error(argv, target, missing, out_dir, f"{who}: unknown source (missing path)")
    for who, argv in exporters(not_ckpt, target):
        expect_error(argv, target, not_ckpt, out_dir, f"{who}: a file that is not a checkpoint")

    for who, argv in exporters(model, os.path.join(work, "no-such-folder", "m.onnx")):
        expect_error(argv, target, "does not exist", out_dir, f"{who}: missing folder")
    for who, argv in exporters(model, os.path.join(not_ckpt, "m.onnx")):
        expect_error(argv, target, "does not exist", out_dir, f"{who}: a folder that is a file")
    for who, argv in exporters(model, out_dir):
        expect_error(argv, target, "found a folder", out_dir, f"{who}: a folder as the file name")
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        ro = os.path.join(work, "read-only")
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        for who, argv in exporters(model, os.path.join(ro, "m.onnx")):
            expect_error(argv, target, "not writable", ro, f"{who}: read-only folder")
    else:
        print("note  running as root: the read-only folder case is not tested (root writes anywhere)")

    for opset in ("13", "18"):
        for who, argv in exporters(model, target, "--opset", opset):
            expect_error(argv, target, "expected 14 to 17", out_dir, f"{who}: opset {opset}")
    for who, argv in exporters(model, target, "--opset", "14", "--fp16"):
        expect_error(argv, target, "needs opset 17", out_dir, f"{who}: fp16 at opset 14")

    # an existing file stays as it was when an export fails, also half-way through writing
    with open(target, "w") as f:
        f.write("previous model\n")
    for who, argv in exporters(model, target, "--opset", "99"):
        expect_error(argv, target, "expected 14 to 17", out_dir, f"{who}: bad opset over a file")
    for who, argv in exporters(model, target):
        expect_error(argv, target, "write failed", out_dir, f"{who}: write fails half-way",
                     limit_bytes=20000)

    if a.distill:
        ckpt = os.path.join(work, "model.h5")
        subprocess.run([a.tool, "ckpt", model, ckpt], check=True)
        for flag, src in (("--model", model), ("--checkpoint", ckpt)):
            good = os.path.join(out_dir, "good.onnx")
            r = subprocess.run([a.distill, "export", flag, src, "--onnx", good],
                               capture_output=True, text=True)
            ok = r.returncode == 0 and os.path.isfile(good)
            if ok:
                import onnx
                onnx.checker.check_model(onnx.load(good), full_check=True)
            check(ok, f"distill export {flag} SRC --onnx FILE: exit {r.returncode} {r.stderr.strip()}")
            if os.path.isfile(good):
                os.remove(good)

    # scripts/quantize.py
    src = os.path.join(work, "src.onnx")
    subprocess.run([a.tool, "export", model, src], check=True, stdout=subprocess.DEVNULL)
    for label, argv, folder in (
            ("missing input", [os.path.join(work, "nope.onnx"), os.path.join(out_dir, "q.onnx")], out_dir),
            ("missing output folder", [src, os.path.join(work, "nope", "q.onnx")], work)):
        before = listing(folder)
        r = subprocess.run([a.python, QUANTIZE, *argv], capture_output=True, text=True)
        last = (r.stderr.strip().splitlines() or [""])[-1]
        check(r.returncode != 0 and last.startswith("quantize.py:") and listing(folder) == before,
              f"quantize.py {label}: exit {r.returncode}, {last!r}, nothing written")


if __name__ == "__main__":
    main()
