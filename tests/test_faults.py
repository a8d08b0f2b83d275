"""test_faults.py — what a training run does when the world misbehaves (DESIGN §7: nothing lost,
nothing half-written). One process; the multi-rank cases are in test_distributed.py.

    test_faults.py CASE --distill PATH/TO/distill [--keep]

CASE:
  signal      SIGTERM, SIGINT and SIGUSR1 (each in its own run) mid-run: the run finishes the step,
              writes that step's checkpoint, names it and the resume command, exits 75; `--resume
              auto` then ends with final/ and best/ byte-identical to an uninterrupted run's and the
              same metrics.jsonl (less wall-clock fields).
  twice       a second SIGTERM while the first is honoured: exit 143 at once; no temporary file is
              left, every checkpoint left is complete, and `--resume auto` ends like the reference.
  nonfinite   a NaN loss at step 3 (DISTILL_TEST_NAN=0:3): a warning naming step 3 and the batch's
              rows; the run goes on; checkpoint 3 holds exactly checkpoint 2's weights, moments and
              optimizer clock. The same for a NaN gradient (":grad"). NaN at steps 3-5 with
              train.max_bad_steps 3: exit 1 with an error naming step 5, no checkpoint after step 2.
  disk        writes that fail on a file-size limit (RLIMIT_FSIZE; the same errno path as a full
              disk): the checkpoint of a resumed run, metrics.jsonl (the run stops), export --onnx,
              export --hf, prepare --output and predict --out each exit 1 with "File too large" and the file's name, leave the
              previous file byte-identical and no temporary file.
  crash       scripts/crash_test.sh --kills 4: SIGKILL at random moments (checkpoints at every
              step, so some kills land inside writes), resumed each time; ends byte-identical.

Every run uses tests/e2e/resume.yaml (dropout, grad_accum 2, projections, schedules, dev
evaluations) with `threads: 1`, so runs are bitwise reproducible. Exit 0 on success, 1 on a failed
check.
"""
import argparse
import glob
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import test_e2e  # noqa: E402  (check, run, prepare, strip_timing, same_file, toy_task)
from test_e2e import FAILURES, check, same_file, strip_timing  # noqa: E402

CONFIG = os.path.join(HERE, "e2e", "resume.yaml")
STEPS = 30
HOOKS = ("DISTILL_STOP_AFTER_STEP", "DISTILL_TEST_NAN", "DISTILL_TEST_STEP_SLEEP_MS")


def env_with(extra=None):
    e = {k: v for k, v in os.environ.items() if k not in HOOKS}
    e.update(extra or {})
    return e


def train(distill, d, run_dir, *extra, env=None, expect_rc=0, limit_bytes=None):
    def limit():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    cmd = [distill, "--config", CONFIG, "--set", "run.dir=" + run_dir] + list(extra)
    p = subprocess.run(cmd, cwd=d, env=env_with(env), capture_output=True, text=True, preexec_fn=limit)
    if expect_rc is not None and p.returncode != expect_rc:
        sys.stdout.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit("FAIL  %s exited %d, expected %d" % (" ".join(cmd), p.returncode, expect_rc))
    return p


def temps(folder):
    return [n for n in os.listdir(folder) if ".tmp-" in n] if os.path.isdir(folder) else []


def same_run(d, ref, got, what):
    for f in ("final/model.safetensors", "best/model.safetensors"):
        check(same_file(os.path.join(d, ref, f), os.path.join(d, got, f)),
              "%s: %s byte-identical to the uninterrupted run's" % (what, f))
    check(strip_timing(os.path.join(d, ref, "metrics.jsonl")) == strip_timing(os.path.join(d, got, "metrics.jsonl")),
          "%s: metrics.jsonl equal to the uninterrupted run's (less wall-clock fields)" % what)


