#!/usr/bin/env python3
"""test_eval_multiclass.py — `distill eval` on a three-class task reports macro-F1 and per-class
counts, equal to a reference computed from the same model's predictions.

Small random classifiers (scripts/torch_bert.py, fixed seeds: 2 layers, hidden 32, shared
bert-base-uncased vocabulary) are saved as Hugging Face folders, one with three labels and one
with two. A labelled TSV of generated sentences is prepared (`distill prepare --labels ...`), the
model's predictions are read back with `distill predict --output label`, and the reference is
computed here in numpy from gold labels and those predictions (sklearn's definitions:
precision_recall_fscore_support per class with zero_division=0; f1_score(average="macro") averages
over the classes that occur in the gold labels or the predictions; matthews_corrcoef). Checks:
  - three classes: `distill eval --json` has "macro_f1" (and no "f1"), accuracy, MCC and, per
    class, label name, support, predicted, tp, precision, recall and F1 equal to the reference;
    the text report says "macro_f1" with the same value;
  - two classes: "f1" is the F1 of class 1 (GLUE's binary F1), equal to per_class[1].f1;
  - the predictions fall in at least two classes (else the check would say little);
  - a 3-class fine-tune (6 steps, dev evaluation every 3, `metric: f1`) logs its evaluations with
    "macro_f1" on stderr and in metrics.jsonl, and marks the one with the highest macro-F1 best.
Usage: test_eval_multiclass.py --distill build/train/distill --vocab VOCAB.txt
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_bert import TorchBert  # noqa: E402

# eval prints %.6g: 6 significant digits, a relative error of at most 5e-6 of a value in [0, 1] (or
# [-1, 1] for MCC); its float64 ratios of integer counts are otherwise exact. 1e-5 covers that.
TOL = 1e-5
WORDS = ("good bad fine movie plot actor great awful okay film boring fun dull story music long "
         "short brilliant weak strong").split()

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def make_model(folder, vocab, labels, seed):
    torch.manual_seed(seed)
    config = {
        "architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37,
        "max_position_embeddings": 64, "type_vocab_size": 2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.3, "pad_token_id": 0, "position_embedding_type": "absolute",
        "id2label": {str(i): n for i, n in enumerate(labels)},
        "label2id": {n: i for i, n in enumerate(labels)},
    }
    model = TorchBert(config).eval()
    os.makedirs(folder)
    state = {n: p.detach().contiguous() for n, p in model.hf_named_parameters()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(vocab, "rb") as src, open(os.path.join(folder, "vocab.txt"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(" ".join(cmd), "\n", p.stdout, p.stderr)
        raise SystemExit(f"FAIL: exit {p.returncode}: {' '.join(cmd[:2])}")
    return p.stdout


def reference(gold, pred, C):
    cm = np.zeros((C, C), np.int64)
    np.add.at(cm, (gold, pred), 1)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    present = (support + predicted) > 0
    s, c = float(len(gold)), float(tp.sum())
    den = np.sqrt((s * s - float((predicted ** 2).sum())) * (s * s - float((support ** 2).sum())))
    mcc = (c * s - float((predicted * support).sum())) / den if den > 0 else 0.0
    return dict(tp=tp, support=support, predicted=predicted, precision=precision, recall=recall, f1=f1,
                macro_f1=float(f1[present].mean()), accuracy=c / s, mcc=mcc)


def one_task(distill, vocab, work, labels, seed, rows):
    C = len(labels)
    name = f"c{C}"
    model = os.path.join(work, name + "-model")
    make_model(model, vocab, labels, seed)
    rng = np.random.default_rng(seed)
    tsv, h5 = os.path.join(work, name + ".tsv"), os.path.join(work, name + ".h5")
    gold = np.arange(rows) % C
    with open(tsv, "w") as f:
        f.write("sentence\tlabel\n")
        for g in gold:
            f.write(" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) + "\t" + labels[g] + "\n")
    run([distill, "prepare", "--vocab", vocab, "--input", tsv, "--output", h5, "--max-seq", "64",
         "--labels", ",".join(labels)])
    out = run([distill, "predict", "--model", model, "--input", tsv, "--output", "label"])
    pred = np.array([json.loads(line)["id"] for line in out.splitlines() if line.strip()])
    check(len(pred) == rows, f"{name}: predict gave {len(pred)} labels for {rows} rows")
    check(len(set(pred.tolist())) >= 2, f"{name}: predictions fall in {sorted(set(pred.tolist()))} (>= 2 classes)")
    ref = reference(gold, pred, C)
    got = json.loads(run([distill, "eval", "--model", model, "--data", h5, "--json", "--no-latency"]))
    text = run([distill, "eval", "--model", model, "--data", h5, "--no-latency"])
    f1_key = "macro_f1" if C > 2 else "f1"
    other = "f1" if C > 2 else "macro_f1"
    check(f1_key in got and other not in got, f"{name}: JSON names the F1 {f1_key!r} (and has no {other!r})")
    want_f1 = ref["macro_f1"] if C > 2 else float(ref["f1"][1])
    check(abs(got.get(f1_key, -9) - want_f1) <= TOL, f"{name}: {f1_key} {got.get(f1_key)} = reference {want_f1:.6f}")
    check(abs(got["accuracy"] - ref["accuracy"]) <= TOL, f"{name}: accuracy {got['accuracy']} = {ref['accuracy']:.6f}")
    check(abs(got["mcc"] - ref["mcc"]) <= TOL, f"{name}: mcc {got['mcc']} = {ref['mcc']:.6f}")
    pcs = got.get("per_class", [])
    check(len(pcs) == C, f"{name}: per_class has {len(pcs)} entries for {C} classes")
    for k, pc in enumerate(pcs):
        counts = all(pc[key] == int(ref[key][k]) for key in ("support", "predicted", "tp"))
        ratios = all(abs(pc[key] - float(ref[key][k])) <= TOL for key in ("precision", "recall", "f1"))
        check(pc["class"] == k and pc["label"] == labels[k] and counts and ratios,
              f"{name}: class {k} {pc} = reference support {ref['support'][k]} predicted {ref['predicted'][k]} "
              f"tp {ref['tp'][k]} precision {ref['precision'][k]:.6f} recall {ref['recall'][k]:.6f} "
              f"f1 {ref['f1'][k]:.6f}")
    line = [ln for ln in text.splitlines() if ln.startswith("loss ")]
    words = line[0].split() if line else []
    ok = f1_key in words and abs(float(words[words.index(f1_key) + 1]) - want_f1) <= 5e-5  # %.4f: half of 1e-4
    check(ok, f"{name}: text report {line[0] if line else '(no metrics line)'!r} shows {f1_key} {want_f1:.4f}")


def training_log(distill, vocab, work):
    """A 3-class fine-tune's dev evaluations are logged with macro_f1 (metrics.jsonl and stderr),
    and `metric: f1` selects the best model by it."""
    d = os.path.join(work, "train")
    os.makedirs(d)
    for f in ("c3.h5",):
        os.link(os.path.join(work, f), os.path.join(d, f))
    with open(os.path.join(d, "run.yaml"), "w") as f:
        f.write("task: finetune\nrun: {name: mc, dir: mc, seed: 1}\nthreads: 1\n"
                "student: {init: random, layers: 1, hidden: 16, heads: 4, intermediate: 32, max_position: 64}\n"
                "data: {train: c3.h5, dev: c3.h5, batch_size: 16}\nlosses: [{type: hard_ce}]\n"
                "optimizer: {lr: 3.0e-3, warmup_steps: 2}\n"
                "train: {max_steps: 6, eval_every: 3, log_every: 3, checkpoint_every: 6, metric: f1}\n")
    p = subprocess.run([distill, "--config", "run.yaml"], cwd=d, capture_output=True, text=True)
    check(p.returncode == 0, f"3-class fine-tune ran (exit {p.returncode}){'' if p.returncode == 0 else p.stderr[-800:]}")
    evals = [ln for ln in p.stderr.splitlines() if ln.startswith("eval dev")]
    check(len(evals) >= 2 and all(" macro_f1 " in ln and " f1 " not in ln for ln in evals),
          f"the training log's dev evaluations name macro_f1: {evals}")
    recs = []
    if os.path.isfile(os.path.join(d, "mc", "metrics.jsonl")):
        with open(os.path.join(d, "mc", "metrics.jsonl")) as f:
            recs = [json.loads(ln) for ln in f if '"split"' in ln]
    check(len(recs) >= 2 and all("macro_f1" in r and "f1" not in r for r in recs),
          f"metrics.jsonl's evaluations carry macro_f1: {recs}")
    if recs:
        best = max(recs, key=lambda r: r.get("macro_f1", -1))  # first of equals, as "better" is strict
        check(best.get("best") is True, f"metric: f1 picks the best macro_f1 (step {best.get('step')})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--distill", required=True)
    ap.add_argument("--vocab", required=True)
    a = ap.parse_args()
    a.distill = os.path.abspath(a.distill)  # the fine-tune runs in a scratch folder
    with tempfile.TemporaryDirectory(prefix="distill-eval-mc-") as work:
        one_task(a.distill, a.vocab, work, ["negative", "neutral", "positive"], 1233, 90)
        one_task(a.distill, a.vocab, work, ["no", "yes"], 7, 60)
        training_log(a.distill, a.vocab, work)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
