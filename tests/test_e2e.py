"""test_e2e.py — end-to-end tests of the `distill` program on a tiny synthetic task.

    test_e2e.py CASE --distill PATH/TO/distill [--keep]

CASE:
  learn       prepare the toy task (tests/e2e/toy_task.py), fine-tune a small random teacher on it
              (tests/e2e/teacher.yaml), distil a narrower student from the teacher's best/ folder
              with logits_kd + hidden_mse + attention_mse + embedding_mse + hard_ce
              (tests/e2e/student.yaml); every loss term falls, dev accuracy is far above chance,
              `distill eval` agrees with the run's own dev evaluations, `distill info` reads a
              checkpoint, `distill export --hf` + `distill predict` run and agree with eval.
  resume      a run stopped abruptly (DISTILL_STOP_AFTER_STEP) and resumed with `--resume auto`
              writes the same metrics.jsonl (all but time_s and tokens_per_s) and the same final
              and best models, byte for byte, as a run that never stopped; once stopping at a
              checkpoint step and once between checkpoints (lines logged after the checkpoint must
              be dropped). tests/e2e/resume.yaml.
  stages      a two-stage config (tests/e2e/stages.yaml: intermediate-layer losses with projections,
              then logits_kd + hard_ce) equals the two stages run by hand as two single-stage
              configs, the second starting from the first's final/ student: the same step records
              and a byte-identical final model; a run stopped inside stage 2, and one stopped at
              the stage boundary, resume (--resume auto) to the uninterrupted run's metrics.jsonl
              and final/best models, byte for byte.
  regression  `prepare --regression` + `task: finetune` with loss mse and metric pearson: the loss
              falls and dev Pearson is far above 0. tests/e2e/regression.yaml.
  plot        scripts/plot_metrics.py draws a short run's metrics.jsonl into a non-empty PNG.
  general     the shipped configs/general.yaml, tiny-from-general.yaml and two-layer.yaml on the toy
              task, through --set only (paths, a tiny student, lengths): general distillation on
              unlabelled toy text (`prepare --no-label`) logs exactly embedding_mse, hidden_mse and
              attention_mse, they fall, and final/ is a BertModel folder without a classifier; task
              distillation from it starts from its weights (first-step attention_mse far below a
              random student's, tiny.yaml) and learns; two-layer.yaml runs with a layer list that
              fits the toy teacher.

Every run uses `threads: 1` and fixed seeds, so the runs are bitwise reproducible. Generated files
go to a temporary folder (removed on success; kept with --keep or on failure, and its path printed).
Exit status 0 on success, 1 on a failed check.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "e2e")
REPO = os.path.dirname(HERE)
sys.path.insert(0, FIXTURES)
import toy_task  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def run(cmd, cwd, env=None, expect_rc=0):
    """Runs cmd in cwd; returns (rc, stdout, stderr). A different exit status is a failure."""
    full_env = dict(os.environ)
    full_env.pop("DISTILL_STOP_AFTER_STEP", None)
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if p.returncode != expect_rc:
        sys.stdout.write(p.stdout[-4000:])
        sys.stdout.write(p.stderr[-4000:])
        raise SystemExit("FAIL  %s exited %d, expected %d" % (" ".join(cmd), p.returncode, expect_rc))
    return p.returncode, p.stdout, p.stderr


def read_metrics(run_dir):
    """(step records, eval records) of run_dir/metrics.jsonl; every line must be JSON."""
    steps, evals = [], []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            (evals if "split" in rec else steps).append(rec)
    return steps, evals


def mean(xs):
    return sum(xs) / len(xs)


def prepare(distill, d, regression=False):
    suffix = "_reg" if regression else ""
    for split in ("train", "dev"):
        cmd = [distill, "prepare", "--vocab", "vocab.txt", "--input", split + suffix + ".tsv",
               "--output", split + suffix + ".h5", "--max-seq", "16"]
        cmd += ["--regression"] if regression else ["--labels", "neg,pos"]
        run(cmd, d)


def train(distill, d, config, *extra, env=None, expect_rc=0):
    return run([distill, "--config", os.path.join(FIXTURES, config)] + list(extra), d, env, expect_rc)


def check_terms_fall(steps, terms, n=4, factor=0.5):
    """Each term's mean over the last n logged steps is below `factor` x its mean over the first n.
    The records are single-batch values (dropout on, 16 rows), which wander by some tens of percent
    from batch to batch; a drop by half is outside that noise, so a run that does not learn fails."""
    check(len(steps) >= 2 * n, "at least %d step records in metrics.jsonl (found %d)" % (2 * n, len(steps)))
    for t in terms:
        first = mean([s[t] for s in steps[:n]])
        last = mean([s[t] for s in steps[-n:]])
        check(last < factor * first, "%s falls: mean of first %d logged %.4g, of last %d %.4g (need < %.2f x)"
              % (t, n, first, n, last, factor))


# Chance on the 100 balanced-by-construction dev rows: always predicting the majority class scores
# the majority-class rate (computed from the generated labels, 0.55 with this seed; checked <= 0.65
# below); guessing by a fair coin reaches 0.85 with probability 2.4e-13 (binomial tail P(X >= 85),
# n = 100, p = 1/2: 7 sd above the mean). The teacher and student reach ~0.99.
ACCURACY_BOUND = 0.85


def toy_task_and_teacher(distill, d):
    """The toy task written and prepared in d, and a teacher fine-tuned on it (teacher.yaml, d/teacher,
    its best dev model in d/teacher/best) that must reach ACCURACY_BOUND. Returns (the task, the
    dev chance level, the teacher's step records)."""
    task = toy_task.write_task(d)
    prepare(distill, d)
    labels = task["dev_labels"]
    chance = max(sum(labels), len(labels) - sum(labels)) / len(labels)
    check(chance <= 0.65, "dev majority-class rate (chance) %.2f <= 0.65" % chance)
    train(distill, d, "teacher.yaml")
    t_steps, t_evals = read_metrics(os.path.join(d, "teacher"))
    t_best = max(e["accuracy"] for e in t_evals)
    check(t_best >= ACCURACY_BOUND, "teacher best dev accuracy %.3f >= %.2f (chance %.2f)"
          % (t_best, ACCURACY_BOUND, chance))
    return task, chance, t_steps


def case_learn(distill, d):
    # -- teacher
    task, chance, t_steps = toy_task_and_teacher(distill, d)
    labels = task["dev_labels"]
    check_terms_fall(t_steps, ["hard_ce"], n=3)

    # -- student
    _, out, _ = train(distill, d, "student.yaml")
    check("projections:" in out, "the run prints its projections (hidden 16 -> 32)")
    sdir = os.path.join(d, "student")
    steps, evals = read_metrics(sdir)
    terms = ["logits_kd", "hidden_mse", "attention_mse", "embedding_mse", "hard_ce"]
    for t in terms + ["loss", "lr", "grad_norm", "tokens_per_s", "time_s"]:
        check(all(t in s and math.isfinite(s[t]) for s in steps), "every step record has a finite %s" % t)
    check(all(abs(s["loss"] - sum(s[t] for t in terms)) <= 1e-4 * max(1.0, s["loss"]) for s in steps),
          # the terms are logged weighted (losses.h), so they sum to the total; %.6g printing
          # of 6 numbers leaves at most ~6 x 5e-7 relative.
          "loss = sum of the (weighted) terms in every record")
    check([s["step"] for s in steps] == list(range(5, 301, 5)), "step records at 5, 10, ..., 300 (log_every 5)")
    check_terms_fall(steps, terms + ["loss"])
    dev = [e for e in evals if e["split"] == "dev"]
    check([e["step"] for e in dev] == [50, 100, 150, 200, 250, 300], "dev evaluations at every 50 steps")
    last = dev[-1]
    check(last["n"] == 100, "dev evaluation covers the 100 rows")
    check(last["accuracy"] >= ACCURACY_BOUND, "student final dev accuracy %.3f >= %.2f (chance %.2f)"
          % (last["accuracy"], ACCURACY_BOUND, chance))
    best = [e for e in dev if e["best"]][-1]
    check(best["accuracy"] == max(e["accuracy"] for e in dev), "the last 'best' record has the top accuracy")
    # data.test is the dev file, and the run evaluates best/ on it at the end: the test record must
    # repeat the best dev record (same model, rows and batches; printed with %.6g).
    test = [e for e in evals if e["split"] == "test"]
    check(len(test) == 1 and test[0]["accuracy"] == best["accuracy"] and test[0]["eval_loss"] == best["eval_loss"],
          "one test record, equal to the best dev record (%s vs %s)" % (test, best))
    for f in ("final/model.safetensors", "final/config.json", "final/vocab.txt", "best/model.safetensors",
              "ckpt-200.h5", "ckpt-300.h5", "config.yaml"):
        check(os.path.isfile(os.path.join(sdir, f)), "student/%s exists" % f)
    check(not os.path.exists(os.path.join(sdir, "ckpt-100.h5")), "keep_last 2 removed ckpt-100.h5")

    # -- distill eval agrees with the run's own evaluations: same weights (F32 safetensors), same
    # batch size and thread count, so the same logits; accuracy is k/100 and metrics.jsonl prints
    # 6 significant digits, so they agree to 1e-6 (loss: 1e-5 relative, %.6g in metrics.jsonl
    # against %.4f in the text report -> compare the text report to 5e-5 absolute).
    _, out, _ = run([distill, "eval", "--model", "student/final", "--data", "dev.h5", "--batch-size", "16",
                     "--threads", "1", "--no-latency"], d)
    m = re.search(r"loss ([0-9.]+)\s+accuracy ([0-9.]+)", out)
    check(m is not None, "distill eval prints loss and accuracy")
    if m:
        check(abs(float(m.group(2)) - last["accuracy"]) <= 5e-5,
              "eval of final/ accuracy %s = last dev eval %.4f" % (m.group(2), last["accuracy"]))
        check(abs(float(m.group(1)) - last["eval_loss"]) <= 5e-5 + 1e-5 * last["eval_loss"],
              "eval of final/ loss %s = last dev eval loss %.6g" % (m.group(1), last["eval_loss"]))
    _, out, _ = run([distill, "eval", "--model", "student/best", "--data", "dev.h5", "--batch-size", "16",
                     "--threads", "1", "--no-latency", "--json"], d)
    js = json.loads(out)
    check(abs(js["accuracy"] - best["accuracy"]) <= 1e-6 and
          abs(js["loss"] - best["eval_loss"]) <= 1e-5 * max(1.0, best["eval_loss"]),
          "eval of best/ (%.4f, loss %.6g) = the best dev eval at step %d (%.4f, loss %.6g)"
          % (js["accuracy"], js["loss"], best["step"], best["accuracy"], best["eval_loss"]))

    # -- info on a checkpoint
    _, out, _ = run([distill, "info", "student/ckpt-300.h5"], d)
    check(re.search(r"step 300\b", out) is not None, "info: the checkpoint is at step 300")
    check("complete" in out and re.search(r"hash\s+ok", out) is not None, "info: complete, hash ok")
    check("projections" in out and re.search(r"hidden 16", out) is not None, "info: student shape and projections")

    # -- export the last checkpoint, predict with it
    run([distill, "export", "--checkpoint", "student/ckpt-300.h5", "--hf", "exported"], d)
    for f in ("config.json", "model.safetensors", "vocab.txt"):
        check(os.path.isfile(os.path.join(d, "exported", f)), "exported/%s exists" % f)
    with open(os.path.join(d, "exported", "model.safetensors"), "rb") as a, \
            open(os.path.join(sdir, "final", "model.safetensors"), "rb") as b:
        check(a.read() == b.read(), "export of ckpt-300.h5 = the run's final/ model, byte for byte")
    _, out, _ = run([distill, "predict", "--model", "exported", "--text", "a good and very nice film",
                     "--output", "probs", "--threads", "1"], d)
    probs = json.loads(out)["probs"]
    check(len(probs) == 2 and abs(sum(probs) - 1.0) < 1e-5, "predict --text: 2 probabilities summing to 1")
    _, out, _ = run([distill, "predict", "--model", "exported", "--input", "dev.tsv", "--output", "label",
                     "--threads", "1"], d)
    preds = [json.loads(line)["label"] for line in out.splitlines()]
    gold = ["pos" if y else "neg" for y in labels]
    acc = sum(p == g for p, g in zip(preds, gold)) / len(gold)
    check(len(preds) == len(gold), "predict --input dev.tsv: one line per row (%d)" % len(preds))
    check(abs(acc - last["accuracy"]) <= 1e-6,
          "predict's accuracy on dev.tsv %.4f = the run's last dev accuracy %.4f" % (acc, last["accuracy"]))


def strip_timing(path):
    """metrics.jsonl lines with time_s and tokens_per_s removed (they depend on the wall clock)."""
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            rec.pop("time_s", None)
            rec.pop("tokens_per_s", None)
            out.append(json.dumps(rec, sort_keys=True))
    return out


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def case_resume(distill, d):
    toy_task.write_task(d)
    prepare(distill, d)
    N = 30
    # (reference run, its extra --set's, the stopped runs as (name, K, checkpoint resumed from)).
    # K = 12: a checkpoint step (checkpoint_every 6), mid-epoch. K = 15: between checkpoints, so the
    # resumed run restarts from ckpt-12 and must drop the lines for steps 13-15 the first process
    # wrote. E: early stopping with patience 2 on a dev accuracy that stalls from step 5 on (the
    # random teacher teaches nothing useful): the uninterrupted run stops at step 15; a run resumed
    # at 12 must too, so the count of evaluations without improvement must survive the resume.
    scenarios = [("A", [], [("B", 12, 12), ("C", 15, 12)]),
                 ("E", ["train.max_steps=60", "train.early_stopping_patience=2"], [("F", 12, 12)])]
    for ref_name, sets, stopped in scenarios:
        extra = []
        for kv in sets:
            extra += ["--set", kv]
        train(distill, d, "resume.yaml", "--set", "run.dir=" + ref_name, *extra)
        ref = strip_timing(os.path.join(d, ref_name, "metrics.jsonl"))
        if ref_name == "A":
            n_steps = sum('"split"' not in line for line in ref)
            check(n_steps == N and len(ref) == N + N // 5, "run A logged %d steps and %d evaluations" % (N, N // 5))
        else:
            last_step = json.loads(ref[-1])["step"]
            check(last_step < 60, "run %s stopped early (at step %d of 60)" % (ref_name, last_step))
        for name, K, ckpt in stopped:
            train(distill, d, "resume.yaml", "--set", "run.dir=" + name, *extra,
                  env={"DISTILL_STOP_AFTER_STEP": str(K)}, expect_rc=3)
            mdir = os.path.join(d, name)
            check(not os.path.exists(os.path.join(mdir, "final")), "%s: stopped at step %d before final/" % (name, K))
            first = strip_timing(os.path.join(mdir, "metrics.jsonl"))
            check(first == ref[:len(first)] and len(first) > 0,
                  "%s: the stopped run's %d metrics lines are a prefix of run %s's" % (name, len(first), ref_name))
            _, _, err = train(distill, d, "resume.yaml", "--set", "run.dir=" + name, *extra, "--resume", "auto")
            check(re.search(r"resuming from \S*ckpt-%d\.h5 at step %d" % (ckpt, ckpt), err) is not None,
                  "%s: resumed from ckpt-%d.h5 at step %d" % (name, ckpt, ckpt))
            got = strip_timing(os.path.join(mdir, "metrics.jsonl"))
            diff = [i for i in range(max(len(got), len(ref)))
                    if i >= len(got) or i >= len(ref) or got[i] != ref[i]]
            check(not diff, "%s: metrics.jsonl (less time_s, tokens_per_s) = run %s's%s"
                  % (name, ref_name, "" if not diff else "; first difference at line %d:\n  %s: %s\n  %s: %s"
                     % (diff[0] + 1, ref_name, ref[diff[0]] if diff[0] < len(ref) else "(none)", name,
                        got[diff[0]] if diff[0] < len(got) else "(none)")))
            for f in ("final/model.safetensors", "best/model.safetensors"):
                check(same_file(os.path.join(d, ref_name, f), os.path.join(mdir, f)),
                      "%s: %s is byte-identical to run %s's" % (name, f, ref_name))


def case_stages(distill, d):
    toy_task.write_task(d)
    prepare(distill, d)
    staged = os.path.join(FIXTURES, "stages.yaml")
    train(distill, d, "stages.yaml", "--set", "run.dir=S")
    steps, evals = read_metrics(os.path.join(d, "S"))
    n1, n2 = 14, 16
    check(len(steps) == n1 + n2 and [s["step"] for s in steps] == list(range(1, n1 + n2 + 1)),
          "the staged run logged steps 1..%d" % (n1 + n2))
    check([s.get("stage") for s in steps] == ["intermediate"] * n1 + ["prediction"] * n2,
          "metrics.jsonl names each step's stage")
    check(all("hidden_mse" in s and "logits_kd" not in s for s in steps[:n1]) and
          all("logits_kd" in s and "hidden_mse" not in s for s in steps[n1:]), "each stage logs its own loss terms")
    check(evals and all(e["step"] > n1 for e in evals), "dev evaluations only in the last stage (%s)"
          % [e["step"] for e in evals])

    # The same two stages by hand: two single-stage configs (JSON is YAML), the second starting from
    # the first's final/ model. A stage restarts the data order, the dropout counters, the AdamW
    # moments and the schedule, exactly as a fresh run does, and stage 2 has no projections to
    # carry, so the chain must match bit for bit.
    base = {"task": "distill", "run": {"seed": 5}, "threads": 1,
            "teacher": {"init": "random", "layers": 2, "hidden": 32, "heads": 4, "intermediate": 64,
                        "max_position": 32},
            "student": {"init": "random", "layers": 1, "hidden": 16, "heads": 4, "intermediate": 32,
                        "max_position": 32, "dropout": 0.1, "attention_dropout": 0.1},
            "data": {"train": "train.h5", "dev": "dev.h5", "batch_size": 16},
            "train": {"grad_accum": 2, "eval_every": 5, "log_every": 1, "checkpoint_every": 6, "keep_last": 2}}
    opt = {"lr": 2.0e-3, "weight_decay": 0.01, "warmup_steps": 2, "schedule": "cosine"}
    h1 = json.loads(json.dumps(base))
    h1["run"].update(name="h1", dir="H1")
    h1["losses"] = [{"type": "hidden_mse", "layers": [[0, 0], [1, 2]], "projection": "per_pair"},
                    {"type": "attention_mse", "layers": [[1, 2]]}]
    h1["optimizer"] = dict(opt, lr=3.0e-3)
    h1["train"]["max_steps"] = n1
    h2 = json.loads(json.dumps(base))
    h2["run"].update(name="h2", dir="H2")
    h2["student"] = {"init": "H1/final"}
    h2["losses"] = [{"type": "logits_kd", "temperature": {"start": 4.0, "end": 1.0, "over": 10}},
                    {"type": "hard_ce", "weight": 0.5}]
    h2["optimizer"] = dict(opt, warmup_steps=3, schedule="linear")
    h2["train"]["max_steps"] = n2
    for name, cfg in (("h1", h1), ("h2", h2)):
        path = os.path.join(d, name + ".yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        run([distill, "--config", path], d)
    by_hand = read_metrics(os.path.join(d, "H1"))[0] + read_metrics(os.path.join(d, "H2"))[0]

    def core(rec):
        return {k: v for k, v in rec.items() if k not in ("step", "stage", "time_s", "tokens_per_s")}
    diff = [i for i in range(len(steps)) if i >= len(by_hand) or core(steps[i]) != core(by_hand[i])]
    check(len(by_hand) == len(steps) and not diff, "the staged run's step records = the hand-chained runs'%s"
          % ("" if not diff else " (first difference at step %d: %s vs %s)"
             % (diff[0] + 1, core(steps[diff[0]]), core(by_hand[diff[0]]) if diff[0] < len(by_hand) else None)))
    check(same_file(os.path.join(d, "S", "final", "model.safetensors"), os.path.join(d, "H2", "final", "model.safetensors")),
          "final/model.safetensors of the staged run is byte-identical to the hand-chained run's")

    # Resume inside stage 2 (K = 20: from ckpt-18, stage 2's step 4) and at the boundary (K = 14: the
    # stage-end checkpoint; the resumed run enters stage 2 itself).
    ref = strip_timing(os.path.join(d, "S", "metrics.jsonl"))
    for name, K, ckpt in (("R20", 20, 18), ("R14", 14, 14)):
        train(distill, d, "stages.yaml", "--set", "run.dir=" + name, env={"DISTILL_STOP_AFTER_STEP": str(K)},
              expect_rc=3)
        _, _, err = train(distill, d, "stages.yaml", "--set", "run.dir=" + name, "--resume", "auto")
        check(re.search(r"resuming from \S*ckpt-%d\.h5 at step %d" % (ckpt, ckpt), err) is not None,
              "%s: resumed from ckpt-%d.h5" % (name, ckpt))
        got = strip_timing(os.path.join(d, name, "metrics.jsonl"))
        check(got == ref, "%s: metrics.jsonl (less time_s, tokens_per_s) = the uninterrupted run's" % name)
        for f in ("final/model.safetensors", "best/model.safetensors"):
            check(same_file(os.path.join(d, "S", f), os.path.join(d, name, f)),
                  "%s: %s is byte-identical to the uninterrupted run's" % (name, f))


def case_regression(distill, d):
    task = toy_task.write_task(d)
    prepare(distill, d, regression=True)
    _, out, _ = run([distill, "info", "train_reg.h5"], d)
    check("regression" in out, "info: train_reg.h5 has regression labels")
    train(distill, d, "regression.yaml")
    steps, evals = read_metrics(os.path.join(d, "reg"))
    check(all(math.isfinite(s["mse"]) and s["loss"] == s["mse"] for s in steps), "records: loss = mse, finite")
    # The target's variance is 1/18 (~0.056: k/3 with k ~ Binomial(3, 1/2)); predicting the mean
    # gives that MSE. Halving the loss is far beyond batch noise.
    check_terms_fall(steps, ["mse"], n=3)
    dev = [e for e in evals if e["split"] == "dev"]
    check(len(dev) == 4 and all("pearson" in e and "spearman" in e and "mse" in e for e in dev),
          "4 dev evaluations, each with pearson, spearman and mse (found keys %s)"
          % (sorted(dev[-1].keys()) if dev else "none"))
    if not dev or "pearson" not in dev[-1]:
        return
    last = dev[-1]
    best = [e for e in dev if e["best"]][-1]
    test = [e for e in evals if e["split"] == "test"]
    # data.test is the dev file; the run evaluates best/ on it at the end: the same numbers.
    check(len(test) == 1 and all(test[0].get(k) == best[k] for k in ("pearson", "spearman", "mse", "eval_loss")),
          "one test record with pearson/spearman/mse, equal to the best dev record (%s vs %s)" % (test, best))
    # Pearson of an uninformed predictor over 100 rows is ~N(0, 0.1); 0.8 is 8 sd above it. The
    # target is an exact function of the words, so a model that learns reaches ~0.99.
    check(last["pearson"] >= 0.8, "dev pearson %.3f >= 0.8" % last["pearson"])
    variance = 1.0 / 18.0
    check(last["mse"] < 0.25 * variance, "dev mse %.4g < 1/4 of the target variance %.4g" % (last["mse"], variance))
    check(abs(last["eval_loss"] - last["mse"]) <= 1e-6 * max(1.0, last["mse"]) + 1e-9,
          "dev eval_loss = dev mse for a regression run")
    _, out, _ = run([distill, "eval", "--model", "reg/final", "--data", "dev_reg.h5", "--batch-size", "16",
                     "--threads", "1", "--no-latency", "--json"], d)
    js = json.loads(out)
    # same weights, batches and threads as the run's own last evaluation: equal to %.6g printing.
    check(abs(js["pearson"] - last["pearson"]) <= 1e-5, "eval of reg/final pearson %.6g = last dev eval %.6g"
          % (js["pearson"], last["pearson"]))
    tgt = task["dev_targets"]
    check(len(set(tgt)) > 1, "dev targets are not constant")


def case_plot(distill, d):
    toy_task.write_task(d)
    prepare(distill, d)
    train(distill, d, "student.yaml", "--set", "teacher={init: random, layers: 2, hidden: 32, heads: 4, "
          "intermediate: 64, max_position: 32}", "--set", "train.max_steps=40", "--set", "train.eval_every=20")
    out_png = os.path.join(d, "metrics.png")
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "plot_metrics.py"), "student",
                        "--out", out_png], cwd=d, capture_output=True, text=True)
    sys.stdout.write(p.stdout + p.stderr)
    check(p.returncode == 0, "plot_metrics.py exits 0 (rc %d)" % p.returncode)
    ok = os.path.isfile(out_png) and os.path.getsize(out_png) > 1000
    check(ok, "it wrote a PNG of more than 1000 bytes")
    if ok:
        with open(out_png, "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the file has the PNG signature")
    # the default output path is RUN_DIR/metrics.png
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "plot_metrics.py"), "student"],
                       cwd=d, capture_output=True, text=True)
    check(p.returncode == 0 and os.path.getsize(os.path.join(d, "student", "metrics.png")) > 1000,
          "without --out it writes RUN_DIR/metrics.png")
    # a folder without metrics.jsonl is an error with a message, and writes nothing
    os.mkdir(os.path.join(d, "empty"))
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "plot_metrics.py"), "empty"],
                       cwd=d, capture_output=True, text=True)
    check(p.returncode != 0 and "metrics.jsonl" in p.stderr and not os.listdir(os.path.join(d, "empty")),
          "a folder without metrics.jsonl: non-zero exit, a message naming metrics.jsonl, nothing written")