def start_slow(distill, d, run_dir):
    """A run that pauses 150 ms after each step, and waits until it has logged step 3."""
    cmd = [distill, "--config", CONFIG, "--set", "run.dir=" + run_dir]
    p = subprocess.Popen(cmd, cwd=d, env=env_with({"DISTILL_TEST_STEP_SLEEP_MS": "150"}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(d, run_dir, "metrics.jsonl")
    t0 = time.time()
    while time.time() - t0 < 60 and p.poll() is None:
        if os.path.exists(metrics) and sum(1 for line in open(metrics) if '"split"' not in line) >= 3:
            break
        time.sleep(0.02)
    return p


def case_signal(distill, d):
    train(distill, d, "ref")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        name = sig.name
        run_dir = "r_" + name
        p = start_slow(distill, d, run_dir)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        check(p.returncode == 75, "%s: exit status 75 (stopped, resumable), got %d" % (name, p.returncode))
        m = re.search(r"distill: stopped by %s after step (\d+) of %d; checkpoint: (\S+)" % (name, STEPS), err)
        check(m is not None, "%s: says at which step it stopped and where the checkpoint is: %s"
              % (name, [line for line in err.splitlines() if "stopped" in line][:1]))
        check(re.search(r"resume with: distill --config \S+ --set run.dir=%s --resume auto\n" % run_dir, err)
              is not None, "%s: prints the command that resumes it" % name)
        if m:
            step = int(m.group(1))
            check(3 <= step < STEPS and os.path.exists(os.path.join(d, m.group(2))),
                  "%s: stopped mid-run (step %d) and ckpt-%d.h5 exists" % (name, step, step))
        check(not os.path.exists(os.path.join(d, run_dir, "final")), "%s: no final/ (not finished)" % name)
        p2 = train(distill, d, run_dir, "--resume", "auto")
        check(m is not None and ("resuming from %s/ckpt-%s.h5" % (run_dir, m.group(1))) in p2.stderr,
              "%s: --resume auto starts from that checkpoint" % name)
        same_run(d, "ref", run_dir, name)


def case_twice(distill, d):
    train(distill, d, "ref")
    p = start_slow(distill, d, "tw")
    p.send_signal(signal.SIGTERM)
    time.sleep(0.05)  # two signals at once would merge into one: the second comes while the first is honoured
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    check(p.returncode == 143, "a second SIGTERM exits at once with 143 (128 + 15), got %d" % p.returncode)
    check("received again: exiting now" in err, "it says it is exiting now")
    check(not temps(os.path.join(d, "tw")), "no temporary file left: %s" % temps(os.path.join(d, "tw")))
    for c in glob.glob(os.path.join(d, "tw", "ckpt-*.h5")):
        q = subprocess.run([distill, "info", c], capture_output=True, text=True)
        check(q.returncode == 0 and re.search(r"hash\s+ok", q.stdout) is not None,
              "%s is complete (distill info: hash ok)" % os.path.basename(c))
    train(distill, d, "tw", "--resume", "auto")
    same_run(d, "ref", "tw", "after a second signal")


def h5_state(path):
    """{dataset: bytes} of the weights, projections and moments, and the state attributes."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("student", "projections", "optim"):
                out[name] = obj[()].tobytes()
        f.visititems(visit)
        attrs = {k: int(f.attrs[k]) for k in ("step", "optimizer_steps", "bad_steps")}
    return out, attrs


def case_nonfinite(distill, d):
    keep = ["--set", "train.checkpoint_every=1", "--set", "train.keep_last=0"]
    for kind, hook, what in (("loss", "0:3", "the loss is not finite"),
                             ("grad", "0:3:1:grad", "the gradient norm is not finite")):
        run_dir = "nan_" + kind
        p = train(distill, d, run_dir, *keep, env={"DISTILL_TEST_NAN": hook})
        check(re.search(r"distill: warning: step 3: %s .*the update is skipped \(1 in a row, train.max_bad_steps 3\)"
                        % re.escape(what), p.stderr) is not None,
              "%s: a warning names step 3, what was not finite and the limit" % kind)
        check(re.search(r"the batch's rows \(0-based, in data.train\): \d+(, \d+)*, \.\.\. \(32 rows\)", p.stderr)
              is not None, "%s: the warning names the batch's rows" % kind)
        w2, a2 = h5_state(os.path.join(d, run_dir, "ckpt-2.h5"))
        w3, a3 = h5_state(os.path.join(d, run_dir, "ckpt-3.h5"))
        w4, a4 = h5_state(os.path.join(d, run_dir, "ckpt-4.h5"))
        check(w2 == w3 and len(w2) > 10, "%s: after the skipped step 3 the weights, projections and moments are "
              "exactly step 2's (%d tensors)" % (kind, len(w2)))
        check(a3 == {"step": 3, "optimizer_steps": 2, "bad_steps": 1} and a4["optimizer_steps"] == 3
              and a4["bad_steps"] == 0 and w4 != w3,
              "%s: step 3 counted, optimizer clock held (%s), updates resume at step 4" % (kind, a3))
        check(os.path.exists(os.path.join(d, run_dir, "final")), "%s: the run finishes" % kind)
    p = train(distill, d, "nan3", "--set", "train.checkpoint_every=1", env={"DISTILL_TEST_NAN": "0:3:3"}, expect_rc=1)
    check(re.search(r"distill: error: step 5: 3 steps in a row with a non-finite loss or gradient "
                    r"\(train.max_bad_steps is 3\)", p.stderr) is not None,
          "three NaN steps in a row stop the run at step 5: %s"
          % [line for line in p.stderr.splitlines() if "error" in line][:1])
    left = sorted(os.path.basename(c) for c in glob.glob(os.path.join(d, "nan3", "ckpt-*.h5")))
    check("ckpt-4.h5" in left and "ckpt-5.h5" not in left,
          "skipped steps 3 and 4 were checkpointed as steps; the failed step 5 was not: %s" % left)
    p = train(distill, d, "nan_1", "--set", "train.max_bad_steps=1", env={"DISTILL_TEST_NAN": "0:3"}, expect_rc=1)
    check("step 3: 1 steps in a row" in p.stderr, "train.max_bad_steps 1: the first bad step stops the run")


def run_limited(cmd, cwd, limit_bytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return subprocess.run(cmd, cwd=cwd, env=env_with(), capture_output=True, text=True, preexec_fn=limit)


def snapshot(paths):
    out = {}
    for p in paths:
        if os.path.isdir(p):
            for n in sorted(os.listdir(p)):
                out[os.path.join(p, n)] = open(os.path.join(p, n), "rb").read()
        else:
            out[p] = open(p, "rb").read()
    return out


def case_disk(distill, d):
    # a run stopped at step 12 (after its checkpoint), then resumed under a 16 KiB file-size limit:
    # the next checkpoint (step 18: checkpoint_every 6; ~120 KB) cannot be written
    train(distill, d, "run", env={"DISTILL_STOP_AFTER_STEP": "12"}, expect_rc=3)
    rd = os.path.join(d, "run")
    before = snapshot([os.path.join(rd, "ckpt-12.h5")])
    p = train(distill, d, "run", "--resume", "auto", limit_bytes=16384, expect_rc=1)
    check(re.search(r"distill: error: run/ckpt-18\.h5: cannot write checkpoint: .*File too large", p.stderr)
          is not None, "checkpoint: the error names the file and the reason: %s"
          % [line for line in p.stderr.splitlines() if "error" in line][:1])
    check(snapshot([os.path.join(rd, "ckpt-12.h5")]) == before, "checkpoint: the previous checkpoint is intact")
    check(not os.path.exists(os.path.join(rd, "ckpt-18.h5")) and not temps(rd),
          "checkpoint: no ckpt-18.h5 and no temporary file (%s)" % temps(rd))
    check(not os.path.exists(os.path.join(rd, "final")), "checkpoint: training stopped (no final/)")

    # metrics.jsonl: a 2 KiB limit stops the run at the line that crosses it (no checkpoint or best/ due
    # before: checkpoints at the epoch's end, best/ not kept)
    p = train(distill, d, "mj", "--set", "train.checkpoint_every=0", "--set", "train.save_best=false",
              limit_bytes=2048, expect_rc=1)
    check(re.search(r"distill: error: mj/metrics\.jsonl: cannot write: File too large; stopping", p.stderr)
          is not None and not os.path.exists(os.path.join(d, "mj", "final")),
          "metrics.jsonl: a failed write stops the run, naming the file and the reason")

    ckpt = os.path.join(rd, "ckpt-12.h5")
    test_e2e.run([distill, "export", "--checkpoint", ckpt, "--onnx", "m.onnx", "--hf", "hf"], d)
    test_e2e.run([distill, "predict", "--model", "hf", "--input", "train.tsv", "--output", "probs", "--out",
                  "p.jsonl"], d)
    cases = [("export --onnx", [distill, "export", "--checkpoint", ckpt, "--onnx", "m.onnx"], ["m.onnx"]),
             ("export --hf", [distill, "export", "--checkpoint", ckpt, "--hf", "hf"], ["hf"]),
             ("prepare", [distill, "prepare", "--vocab", "vocab.txt", "--input", "train.tsv", "--output", "train.h5",
                          "--max-seq", "16", "--labels", "neg,pos"], ["train.h5"]),
             ("predict --out", [distill, "predict", "--model", "hf", "--input", "train.tsv", "--output", "probs",
                                "--out", "p.jsonl"], ["p.jsonl"])]
    for what, cmd, outs in cases:
        paths = [os.path.join(d, o) for o in outs]
        before = snapshot(paths)
        p = run_limited(cmd, d, 4096)
        check(p.returncode == 1 and "File too large" in p.stderr and outs[0] in p.stderr,
              "%s: exit 1 naming %s and the reason: %s" % (what, outs[0], p.stderr.strip().splitlines()[-1:]))
        check(snapshot(paths) == before, "%s: %s is unchanged" % (what, outs[0]))
        check(not temps(d), "%s: no temporary file left (%s)" % (what, temps(d)))


def case_crash(distill, d):
    p = subprocess.run(["bash", os.path.join(REPO, "scripts", "crash_test.sh"), "--kills", "4", "--distill", distill],
                       env=env_with({"DISTILL_PYTHON": sys.executable}), capture_output=True, text=True, timeout=600)
    sys.stdout.write(p.stdout)
    check(p.returncode == 0 and "passed: 4 kills" in p.stdout, "crash_test.sh --kills 4 passes:\n" + p.stderr[-2000:])


CASES = {"signal": case_signal, "twice": case_twice, "nonfinite": case_nonfinite, "disk": case_disk,
         "crash": case_crash}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--distill", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    distill = os.path.abspath(a.distill)
    d = tempfile.mkdtemp(prefix="distill-faults-%s-" % a.case)
    test_e2e.toy_task.write_task(d)
    test_e2e.prepare(distill, d)
    CASES[a.case](distill, d)
    if FAILURES or a.keep:
        print("files kept in", d)
    else:
        shutil.rmtree(d)
    print("%d checks failed" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
