"""test_distributed.py — data-parallel training over MPI (DESIGN §8), on the CPU.

    test_distributed.py CASE --distill PATH/TO/distill [--mpirun mpirun] [--keep]

Every case runs the toy task of tests/e2e (prepared by `distill prepare`) with tests/e2e/resume.yaml:
a distillation with dropout on, grad_accum 2, per-pair projections, a temperature and a cosine
schedule, dev evaluations, and an epoch boundary inside an accumulation whose last batch (6 rows)
leaves rank 1 an empty share. `threads: 1` everywhere, so each rank is bitwise reproducible.

CASE:
  equal     2 ranks (global batch 16, 8 per rank) end where 1 rank ends, within fp32 reduction order
            (final weights and every logged loss), after 30 steps; a second 2-rank run is bitwise
            identical to the first; DISTILL_FORCE_COMM=1 with 1 rank (every reduction through MPI)
            is bitwise identical to the plain run.
  resume    2 ranks stopped at a checkpoint and resumed by 1 rank, and 1 rank resumed by 2 ranks,
            end where the uninterrupted 1-rank run ends (same tolerance).
  kill      rank 1 killed (SIGKILL) mid-run: the job exits non-zero within 60 s, the output names
            rank 1, and every ckpt-*.h5 left is complete (distill info: hash ok).
  hang      rank 1 stops answering (DISTILL_TEST_HANG=1:7, DISTILL_COMM_TIMEOUT=5): rank 0 names it
            and the job exits non-zero within 60 s.
  nan       rank 1's loss is NaN at step 4 (DISTILL_TEST_NAN=1:4): every rank skips that update
            (warning naming the step, rank 1 names its rows) and the run ends normally; NaN at
            steps 4-6 with train.max_bad_steps 3: both ranks stop at step 6 with the same message.
  signal    SIGTERM sent to rank 1 alone mid-run: both ranks stop after the same step, rank 0
            writes that step's checkpoint and says so, the job exits 75; `--resume auto` on 2
            ranks then ends bitwise where an uninterrupted 2-rank run ends.
  mismatch  ranks started with different configs (MPMD: one with --set optimizer.lr=...) refuse to
            start, naming the differing rank; nothing is written.
  slurm     scripts/slurm/distill.sbatch runs as written (a stand-in srun starts 2 MPI ranks).
  nccl      (GPU) 1 rank whose reductions all go through NCCL equals the plain CUDA run bitwise;
            exits 77 (skipped) without a GPU unless DISTILL_EXPECT_GPU=1.
  bench     `distill bench --from-data` takes the training batches through the same Trainer step:
            its first loss equals step 1 of `distill --config` (bitwise, as printed).
Exit status 0 on success, 1 on a failed check.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "e2e")
sys.path.insert(0, FIXTURES)
import toy_task  # noqa: E402

CONFIG = os.path.join(FIXTURES, "resume.yaml")
FAILURES = []

# Tolerance between rank counts. The only difference is the order of fp32 sums: a rank averages its
# 8 rows and the all-reduce adds the two shares, where one rank sums 16 rows at once (relative
# error ~1e-7 per step in each gradient). AdamW divides by sqrt(v), so a relative gradient error
# becomes a relative error in the update, which is at most lr = 2e-3 per weight and step: after 30
# steps the weights can differ by ~30 x 2e-3 x 1e-6 ~ 6e-8 (measured: 6e-8 on weights of size ~1).
# 1e-5 leaves two orders of magnitude for unlucky roundings yet fails on any real error: a wrong
# share, a missing row, or a different dropout mask moves the weights by >= 1e-3 here.
WEIGHT_TOL = 1e-5
# Logged losses: the same argument on values printed with 6 significant digits.
LOSS_RTOL = 1e-4


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


class Runner:
    def __init__(self, distill, mpirun, d):
        self.distill, self.mpirun, self.d = distill, mpirun, d

    def env(self, extra=None):
        e = dict(os.environ)
        for k in ("DISTILL_STOP_AFTER_STEP", "DISTILL_TEST_HANG", "DISTILL_TEST_NAN", "DISTILL_FORCE_COMM",
                  "DISTILL_COMM_TIMEOUT", "DISTILL_TEST_STEP_SLEEP_MS"):
            e.pop(k, None)
        e.update(extra or {})
        return e

    def mpi(self, n):
        return [self.mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(n)]

    def train(self, ranks, run_dir, *extra, env=None, expect_rc=0, timeout=300):
        cmd = [self.distill, "--config", CONFIG, "--set", "run.dir=" + run_dir] + list(extra)
        if ranks > 0:
            cmd = self.mpi(ranks) + cmd
        t0 = time.time()
        p = subprocess.run(cmd, cwd=self.d, env=self.env(env), capture_output=True, text=True, timeout=timeout)
        took = time.time() - t0
        if expect_rc is not None and p.returncode != expect_rc:
            sys.stdout.write(p.stdout[-3000:] + p.stderr[-3000:])
            raise SystemExit("FAIL  %s exited %d, expected %d" % (" ".join(cmd), p.returncode, expect_rc))
        return p, took


def weights(path):
    """{name: list of floats} from a safetensors file (F32), with the standard library only."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v["dtype"]
        a, b = v["data_offsets"]
        out[k] = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
    return out


