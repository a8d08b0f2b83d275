"""test_cache.py — the teacher-logit cache (`distill cache`, teacher.cache), end to end on the toy task.

    test_cache.py CASE --distill PATH/TO/distill [--keep]

CASE:
  same      a logits-only run (logits_kd + hard_ce) on a train file cached by `distill cache` equals the
            same run with the live teacher (teacher.cache: off): the same loss at every logged step
            and the same final weights, within the tolerance stated at TOL below; the cached run runs
            no teacher forward ("teacher forwards: 0") and says where its logits come from, the live
            one runs one per micro-step; a run that needs hidden states still runs the teacher.
  refuse    a cache made by another teacher, for another vocabulary, for another max_seq (the file's
            and data.max_seq) or by hand without identity is refused with an error naming both
            values, and nothing is written (no run folder); teacher.cache: required without a cache
            is refused; `distill cache` with a bad teacher leaves the file byte for byte as it was.

Runs use `threads: 1` and fixed seeds. Uses h5py (the test venv) to read and transplant caches.
Generated files go to a temporary folder (removed on success; kept with --keep or on failure).
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402  (check, run, train, read_metrics, prepare, toy_task)

check, run, train, read_metrics = e2e.check, e2e.run, e2e.train, e2e.read_metrics

# The cached logits come from `distill cache` batches (32 rows in file order, each padded to its
# longest row); the live teacher sees the training batches (16 shuffled rows, padded differently).
# Padding is masked exactly (exp of the mask underflows to 0), but the GEMMs may run on other
# shapes, where a BLAS may block and sum in another order: each logit could then differ by fp32
# rounding (~1e-7 relative), grown by 40 AdamW steps (lr 3e-3) along the trajectory. Measured on
# this project's CPU build (OpenBLAS, 1 thread, these tiny shapes): no difference at all, bitwise.
# TOL allows rounding-level drift elsewhere and is still far below what a wrong cache does (the
# control below, logits x 2, moves the loss by > 1e-2 relative).
TOL_LOSS = 1e-4   # relative, per logged step
TOL_WEIGHT = 1e-4  # absolute, largest over every tensor element (weights are O(0.1))

LOGITS_ONLY = "losses=[{type: logits_kd, weight: 1.0, temperature: 2.0}, {type: hard_ce, weight: 0.5}]"
SHORT = ["--set", "train={max_steps: 40, eval_every: 20, log_every: 5, checkpoint_every: 0}", "--set", "data.test="]


def setup(distill, d):
    e2e.toy_task.write_task(d)
    e2e.prepare(distill, d)
    train(distill, d, "teacher.yaml", "--set", "train.max_steps=20", "--set", "train.eval_every=0")
    shutil.copy(os.path.join(d, "train.h5"), os.path.join(d, "train_c.h5"))
    _, out, _ = run([distill, "cache", "--teacher", "teacher/best", "--data", "train_c.h5", "--threads", "1"], d)
    check("train_c.h5/teacher_logits" in out, "distill cache reports what it wrote: %s" % out.strip())


def student(distill, d, name, *extra, expect_rc=0):
    return train(distill, d, "student.yaml", "--set", "run.dir=" + name, "--set", "data.train=train_c.h5",
                 "--set", LOGITS_ONLY, *SHORT, *extra, expect_rc=expect_rc)


def case_same(distill, d):
    import h5py
    import numpy as np
    from safetensors.numpy import load_file
    setup(distill, d)
    with h5py.File(os.path.join(d, "train_c.h5"), "r") as f:
        tl = f["teacher_logits"]
        n = f["lengths"].shape[0]
        check(tl.shape == (n, 2) and tl.dtype == np.float32, "/teacher_logits is f32 [%d, 2]: %s %s" % (n, tl.shape, tl.dtype))
        check(len(tl.attrs["teacher_sha256"]) == 64 and tl.attrs["max_seq"] == 16 and
              tl.attrs["teacher_precision"] == "fp32", "the cache records the teacher's sha256, max_seq 16, fp32")
        check(np.isfinite(tl[...]).all() and np.abs(tl[...]).max() > 0, "the cached logits are finite, not all zero")

    _, out_c, _ = student(distill, d, "cached")
    _, out_l, _ = student(distill, d, "live", "--set", "teacher.cache=off")
    check("teacher: logits from the cache in train_c.h5" in out_c, "the cached run says its logits come from the cache")
    check("teacher forwards: 0 " in out_c, "the cached run ran no teacher forward")
    check("teacher forwards: 40 " in out_l and "logits from the cache" not in out_l,
          "the live run (teacher.cache: off) ran 40 teacher forwards (1 per micro-step)")

    a, ea = read_metrics(os.path.join(d, "cached"))
    b, eb = read_metrics(os.path.join(d, "live"))
    check([r["step"] for r in a] == [r["step"] for r in b] and len(a) == 8, "the same 8 logged steps")
    worst = max(abs(x["loss"] - y["loss"]) / abs(y["loss"]) for x, y in zip(a, b))
    check(worst <= TOL_LOSS, "the same loss at every logged step: worst relative difference %.3g <= %g" % (worst, TOL_LOSS))
    for k in ("logits_kd", "hard_ce"):
        w = max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-6) for x, y in zip(a, b))
        check(w <= TOL_LOSS, "the same %s at every logged step: worst relative difference %.3g" % (k, w))
    ta = load_file(os.path.join(d, "cached", "final", "model.safetensors"))
    tb = load_file(os.path.join(d, "live", "final", "model.safetensors"))
    check(sorted(ta) == sorted(tb), "the same tensors")
    wd = max(float(np.abs(ta[k] - tb[k]).max()) for k in ta)
    check(wd <= TOL_WEIGHT, "the same final weights: largest difference %.3g <= %g" % (wd, TOL_WEIGHT))
    acc_a = [e["accuracy"] for e in ea if e["split"] == "dev"]
    acc_b = [e["accuracy"] for e in eb if e["split"] == "dev"]
    check(acc_a == acc_b, "the same dev accuracies %s / %s" % (acc_a, acc_b))

    # control: the same run on a cache whose logits were changed (x 2, identity kept) is not equal,
    # so the comparison above can fail
    shutil.copy(os.path.join(d, "train_c.h5"), os.path.join(d, "train_x2.h5"))
    with h5py.File(os.path.join(d, "train_x2.h5"), "a") as f:
        f["teacher_logits"][...] = 2 * f["teacher_logits"][...]
    train(distill, d, "student.yaml", "--set", "run.dir=x2", "--set", "data.train=train_x2.h5", "--set", LOGITS_ONLY,
          *SHORT)
    x, _ = read_metrics(os.path.join(d, "x2"))
    diff = abs(x[0]["logits_kd"] - b[0]["logits_kd"]) / abs(b[0]["logits_kd"])
    check(diff > 1e-2, "control: other cached logits change logits_kd at step 5 by %.3g relative (> 1e-2)" % diff)

    # hidden states are not in the cache: a run that needs them runs the teacher (and says why)
    _, out_h, err_h = train(distill, d, "student.yaml", "--set", "run.dir=hidden", "--set", "data.train=train_c.h5",
                            "--set", "losses=[{type: logits_kd}, {type: hidden_mse, layers: uniform}]",
                            "--set", "train={max_steps: 3, eval_every: 0}", "--set", "data.test=")
    check("teacher forwards: 3 " in out_h and "has a teacher-logit cache, but the losses need" in err_h,
          "a run with hidden_mse runs the teacher (3 forwards) and notes why the cache is unused")


def refused(distill, d, name, want, *extra, data="train_c.h5"):
    _, _, err = train(distill, d, "student.yaml", "--set", "run.dir=" + name, "--set", "data.train=" + data,
                      "--set", LOGITS_ONLY, *SHORT, *extra, expect_rc=1)
    ok = all(w in err for w in want)
    check(ok, "%s: refused with %s%s" % (name, want, "" if ok else "; stderr:\n" + err[-1500:]))
    check(not os.path.exists(os.path.join(d, name)), "%s: nothing written (no run folder)" % name)


def transplant(d, src, dst):
    """Copies /teacher_logits with its attributes from src into dst (another prepared file)."""
    import h5py
    with h5py.File(os.path.join(d, src), "r") as fs, h5py.File(os.path.join(d, dst), "a") as fd:
        fs.copy("teacher_logits", fd)


def case_refuse(distill, d):
    import h5py
    setup(distill, d)
    # another teacher: same shape, another seed
    train(distill, d, "teacher.yaml", "--set", "run.dir=teacher2", "--set", "run.seed=5",
          "--set", "train.max_steps=5", "--set", "train.eval_every=0")
    shutil.copy(os.path.join(d, "train.h5"), os.path.join(d, "train_t2.h5"))
    run([distill, "cache", "--teacher", "teacher2/best", "--data", "train_t2.h5", "--threads", "1"], d)
    refused(distill, d, "r_teacher", ["made by another teacher: teacher2/best", "the run's teacher is teacher/best",
                                      "teacher.cache: off"], data="train_t2.h5")
    # another max_seq: the run's data.max_seq, and a cache moved into a file prepared with max_seq 12
    refused(distill, d, "r_seq_key", ["made for max_seq 16, the run's max_seq is 12 (data.max_seq)"],
            "--set", "data.max_seq=12")
    run([distill, "prepare", "--vocab", "vocab.txt", "--input", "train.tsv", "--output", "train12.h5",
         "--max-seq", "12", "--labels", "neg,pos"], d)
    transplant(d, "train_c.h5", "train12.h5")
    refused(distill, d, "r_seq_file", ["made for max_seq 16, the run's max_seq is 12 (the file's)"], data="train12.h5")
    # another vocabulary of the same size (one filler word renamed): the file's vocab_sha256 differs
    with open(os.path.join(d, "vocab.txt")) as f:
        words = f.read().split("\n")
    words[-2] = "zzz"
    with open(os.path.join(d, "vocab2.txt"), "w") as f:
        f.write("\n".join(words))
    run([distill, "prepare", "--vocab", "vocab2.txt", "--input", "train.tsv", "--output", "train_v2.h5",
         "--max-seq", "16", "--labels", "neg,pos"], d)
    transplant(d, "train_c.h5", "train_v2.h5")
    refused(distill, d, "r_vocab", ["made for another vocabulary"], data="train_v2.h5")
    # logits without identity (written by hand)
    shutil.copy(os.path.join(d, "train.h5"), os.path.join(d, "train_raw.h5"))
    with h5py.File(os.path.join(d, "train_c.h5"), "r") as fs, h5py.File(os.path.join(d, "train_raw.h5"), "a") as fd:
        fd["teacher_logits"] = fs["teacher_logits"][...]
    refused(distill, d, "r_raw", ["has no teacher identity"], data="train_raw.h5")
    # required, without a cache
    refused(distill, d, "r_required", ["teacher.cache: required, but train.h5 has no teacher-logit cache",
                                       "distill cache --teacher teacher/best --data train.h5"],
            "--set", "teacher.cache=required", data="train.h5")
    # `distill cache` that fails leaves the file as it was
    with open(os.path.join(d, "train_c.h5"), "rb") as f:
        before = f.read()
    _, _, err = run([distill, "cache", "--teacher", "no_such_teacher", "--data", "train_c.h5"], d, expect_rc=1)
    with open(os.path.join(d, "train_c.h5"), "rb") as f:
        check(f.read() == before, "a failed distill cache leaves the file byte for byte")
    check("no_such_teacher" in err, "the failed distill cache names the teacher: %s" % err.strip()[-300:])
    check(not [n for n in os.listdir(d) if ".tmp-" in n], "no temporary left behind")
    _, _, err = run([distill, "cache", "--teacher", "teacher/best"], d, expect_rc=2)
    check("--teacher and --data are required" in err, "cache without --data is a usage error")


CASES = {"same": case_same, "refuse": case_refuse}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--distill", required=True, help="the distill binary")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    distill = os.path.abspath(a.distill)
    d = tempfile.mkdtemp(prefix="distill-cache-%s-" % a.case)
    try:
        CASES[a.case](distill, d)
    except SystemExit as e:
        print(e)
        e2e.FAILURES.append(str(e))
    if e2e.FAILURES or a.keep:
        print("scratch folder kept: %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    if e2e.FAILURES:
        print("%d check(s) failed" % len(e2e.FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