def case_teacher_layers(distill, d):
    """student.init: teacher_layers copies the teacher's embeddings, the listed layers (in the given
    order), pooler and classifier. With a learning rate of 1e-30 one AdamW step moves no f32 weight
    (an update of ~1e-30 is far below half an ulp of any weight), so the exported student must hold
    the teacher's tensors bit for bit, layer 0 <- teacher layer 2, layer 1 <- teacher layer 1."""
    from safetensors.numpy import load_file
    toy_task.write_task(d)
    prepare(distill, d)
    train(distill, d, "teacher.yaml", "--set", "train.max_steps=20", "--set", "train.eval_every=0")
    train(distill, d, "student.yaml", "--set", "student={init: teacher_layers, layers: [2, 1], dropout: 0.0}",
          "--set", "optimizer={lr: 1.0e-30, weight_decay: 0.0}", "--set", "train={max_steps: 1, eval_every: 0}",
          "--set", "losses=[{type: logits_kd}]", "--set", "data.test=")
    t = load_file(os.path.join(d, "teacher", "best", "model.safetensors"))
    s_ = load_file(os.path.join(d, "student", "final", "model.safetensors"))
    check(sum(1 for k in s_ if ".encoder.layer." in k and ".layer.2." in k) == 0,
          "the student has 2 encoder layers (no layer 2)")
    mapping = {0: 2, 1: 1}  # student layer <- teacher layer (0-based): config lists 1-based [2, 1]
    bad = []
    for k, v in s_.items():
        src = k
        for sl, tl in mapping.items():
            tag = ".encoder.layer.%d." % sl
            if tag in k:
                src = k.replace(tag, ".encoder.layer.%d." % (tl - 1))
        if src not in t or t[src].shape != v.shape or not (t[src] == v).all():
            bad.append(k)
    check(not bad, "every student tensor equals its teacher source (mismatches: %s)" % bad[:5])