def max_weight_diff(a, b):
    wa, wb = weights(a), weights(b)
    if set(wa) != set(wb):
        return float("inf")
    return max(max(abs(x - y) for x, y in zip(wa[k], wb[k])) for k in wa)


def step_losses(run_dir):
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "split" not in r:
                out[r["step"]] = r["loss"]
    return out


def same_losses(a, b):
    la, lb = step_losses(a), step_losses(b)
    return sorted(la) == sorted(lb) and all(abs(la[s] - lb[s]) <= LOSS_RTOL * max(1.0, abs(la[s])) for s in la)


def final(d, run):
    return os.path.join(d, run, "final", "model.safetensors")


def case_equal(r, d):
    p, _ = r.train(0, "one")
    p2, _ = r.train(2, "two")
    first = p2.stdout.splitlines()[0] if p2.stdout else ""
    check(re.match(r"world: 2 ranks .*gradients all-reduced with mpi; devices: cpu on every rank", first) is not None,
          "the 2-rank run's first line states its world: %s" % first)
    check(p.stdout.startswith("world: 1 rank"), "the 1-rank run's first line states its world")
    diff = max_weight_diff(final(d, "one"), final(d, "two"))
    check(diff <= WEIGHT_TOL, "2 ranks = 1 rank after 30 steps: max |w1 - w2| = %.3g <= %g" % (diff, WEIGHT_TOL))
    check(same_losses(os.path.join(d, "one"), os.path.join(d, "two")),
          "every logged loss of the 2-rank run equals the 1-rank run's within %g relative" % LOSS_RTOL)
    r.train(2, "two_again")
    with open(final(d, "two"), "rb") as a, open(final(d, "two_again"), "rb") as b:
        check(a.read() == b.read(), "a second 2-rank run is bitwise identical to the first")
    r.train(1, "forced", env={"DISTILL_FORCE_COMM": "1"})
    with open(final(d, "one"), "rb") as a, open(final(d, "forced"), "rb") as b:
        check(a.read() == b.read(), "1 rank with every reduction through MPI = the plain run, bitwise")
    # a wrong share would fail the check above; prove the tolerance can fail: a different seed
    r.train(0, "other", "--set", "run.seed=6")
    diff = max_weight_diff(final(d, "one"), final(d, "other"))
    check(diff > 100 * WEIGHT_TOL, "the tolerance can fail: another seed differs by %.3g > %g" % (diff, 100 * WEIGHT_TOL))


