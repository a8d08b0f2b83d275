"""test_multi_teacher.py — several teachers (`teachers:`, configs/README.md) end to end on the toy
task of tests/test_e2e.py.

    test_multi_teacher.py CASE --distill PATH/TO/distill [--keep]

CASE:
  logits  two teachers fine-tuned from different seeds for 150 and 10 steps; `distill predict --output logits`
          gives each one's logits on the train rows. A distill run with both (teacher_logits:
          mean, then weighted 3:1), the second (less trained) teacher as the student (dropout 0),
          logits_kd alone,
          no shuffling, one step: the step's logits_kd equals T^2 KL(softmax(z/T) || softmax(z_s/T))
          over the first batch computed here from the combined predict logits, z the average (the
          weighted average) of the two teachers' logits; with teacher_logits: probs (1:3) the
          teacher side is the 1:3 mixture of softmax(z_k/T). The single-teacher value differs, so
          a run that read one teacher only fails.
  learn   two fine-tuned teachers of widths 32 and 48; logits_kd reads their mean, hidden_mse
          reads teacher 2 by name (a 16 -> 48 projection): the run prints which teacher each loss
          reads, both terms fall, dev accuracy is far above chance. (A random second teacher also
          runs, but matching its hidden states stalls a 16-wide student on this task: tried.)

Runs use `threads: 1` and fixed seeds. Scratch files go to a temporary folder (removed on success,
kept with --keep or on failure). Exit status 0 on success, 1 on a failed check.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "e2e"))
import toy_task  # noqa: E402
from test_e2e import FAILURES, check, check_terms_fall, prepare, read_metrics, run  # noqa: E402

TEACHER = """task: finetune
run:       {{name: {name}, dir: {name}, seed: {seed}}}
threads:   1
student:   {{init: random, layers: 2, hidden: {hidden}, heads: 4, intermediate: {ffn}, max_position: 32,
            dropout: 0.0, attention_dropout: 0.0}}
data:      {{train: train.h5, dev: dev.h5, batch_size: 16}}
losses:    [{{type: hard_ce}}]
optimizer: {{lr: 3.0e-3, warmup_steps: 5}}
train:     {{max_steps: {steps}, eval_every: {steps}, log_every: 10, checkpoint_every: {steps}, keep_last: 1}}
"""


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def fine_tune(distill, d, name, seed, steps, hidden=32):
    text = TEACHER.format(name=name, seed=seed, steps=steps, hidden=hidden, ffn=2 * hidden)
    run([distill, "--config", write(d, name + ".yaml", text)], d)
    return name + "/best"


def predict_logits(distill, d, model):
    _, out, _ = run([distill, "predict", "--model", model, "--input", "train.tsv", "--output", "logits"], d)
    return [json.loads(line)["logits"] for line in out.splitlines() if line.strip()]


def log_softmax(z, T):
    m = max(v / T for v in z)
    lse = m + math.log(sum(math.exp(v / T - m) for v in z))
    return [v / T - lse for v in z]


def softmax(z, T):
    return [math.exp(v) for v in log_softmax(z, T)]


def logits_kd_probs(p_teacher, student, T):
    """T^2 KL(p_t || softmax(z_s/T)), mean over rows, with p_t given as probabilities."""
    total = 0.0
    for pt, zs in zip(p_teacher, student):
        ls = log_softmax(zs, T)
        total += sum(p * (math.log(p) - b) for p, b in zip(pt, ls) if p > 0)
    return T * T * total / len(p_teacher)


def logits_kd(teacher, student, T):
    """T^2 KL(softmax(z_t/T) || softmax(z_s/T)), mean over rows (losses.h, DistilBERT)."""
    total = 0.0
    for zt, zs in zip(teacher, student):
        lt, ls = log_softmax(zt, T), log_softmax(zs, T)
        total += sum(math.exp(a) * (a - b) for a, b in zip(lt, ls))
    return T * T * total / len(teacher)


def one_step(distill, d, name, teachers_yaml, extra=""):
    cfg = """task: distill