def shipped(distill, d, config, *kvs):
    """Runs configs/<config> (the repository's shipped config, unedited) in d with one --set per
    KEY=VALUE; returns (rc, stdout, stderr)."""
    cmd = [distill, "--config", os.path.join(REPO, "configs", config)]
    for kv in kvs:
        cmd += ["--set", kv]
    return run(cmd, d)


def safetensors_names(path):
    """The tensor names in a safetensors file's header."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return [k for k in json.loads(f.read(n)) if k != "__metadata__"]


def read_json(path):
    with open(path) as f:
        return json.load(f)


# Keys of a metrics.jsonl step record that are not loss terms (train/progress.c).
STEP_KEYS = {"step", "epoch", "loss", "stage", "lr", "grad_norm", "tokens_per_s", "time_s"}


def case_general(distill, d):
    """The shipped TinyBERT general-distillation configs on the toy task, through --set only (paths,
    one thread, a tiny student shape, lengths, log_every 1):
      - configs/general.yaml on unlabelled toy text (toy_task.py's generator, another seed, the
        label column dropped, `prepare --no-label`): no labels, no logits; the logged terms are
        exactly embedding_mse, hidden_mse, attention_mse, and they fall; final/ is a Hugging Face
        BertModel folder without a classifier.
      - configs/tiny-from-general.yaml from that final/ on the labelled toy task: the student starts
        from the general weights (its first-step attention_mse is far below that of
        configs/tiny.yaml's random student of the same shape, seed and data) and learns.
      - configs/two-layer.yaml (student.init: teacher_layers) parses and runs with a layer list that
        fits the toy teacher's 2 layers; the copying itself is case_teacher_layers'."""
    _, chance, _ = toy_task_and_teacher(distill, d)
    # The student: 2 layers, hidden 16, 4 heads: narrower than the 32-wide teacher, so hidden_mse and
    # embedding_mse learn 16 -> 32 projections as general.yaml's 312 -> 384 ones; the teacher's head
    # count, as attention_mse needs.
    shape = ["student.layers=2", "student.hidden=16", "student.heads=4", "student.intermediate=32",
             "student.max_position=32"]

    # -- 1. unlabelled text: 800 fresh sentences of the toy task's generator, one `sentence` column
    gen_dir = os.path.join(d, "unlabelled")
    os.mkdir(gen_dir)
    toy_task.write_task(gen_dir, seed=11, n_train=800, n_dev=0)
    with open(os.path.join(gen_dir, "train.tsv")) as f, open(os.path.join(d, "general.tsv"), "w") as g:
        rows = [line.rstrip("\n").split("\t")[0] for line in f][1:]
        g.write("sentence\n" + "".join(r + "\n" for r in rows))
    run([distill, "prepare", "--vocab", "vocab.txt", "--input", "general.tsv", "--output", "general.h5",
         "--max-seq", "16", "--no-label", "--text", "sentence"], d)
    _, out, _ = run([distill, "info", "general.h5"], d)
    check(re.search(r"rows:\s+800\b", out) and re.search(r"labels:\s+none", out),
          "info: general.h5 holds 800 rows and no labels")

    # -- 2. general distillation. 600 steps: general.yaml's own length, pinned (~2 s here); at its
    # lr of 3e-4 a shorter run barely moves the terms (200 steps: hidden_mse falls by 15%).
    _, out, _ = shipped(distill, d, "general.yaml", "run.dir=general", "data.train=general.h5",
                        "teacher.path=teacher/best", "threads=1", *shape, "train.max_steps=600",
                        "train.log_every=1")
    check(re.search(r"student: .* 0 labels", out) is not None and "projections:" in out,
          "the general student has no classifier (0 labels) and 16 -> 32 projections")
    steps, evals = read_metrics(os.path.join(d, "general"))
    terms = ["embedding_mse", "hidden_mse", "attention_mse"]
    check([s["step"] for s in steps] == list(range(1, 601)), "step records at 1, 2, ..., 600")
    check(not evals, "no evaluations (no dev set, no labels)")
    odd = sorted({k for s in steps for k in s} - STEP_KEYS - set(terms))
    check(not odd and all(t in s and math.isfinite(s[t]) for s in steps for t in terms),
          "every step record's loss terms are exactly %s (others: %s)" % (", ".join(terms), odd))
    check(all(abs(s["loss"] - sum(s[t] for t in terms)) <= 1e-4 * max(1.0, s["loss"]) for s in steps),
          "loss = embedding_mse + hidden_mse + attention_mse in every record")
    # Measured last/first: embedding 0.37, hidden 0.33, attention 0.14 (means of 10 records).
    check_terms_fall(steps, terms + ["loss"], n=10)
    final = os.path.join(d, "general", "final")
    for f in ("config.json", "model.safetensors", "vocab.txt"):
        check(os.path.isfile(os.path.join(final, f)), "general/final/%s exists" % f)
    # No classifier, as Hugging Face writes a bare encoder: architectures BertModel and no
    # id2label/label2id (num_labels is implied by id2label; none is written).
    cfg = read_json(os.path.join(final, "config.json"))
    check(cfg.get("architectures") == ["BertModel"] and not {"id2label", "label2id", "num_labels"} & set(cfg),
          "general/final/config.json: architectures [BertModel], no id2label/label2id/num_labels (%s)"
          % {k: cfg.get(k) for k in ("architectures", "id2label", "num_labels")})
    check((cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]) == (2, 16, 4),
          "general/final is the 2-layer, 16-wide, 4-head student")
    names = safetensors_names(os.path.join(final, "model.safetensors"))
    check(names and not [k for k in names if "classifier" in k], "general/final/model.safetensors: no classifier tensor")
    _, out, _ = run([distill, "info", "general/final"], d)
    check("architecture BertModel" in out and "no classifier" in out and re.search(r"load\s+ok", out),
          "info general/final: BertModel, no classifier, loads")

    # -- 3. task distillation from general/final, against tiny.yaml's random student. The two runs
    # share the seed (checked below), the data and the student shape, so they draw the same first
    # batch and dropout masks: step 1 (its loss is computed before the first update) differs only in
    # the student's starting weights. A run whose student.init were ignored (random weights) logs
    # the baseline's step-1 record bit for bit, a ratio of exactly 1. attention_mse compares the
    # student's scores with the teacher's directly; hidden_mse and embedding_mse read the student
    # through the 16 -> 32 projections, which start fresh in both runs (general.yaml's trained ones
    # are dropped on export), so they do not show the head start at step 1. Measured: 0.072 against
    # 0.535 (the general run's own attention_mse fell ~7x); the bound is 0.5x.
    task_sets = ["teacher.path=teacher/best", "data.train=train.h5", "data.dev=dev.h5", "data.test=dev.h5",
                 "threads=1", "train.max_steps=400", "train.log_every=1"]  # 400: the configs' own length
    _, out, err = shipped(distill, d, "tiny-from-general.yaml", "run.dir=from_general",
                          "student.init=general/final", *task_sets)
    check(re.search(r"newly initialized: \['classifier\.bias', 'classifier\.weight'\]", err) is not None
          and re.search(r"student: 2 layers, hidden 16, 4 heads, .* 2 labels", out) is not None,
          "from general/final: its 2-layer, 16-wide encoder with a new 2-class classifier")
    shipped(distill, d, "tiny.yaml", "run.dir=random_init", *shape, *task_sets)
    seeds = []
    for r in ("from_general", "random_init"):
        with open(os.path.join(d, r, "config.yaml")) as f:
            seeds.append(re.search(r"^  seed: (\d+)$", f.read(), re.M).group(1))
    check(seeds[0] == seeds[1], "tiny-from-general.yaml and tiny.yaml run with one seed (%s)" % seeds)
    fg, fg_evals = read_metrics(os.path.join(d, "from_general"))
    rnd, _ = read_metrics(os.path.join(d, "random_init"))
    check(fg[0]["step"] == 1 and rnd[0]["step"] == 1, "both runs log step 1")
    check(fg[0]["attention_mse"] < 0.5 * rnd[0]["attention_mse"],
          "step 1 from general/final: attention_mse %.4g < 0.5 x the random student's %.4g "
          "(hidden_mse %.4g vs %.4g)" % (fg[0]["attention_mse"], rnd[0]["attention_mse"],
                                          fg[0]["hidden_mse"], rnd[0]["hidden_mse"]))
    dev = [e for e in fg_evals if e["split"] == "dev"]
    check(dev and dev[-1]["step"] == 400 and dev[-1]["n"] == 100, "a dev evaluation of the 100 rows at step 400")
    if dev:
        check(dev[-1]["accuracy"] >= ACCURACY_BOUND, "the student from general/final: final dev accuracy "
              "%.3f >= %.2f (chance %.2f)" % (dev[-1]["accuracy"], ACCURACY_BOUND, chance))

    # -- 4. two-layer.yaml: its layers [3, 6] are for a 6-layer teacher; the toy teacher has 2, so
    # take its top layer ([2]): a 1-layer student as wide as the teacher, hence no projections.
    t_cfg = read_json(os.path.join(d, "teacher", "best", "config.json"))
    _, out, _ = shipped(distill, d, "two-layer.yaml", "run.dir=two_layer", "student.layers=[2]",
                        "teacher.path=teacher/best", "data.train=train.h5", "data.dev=dev.h5", "data.test=dev.h5",
                        "threads=1", "train.max_steps=10", "train.log_every=1")
    check("projections:" not in out, "two-layer: equal widths, no projections")
    steps, _ = read_metrics(os.path.join(d, "two_layer"))
    terms = ["logits_kd", "hidden_mse", "attention_mse", "embedding_mse"]
    check([s["step"] for s in steps] == list(range(1, 11)) and
          all(t in s and math.isfinite(s[t]) for s in steps for t in terms),
          "two-layer: 10 step records with finite %s" % ", ".join(terms))
    s_cfg = read_json(os.path.join(d, "two_layer", "final", "config.json"))
    got = {k: s_cfg[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")}
    want = dict({k: t_cfg[k] for k in got}, num_hidden_layers=1)
    check(got == want, "two-layer final/: 1 layer, the teacher's width, heads and FFN (%s, want %s)" % (got, want))


def case_bench(distill, d):
    """distill bench --json: one JSON object with the documented fields, the shapes it ran, and a
    self-consistent timing (tokens/s = batch*seq / median step; min <= median <= max)."""
    teacher = "teacher={init: random, layers: 2, hidden: 32, heads: 4, intermediate: 64, max_position: 32}"
    _, out, _ = run([distill, "bench", "--config", os.path.join(FIXTURES, "student.yaml"), "--set", teacher,
                     "--steps", "3", "--seq", "16", "--json"], d)
    lines = [l for l in out.splitlines() if l.strip()]
    check(len(lines) == 1, "bench --json prints one line (found %d)" % len(lines))
    r = json.loads(lines[0])
    for k in ("step_ms", "tokens_per_s", "teacher_ms", "student_ms", "gflops_per_s", "peak_rss_mb", "teacher", "student"):
        check(k in r, "bench --json has %s" % k)
    sm = r["step_ms"]
    check(0 < sm["min"] <= sm["median"] <= sm["max"], "min <= median <= max step time: %s" % sm)
    check(abs(r["tokens_per_s"] - 16 * 16 / (sm["median"] / 1e3)) <= 0.01 * r["tokens_per_s"],
          "tokens/s = batch*seq / median step (within rounding)")
    check(r["student"] == {"layers": 2, "hidden": 16, "heads": 4, "intermediate": 32}, "student shape %s" % r["student"])
    check(r["teacher"]["hidden"] == 32, "teacher shape %s" % r["teacher"])
    check(not os.listdir(d), "bench wrote nothing (cwd is empty)")


def bf16_available(distill, d):
    """(True, "") when `distill` can run bf16 GEMMs here, else (False, why)."""
    p = subprocess.run([distill, "bench", "--config", os.path.join(FIXTURES, "resume.yaml"), "--set", "precision=bf16",
                        "--steps", "1", "--seq", "8"], cwd=d, capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


def case_bf16(distill, d):
    """precision: bf16 on the CPU (oneDNN). A bf16 teacher and a bf16 student (bf16 GEMM inputs, fp32
    accumulation, fp32 master weights) distil the toy task as the fp32 run does: the same run in
    fp32 and in bf16 from the same seeds, with every loss term.
      - The bf16 loss curve tracks the fp32 one: at each logged step the two losses differ by less
        than 10% of the fp32 loss. Why 10%: each GEMM input is rounded to 8 significant bits (2^-9
        relative), which moves each layer's output by ~2^-9 x sqrt(k) / sqrt(k) ~ 0.2% relative per
        GEMM for these random-sign sums, through ~30 GEMMs per forward and 300 AdamW steps that
        amplify small differences along the trajectory (measured: a few percent); a run that did not
        train, or trained on garbage, departs by far more than 10% (the loss falls ~5x).
      - The curves are not identical (bf16 ran, not a silent fp32), and bf16 is bitwise repeatable.
      - The bf16 student learns: final dev accuracy >= ACCURACY_BOUND, as the fp32 student.
    Skipped (exit 77) on a CPU without AVX512-BF16/AMX or a build without oneDNN, with the reason."""
    ok, why = bf16_available(distill, d)
    if not ok:
        print("skipped: %s" % why.splitlines()[-1] if why else "skipped")
        raise SystemExit(77)
    task = toy_task.write_task(d)
    prepare(distill, d)
    train(distill, d, "teacher.yaml")
    common = ["--set", "train.log_every=5"]
    train(distill, d, "student.yaml", "--set", "run.dir=s32", *common)
    _, out, _ = train(distill, d, "student.yaml", "--set", "run.dir=s16", "--set", "precision=bf16", *common)
    check("precision: bf16" in out, "the bf16 run's resolved config says precision: bf16")
    train(distill, d, "student.yaml", "--set", "run.dir=s16b", "--set", "precision=bf16", *common)
    a, ea = read_metrics(os.path.join(d, "s32"))
    b, eb = read_metrics(os.path.join(d, "s16"))
    check([r["step"] for r in a] == [r["step"] for r in b], "the same logged steps")
    worst = max(abs(x["loss"] - y["loss"]) / x["loss"] for x, y in zip(a, b))
    check(worst < 0.10, "bf16 loss tracks fp32 at every logged step: worst relative difference %.3g < 0.10" % worst)
    check(any(x["loss"] != y["loss"] for x, y in zip(a, b)), "bf16 differs from fp32 (bf16 GEMMs ran)")
    check(a[-1]["loss"] < 0.5 * a[0]["loss"] and b[-1]["loss"] < 0.5 * b[0]["loss"],
          "both runs learn: loss %.3g -> %.3g (fp32), %.3g -> %.3g (bf16)"
          % (a[0]["loss"], a[-1]["loss"], b[0]["loss"], b[-1]["loss"]))
    with open(os.path.join(d, "s16", "final", "model.safetensors"), "rb") as f1, \
            open(os.path.join(d, "s16b", "final", "model.safetensors"), "rb") as f2:
        check(f1.read() == f2.read(), "bf16 is bitwise repeatable run to run")
    acc16 = [e for e in eb if e["split"] == "dev"][-1]["accuracy"]
    acc32 = [e for e in ea if e["split"] == "dev"][-1]["accuracy"]
    check(acc16 >= ACCURACY_BOUND, "bf16 student final dev accuracy %.3f >= %.2f (fp32: %.3f)"
          % (acc16, ACCURACY_BOUND, acc32))
    # the checkpoint and export stay fp32: safetensors dtype F32
    with open(os.path.join(d, "s16", "final", "model.safetensors"), "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    check(all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__"), "the bf16 run exports fp32")


CASES = {"bf16": case_bf16, "general": case_general, "learn": case_learn, "teacher_layers": case_teacher_layers, "bench": case_bench, "resume": case_resume, "stages": case_stages, "regression": case_regression, "plot": case_plot}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--distill", required=True, help="the distill binary")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    distill = os.path.abspath(a.distill)
    d = tempfile.mkdtemp(prefix="distill-e2e-%s-" % a.case)
    try:
        CASES[a.case](distill, d)
    except SystemExit as e:
        if e.code == 77:  # skipped, with the reason printed
            shutil.rmtree(d, ignore_errors=True)
            return 77
        print(e)
        FAILURES.append(str(e))
    if FAILURES or a.keep:
        print("scratch folder kept: %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