def case_resume(r, d):
    r.train(0, "ref")
    for first, second in ((2, 0), (0, 2)):
        name = "r%d%d" % (first, second)
        # checkpoint_every 6: stop right after the step-12 checkpoint, resume with the other count
        p, _ = r.train(first, name, env={"DISTILL_STOP_AFTER_STEP": "12"}, expect_rc=None)
        check(p.returncode != 0 and os.path.isfile(os.path.join(d, name, "ckpt-12.h5")),
              "%d-rank run stopped after step 12 with ckpt-12.h5 (exit %d)" % (max(first, 1), p.returncode))
        p, _ = r.train(second, name, "--resume", "auto")
        check(re.search(r"resuming from .*ckpt-12\.h5 at step 12", p.stderr) is not None,
              "the resumed run says which checkpoint and step it continued from")
        diff = max_weight_diff(final(d, "ref"), final(d, name))
        check(diff <= WEIGHT_TOL, "%d ranks -> resumed by %d = uninterrupted 1 rank: max |dw| = %.3g <= %g"
              % (max(first, 1), max(second, 1), diff, WEIGHT_TOL))
        check(same_losses(os.path.join(d, "ref"), os.path.join(d, name)),
              "%d -> %d ranks: the logged losses equal the uninterrupted run's" % (max(first, 1), max(second, 1)))


def rank_pids(rank):
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK=%d" % rank in env and b"distill" in cmd and b"mpirun" not in cmd:
            pids.append(int(p))
    return pids