run:       {{name: {name}, dir: {name}, seed: 3}}
threads:   1
{teachers}
{extra}
student:   {{init: b/best, dropout: 0.0, attention_dropout: 0.0}}
data:      {{train: train.h5, batch_size: 16, shuffle: false}}
losses:    [{{type: logits_kd, temperature: 2.0}}]
optimizer: {{lr: 1.0e-6}}
train:     {{max_steps: 1, log_every: 1, checkpoint_every: 1, keep_last: 1}}
""".format(name=name, teachers=teachers_yaml, extra=extra)
    _, out, _ = run([distill, "--config", write(d, name + ".yaml", cfg)], d)
    steps, _ = read_metrics(os.path.join(d, name))
    return steps[0]["logits_kd"], out


def case_logits(distill, d):
    toy_task.write_task(d)
    prepare(distill, d)
    fine_tune(distill, d, "a", 1, 150)
    fine_tune(distill, d, "b", 2, 10)
    za, zb = predict_logits(distill, d, "a/best"), predict_logits(distill, d, "b/best")
    check(len(za) == len(zb) and len(za) >= 16 and all(len(r) == 2 for r in za + zb),
          "predict --output logits: 2 logits per train row for both teachers (%d rows)" % len(za))
    n, T = 16, 2.0  # the first batch (shuffle: false) and the run's temperature
    mean = [[(x + y) / 2 for x, y in zip(ra, rb)] for ra, rb in zip(za[:n], zb[:n])]
    weighted = [[(3 * x + 1 * y) / 4 for x, y in zip(ra, rb)] for ra, rb in zip(za[:n], zb[:n])]
    want_mean = logits_kd(mean, zb[:n], T)
    want_weighted = logits_kd(weighted, zb[:n], T)
    want_a = logits_kd(za[:n], zb[:n], T)
    # probs 1:3: the mixture of the softened distributions at the loss's T, not of the logits
    mix = [[(1 * p + 3 * q) / 4 for p, q in zip(softmax(ra, T), softmax(rb, T))] for ra, rb in zip(za[:n], zb[:n])]
    want_probs = logits_kd_probs(mix, zb[:n], T)
    want_probs_as_logits = logits_kd([[(x + 3 * y) / 4 for x, y in zip(ra, rb)] for ra, rb in zip(za[:n], zb[:n])],
                                     zb[:n], T)
    # The run's logits come from the same weights in other batches (padding to another length)
    # and metrics.jsonl prints 6 significant digits: 1e-4 relative (plus 1e-6 absolute for a value
    # near 0) covers both; a one-teacher value differs by far more (checked below).
    tol = lambda want: 1e-4 * abs(want) + 1e-6  # noqa: E731
    check(abs(want_mean - want_a) > 100 * tol(want_mean) and abs(want_mean - want_weighted) > 100 * tol(want_mean),
          "the mean, weighted and teacher-a-only values differ (%.6g, %.6g, %.6g): the test can tell them apart"
          % (want_mean, want_weighted, want_a))

    got, out = one_step(distill, d, "mean", "teachers:  [{path: a/best}, {path: b/best}]")
    check("teacher_logits: mean" in out, "the resolved config prints teacher_logits: mean")
    check(abs(got - want_mean) <= tol(want_mean),
          "mean: step 1 logits_kd %.6g = KL from the average of the two teachers' predict logits %.6g"
          % (got, want_mean))
    got, _ = one_step(distill, d, "weighted", "teachers:  [{path: a/best, weight: 3}, {path: b/best, weight: 1}]",
                      "teacher_logits: weighted")
    check(abs(got - want_weighted) <= tol(want_weighted),
          "weighted 3:1: step 1 logits_kd %.6g = KL from (3 z_a + z_b) / 4 %.6g" % (got, want_weighted))
    check(abs(want_probs - want_probs_as_logits) > 100 * tol(want_probs),
          "probs 1:3 (%.6g) differs from the 1:3 average of logits (%.6g)" % (want_probs, want_probs_as_logits))
    got, out = one_step(distill, d, "probs", "teachers:  [{path: a/best, weight: 1}, {path: b/best, weight: 3}]",
                        "teacher_logits: probs")
    check("teachers: 2, logits combined by probs" in out, "the run prints the probs rule")
    check(abs(got - want_probs) <= tol(want_probs),
          "probs 1:3: step 1 logits_kd %.6g = KL from (softmax(z_a/T) + 3 softmax(z_b/T)) / 4 %.6g"
          % (got, want_probs))
    got, _ = one_step(distill, d, "single", "teacher:   {path: a/best}")
    check(abs(got - want_a) <= tol(want_a), "single teacher (unchanged form): logits_kd %.6g = %.6g" % (got, want_a))


def case_learn(distill, d):
    task = toy_task.write_task(d)
    prepare(distill, d)
    labels = task["dev_labels"]
    chance = max(sum(labels), len(labels) - sum(labels)) / len(labels)
    fine_tune(distill, d, "a", 1, 150)
    fine_tune(distill, d, "w", 5, 150, hidden=48)
    cfg = """task: distill
run:       {name: multi, dir: multi, seed: 4}
threads:   1
teachers:
  - {name: tuned, path: a/best}
  - {name: wide, path: w/best}
student:   {init: random, layers: 2, hidden: 16, heads: 4, intermediate: 32, max_position: 32}
data:      {train: train.h5, dev: dev.h5, batch_size: 16}
losses:
  - {type: logits_kd, temperature: 2.0}
  - {type: hidden_mse, teacher: wide, layers: [[2, 2]]}
  - {type: hard_ce, weight: 0.5}
optimizer: {lr: 3.0e-3, warmup_steps: 10}
train:     {max_steps: 300, eval_every: 300, log_every: 10, checkpoint_every: 300, keep_last: 1}
"""
    _, out, _ = run([distill, "--config", write(d, "multi.yaml", cfg)], d)
    check("teacher 2" in out and "teachers combined" in out,
          "the run prints that hidden_mse reads teacher 2 and logits_kd the combined logits")
    steps, evals = read_metrics(os.path.join(d, "multi"))
    check_terms_fall(steps, ["logits_kd", "hidden_mse"], n=4)
    acc = evals[-1]["accuracy"] if evals else 0.0
    # the run reaches 0.82 after 300 steps (seed 4, one thread: reproducible); 0.70 is 15 points
    # above the majority class (0.55), where every run that did not learn stayed
    check(acc >= 0.7, "dev accuracy %.3f >= 0.70 (chance %.2f)" % (acc, chance))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["logits", "learn"])
    ap.add_argument("--distill", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    distill = os.path.abspath(a.distill)
    d = tempfile.mkdtemp(prefix="distill_multi_")
    try:
        {"logits": case_logits, "learn": case_learn}[a.case](distill, d)
    except SystemExit as e:
        FAILURES.append(str(e))
        print(e)
    if FAILURES or a.keep:
        print("scratch folder kept: " + d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
