#!/usr/bin/env python3
"""plot_metrics.py — draw a run's metrics.jsonl: loss terms and dev metrics against the step.

    .venv/bin/python scripts/plot_metrics.py RUN_DIR [--out FILE.png] [--linear]

Reads RUN_DIR/metrics.jsonl (written by `distill --config ...`: one JSON object per logged step,
{"step", "epoch", "loss", <one key per loss term>, "lr", "grad_norm", "tokens_per_s", "time_s"},
and one per evaluation, {"step", "split", "eval_loss", <metrics>, "n", "best"}) and writes a PNG
(default RUN_DIR/metrics.png) with two panels:
  top     the total training loss and every loss term (as logged, i.e. weighted) against the
          optimizer step; log scale when the values span more than a factor 30 (--linear: never);
  bottom  the dev metrics against the step: accuracy, F1 and MCC for classification, Pearson and
          Spearman for regression; the best evaluations ringed; a test evaluation as a star.
Needs matplotlib (Debian's python3-matplotlib, seen by the project's .venv; another python3 without
it re-runs the script with .venv/bin/python); draws with the Agg backend, no display needed.
Errors (no metrics.jsonl, a line that is not JSON, no step records) go to stderr with exit 1, and
nothing is written; the PNG is written to a temporary name and renamed, so it is whole or absent.
"""
import argparse
import json
import math
import os
import sys

NOT_TERMS = {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "time_s"}
CLASS_METRICS = ("accuracy", "f1", "macro_f1", "mcc")  # macro_f1: runs with more than two classes
REGRESSION_METRICS = ("pearson", "spearman")


def fail(msg):
    sys.stderr.write("plot_metrics.py: error: %s\n" % msg)
    sys.exit(1)


def read_metrics(path):
    """(step records, eval records), in file order."""
    steps, evals = [], []
    try:
        f = open(path)
    except OSError as e:
        fail("%s: cannot read: %s" % (path, e.strerror))
    with f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                fail("%s:%d: expected one JSON object per line, found %r (%s)" % (path, i, line[:60], e))
            if not isinstance(rec, dict) or "step" not in rec:
                fail("%s:%d: expected an object with a \"step\", found %r" % (path, i, line[:60]))
            (evals if "split" in rec else steps).append(rec)
    return steps, evals


def term_names(steps):
    """Loss-term keys in first-seen order (everything numeric that is not a known field)."""
    names = []
    for rec in steps:
        for k, v in rec.items():
            if k not in NOT_TERMS and k not in names and isinstance(v, (int, float)):
                names.append(k)
    return names


def series(records, key):
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    ap = argparse.ArgumentParser(description="Plot a distill run's metrics.jsonl.")
    ap.add_argument("run_dir", help="the run directory (holding metrics.jsonl)")
    ap.add_argument("--out", help="the PNG to write (default RUN_DIR/metrics.png)")
    ap.add_argument("--linear", action="store_true", help="never use a log scale for the losses")
    a = ap.parse_args()

    path = os.path.join(a.run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        fail("%s: not found (expected the metrics.jsonl of a distill run)" % path)
    steps, evals = read_metrics(path)
    if not steps:
        fail("%s: no step records (the run logged no step yet)" % path)
    out = a.out or os.path.join(a.run_dir, "metrics.png")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # Run by another Python (a pyenv or conda python3): the project's venv sees Debian's
        # python3-matplotlib, so re-run there once when it exists.
        venv_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv", "bin", "python")
        if os.path.exists(venv_py) and not os.environ.get("DISTILL_PLOT_REEXEC"):
            os.environ["DISTILL_PLOT_REEXEC"] = "1"
            os.execv(venv_py, [venv_py, os.path.abspath(__file__)] + sys.argv[1:])
        fail("matplotlib is not importable by %s; run this script with the project's venv, "
             ".venv/bin/python scripts/plot_metrics.py (bash scripts/install-deps.sh makes it, with "
             "Debian's python3-matplotlib)" % sys.executable)

    fig, (ax_loss, ax_eval) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 2]})
    name = os.path.basename(os.path.normpath(a.run_dir))
    fig.suptitle("%s — %s" % (name, path))

    # -- losses
    x, y = series(steps, "loss")
    ax_loss.plot(x, y, color="black", linewidth=2.0, linestyle="--", label="loss (total)")
    values = [v for v in y if math.isfinite(v)]
    for t in term_names(steps):
        tx, ty = series(steps, t)
        ax_loss.plot(tx, ty, linewidth=1.2, label=t)
        values += [v for v in ty if math.isfinite(v)]
    positive = [v for v in values if v > 0]
    if not a.linear and positive and len(positive) == len(values) and max(positive) / min(positive) > 30:
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss (terms weighted)")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend(fontsize=8, loc="upper right")

    # -- evaluations
    dev = [e for e in evals if e.get("split") == "dev"]
    test = [e for e in evals if e.get("split") == "test"]
    regression = any("pearson" in e for e in evals)
    keys = REGRESSION_METRICS if regression else CLASS_METRICS
    drawn = False
    for k in keys:
        ex, ey = series(dev, k)
        if not ex:
            continue
        line, = ax_eval.plot(ex, ey, marker="o", markersize=3, linewidth=1.2, label="dev " + k)
        bx, by = series([e for e in dev if e.get("best")], k)
        ax_eval.scatter(bx, by, s=60, facecolors="none", edgecolors=line.get_color())
        tx, ty = series(test, k)
        if tx:
            ax_eval.scatter(tx, ty, marker="*", s=120, color=line.get_color(), label="test " + k)
        drawn = True
    if drawn:
        ax_eval.legend(fontsize=8, loc="lower right")
        ax_eval.set_ylabel("dev metric (rings: best so far)")
    else:
        ax_eval.text(0.5, 0.5, "no evaluations in metrics.jsonl (no data.dev?)", ha="center", va="center",
                     transform=ax_eval.transAxes)
    ax_eval.set_xlabel("optimizer step")
    ax_eval.grid(True, alpha=0.3)

    fig.tight_layout()
    tmp = "%s.tmp-%d.png" % (out, os.getpid())
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail("%s: cannot write: %s" % (out, e.strerror))
    plt.close(fig)
    print("wrote %s (%d step records, %d evaluations)" % (out, len(steps), len(evals)))


if __name__ == "__main__":
    main()