def case_kill(r, d):
    cmd = r.mpi(2) + [r.distill, "--config", CONFIG, "--set", "run.dir=long", "--set", "train.max_steps=1000000",
                      "--set", "train.checkpoint_every=5", "--set", "train.eval_every=0"]
    p = subprocess.Popen(cmd, cwd=d, env=r.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait until training is under way (a checkpoint exists), then kill rank 1
    t0 = time.time()
    while not glob.glob(os.path.join(d, "long", "ckpt-*.h5")) and time.time() - t0 < 60:
        time.sleep(0.2)
    pids = rank_pids(1)
    check(len(pids) == 1, "found rank 1's process (%s)" % pids)
    t_kill = time.time()
    for pid in pids:
        os.kill(pid, 9)
    try:
        out, _ = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    took = time.time() - t_kill
    check(p.returncode != 0, "the job exits non-zero (%d)" % p.returncode)
    check(took < 60, "the job ended %.1f s after rank 1 was killed (< 60 s)" % took)
    check(re.search(r"rank 1\b", out) is not None, "the output names rank 1: %s"
          % [l for l in out.splitlines() if "rank 1" in l][:2])
    ckpts = glob.glob(os.path.join(d, "long", "ckpt-*.h5"))
    check(len(ckpts) >= 1, "checkpoints remain (%d)" % len(ckpts))
    for c in ckpts:
        q = subprocess.run([r.distill, "info", c], capture_output=True, text=True)
        check(q.returncode == 0 and re.search(r"hash\s+ok", q.stdout) is not None,
              "%s is complete (distill info: hash ok)" % os.path.basename(c))


def case_hang(r, d):
    p, took = r.train(2, "hang", "--set", "train.max_steps=1000", env={"DISTILL_TEST_HANG": "1:7", "DISTILL_COMM_TIMEOUT": "5"},
                      expect_rc=None, timeout=120)
    check(p.returncode != 0, "the job exits non-zero (%d)" % p.returncode)
    check(took < 60, "the job ended in %.1f s (< 60 s)" % took)
    check(re.search(r"rank 0: rank 1 did not reach the loss all-reduce \(step 7\) within 5 s", p.stderr) is not None,
          "rank 0 names the hung rank 1 and the step: %s" % [l for l in p.stderr.splitlines() if "error" in l][:1])


def case_nan(r, d):
    p, _ = r.train(2, "nan1", env={"DISTILL_TEST_NAN": "1:4"})
    warn = re.findall(r"distill: warning: step (\d+): the loss is not finite on (this|another) rank", p.stderr)
    check(sorted(warn) == [("4", "another"), ("4", "this")],
          "one NaN at step 4 on rank 1: both ranks warn about step 4 and go on (%s)" % warn)
    check(re.search(r"rank 1's rows: \d+", p.stderr) is not None, "rank 1 names its rows")
    steps = [json.loads(l)["step"] for l in open(os.path.join(d, "nan1", "metrics.jsonl")) if '"split"' not in l]
    check(4 not in steps and steps[-1] == 30, "the skipped step 4 is not logged; the run reaches step 30")
    p, _ = r.train(2, "nan3", "--set", "train.max_bad_steps=3", env={"DISTILL_TEST_NAN": "1:4:3"}, expect_rc=None)
    check(p.returncode != 0, "three NaN steps in a row: the job exits non-zero (%d)" % p.returncode)
    msgs = re.findall(r"distill: error: rank (\d): (step 6: 3 steps in a row with a non-finite loss.*)", p.stderr)
    check(sorted(m[0] for m in msgs) == ["0", "1"] and len(set(m[1] for m in msgs)) == 1,
          "both ranks stop at step 6 with the same message: %s" % msgs)
    check(not glob.glob(os.path.join(d, "nan3", "ckpt-*.h5")), "no checkpoint was written before step 6")


def case_signal(r, d):
    r.train(2, "ref2")
    cmd = r.mpi(2) + [r.distill, "--config", CONFIG, "--set", "run.dir=sig"]
    p = subprocess.Popen(cmd, cwd=d, env=r.env({"DISTILL_TEST_STEP_SLEEP_MS": "200"}), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(d, "sig", "metrics.jsonl")
    t0 = time.time()
    while time.time() - t0 < 60:  # wait for step 3 to be logged
        if os.path.exists(metrics) and sum(1 for l in open(metrics) if '"split"' not in l) >= 3:
            break
        time.sleep(0.05)
    pids = rank_pids(1)
    check(len(pids) == 1, "found rank 1's process (%s)" % pids)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check(p.returncode == 75, "the job exits 75 (stopped, resumable): %d" % p.returncode)
    m = re.search(r"distill: stopped by a stop signal on another rank after step (\d+) of 30; checkpoint: (\S+)", err)
    check(m is not None, "rank 0 says it stopped because of another rank's signal, at which step, and where the "
          "checkpoint is: %s" % [l for l in err.splitlines() if "stopped" in l][:2])
    if m:
        step = int(m.group(1))
        check(3 <= step < 30, "stopped mid-run (step %d)" % step)
        check(os.path.exists(os.path.join(d, m.group(2))) or os.path.exists(m.group(2)),
              "ckpt-%d.h5 exists" % step)
        check(not os.path.exists(os.path.join(d, "sig", "final")), "no final/ model (not finished)")
    r.train(2, "sig", "--resume", "auto")
    check(weights(os.path.join(d, "sig", "final", "model.safetensors")) ==
          weights(os.path.join(d, "ref2", "final", "model.safetensors")),
          "resumed on 2 ranks: final weights bitwise equal to the uninterrupted 2-rank run")


def case_mismatch(r, d):
    base = [r.distill, "--config", CONFIG, "--set", "run.dir=mm"]
    cmd = [r.mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "1"] + base + [":", "-np", "1"] + base + \
        ["--set", "optimizer.lr=1e-3"]
    p = subprocess.run(cmd, cwd=d, env=r.env(), capture_output=True, text=True, timeout=120)
    check(p.returncode != 0, "ranks with different configs refuse to start (exit %d)" % p.returncode)
    check(re.search(r"did not load the same config .*rank 1 differs from rank 0", p.stderr) is not None,
          "the message names the differing rank: %s" % [l for l in p.stderr.splitlines() if "error" in l][:1])
    check(not os.path.exists(os.path.join(d, "mm")), "nothing was written (no run directory)")


def case_bench(r, d):
    r.train(0, "b1", "--set", "train.grad_accum=1", "--set", "train.max_steps=1")
    loss = step_losses(os.path.join(d, "b1"))[1]
    p = subprocess.run([r.distill, "bench", "--config", CONFIG, "--set", "train.grad_accum=1", "--from-data",
                        "--steps", "1", "--json"], cwd=d, env=r.env(), capture_output=True, text=True)
    check(p.returncode == 0, "bench --from-data runs (%s)" % p.stderr.strip()[-200:])
    js = json.loads(p.stdout)
    check(float("%.6g" % js["first_loss"]) == loss,
          "bench's first step loss %.9g = training step 1's %.6g (same Trainer step, same batch)"
          % (js["first_loss"], loss))


def case_nccl(r, d):
    """GPU: 1 rank with every reduction through NCCL (DISTILL_FORCE_COMM=1) = the plain CUDA run."""
    probe = subprocess.run([r.distill, "--config", CONFIG, "--set", "run.dir=probe", "--set", "device=cuda",
                            "--set", "train.max_steps=1"], cwd=d, env=r.env(), capture_output=True, text=True)
    if probe.returncode != 0 and re.search(r"no CUDA device|no CUDA backend", probe.stderr):
        if os.environ.get("DISTILL_EXPECT_GPU") == "1":
            check(False, "a GPU was expected (DISTILL_EXPECT_GPU=1): %s" % probe.stderr.strip()[-200:])
            return
        print("skipped: %s" % probe.stderr.strip().splitlines()[-1])
        raise SystemExit(77)
    check(probe.returncode == 0, "a one-step CUDA run works (%s)" % probe.stderr.strip()[-300:])
    r.train(0, "cuda_plain", "--set", "device=cuda")
    p, _ = r.train(1, "cuda_nccl", "--set", "device=cuda", env={"DISTILL_FORCE_COMM": "1"})
    check("this build has no NCCL" not in p.stderr, "the build has NCCL")
    with open(final(d, "cuda_plain"), "rb") as a, open(final(d, "cuda_nccl"), "rb") as b:
        check(a.read() == b.read(), "1 rank with gradients reduced by NCCL = the plain CUDA run, bitwise")


def case_slurm(r, d):
    """scripts/slurm/distill.sbatch runs as written, with a stand-in `srun` that starts its command
    as 2 MPI ranks (no Slurm here) and DISTILL_DEVICE=cpu: the options it passes are valid and
    the job trains on 2 ranks."""
    repo = os.path.dirname(HERE)
    shim = os.path.join(d, "bin")
    os.makedirs(shim)
    with open(os.path.join(shim, "srun"), "w") as f:
        f.write("#!/usr/bin/env bash\n# stand-in: drop srun's own options, start the rest on 2 ranks\n"
                "while [[ $1 == --* ]]; do shift; done\n"
                "exec %s --allow-run-as-root --oversubscribe -np 2 \"$@\"\n" % r.mpirun)
    os.chmod(os.path.join(shim, "srun"), 0o755)
    env = {"PATH": shim + os.pathsep + os.environ["PATH"], "DISTILL": r.distill, "DISTILL_DEVICE": "cpu",
           "SLURM_CPUS_PER_TASK": "1"}
    p = subprocess.run(["bash", os.path.join(repo, "scripts", "slurm", "distill.sbatch"), CONFIG,
                        "--set", "run.dir=slurm", "--set", "train.max_steps=6"],
                       cwd=d, env=r.env(env), capture_output=True, text=True, timeout=180)
    check(p.returncode == 0, "the sbatch script runs (exit %d): %s" % (p.returncode, p.stderr.strip()[-300:]))
    check("world: 2 ranks" in p.stdout, "it trains on 2 ranks")
    check(os.path.isfile(os.path.join(d, "slurm", "final", "model.safetensors")), "and writes the final model")


CASES = {"slurm": case_slurm, "nccl": case_nccl, "equal": case_equal, "resume": case_resume, "kill": case_kill, "hang": case_hang, "nan": case_nan,
         "signal": case_signal,
         "mismatch": case_mismatch, "bench": case_bench}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--distill", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    distill = os.path.abspath(a.distill)
    # Open MPI derives its install prefix from the path it was started by: /bin/mpirun (the
    # usr-merge symlink CMake may find) gives the prefix "/", which it refuses. The resolved path
    # (/usr/bin/...) gives /usr.
    if os.path.isabs(a.mpirun):
        a.mpirun = os.path.realpath(a.mpirun)
    d = tempfile.mkdtemp(prefix="distill-mpi-%s-" % a.case)
    toy_task.write_task(d)
    for split in ("train", "dev"):
        subprocess.run([distill, "prepare", "--vocab", "vocab.txt", "--input", split + ".tsv", "--output",
                        split + ".h5", "--max-seq", "16", "--labels", "neg,pos"], cwd=d, check=True,
                       capture_output=True)
    CASES[a.case](Runner(distill, a.mpirun, d), d)
    if FAILURES or a.keep:
        print("files kept in", d)
    else:
        shutil.rmtree(d)
    print("%d checks failed" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
