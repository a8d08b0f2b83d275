#!/usr/bin/env python3
"""test_train_step.py — the Trainer's optimizer step against PyTorch (tests/test_train_step.c is
the C half).

For each case below, `test_train_step trace` takes a few optimizer steps of a tiny distillation
(student + projection stores) and writes the learning rate, the gradient norm, the gradients and
the parameters of every step. This script replays each step in float64 on the C gradients:

  schedule   torch.optim.lr_scheduler.LambdaLR with Hugging Face's lambdas
             (transformers.get_linear/cosine/constant_schedule_with_warmup, copied below: the
             Debian venv has no transformers) gives the learning rate of every step; warmup from
             warmup_ratio is ceil(ratio * total steps), as TrainingArguments.get_warmup_steps.
  clipping   torch.nn.utils.clip_grad_norm_ over all parameters of both stores gives the norm the
             C step reports and the clipped gradients.
  AdamW      torch.optim.AdamW (biases and LayerNorm weights in a group without weight decay) on
             those gradients, started from C's parameters before the step, gives the parameters
             after it.

It fails (exit 1) on any difference beyond its bound, and also when a case does not exercise what
it is meant to (warmup not reached, clipping not active where it should be, or a replay without
clipping that would pass as well). Exit 77 (skip) when torch or safetensors is missing, 1 then
under CI=true (tests/ci_skip.py).

Usage: test_train_step.py --tool build/tests/test_train_step
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from safetensors.numpy import load_file
except ImportError as e:
    from ci_skip import missing_reference
    missing_reference(f"a reference package cannot be imported: {e}")

U = 2.0 ** -24  # fp32 unit roundoff

# name, overrides, steps. Linear: 2 warmup steps, clipping at 0.05 (the gradient norm is far above
# it) with eps 1e-3 (of the gradients' size, so the clipped and unclipped AdamW updates differ and a
# step that forgot to clip fails); one step past max_steps (lr 0). Cosine: warmup_ratio 0.3 of 7
# steps = ceil(2.1) = 3 warmup steps, no clipping (max_grad_norm 0). Constant: no warmup, a
# max_grad_norm of 100 that never bites.
CASES = [
    ("linear_warmup_clip", ["optimizer.schedule=linear", "optimizer.warmup_steps=2", "optimizer.max_grad_norm=0.05",
                            "optimizer.eps=1e-3", "train.max_steps=6"], 7),
    ("cosine_ratio_noclip", ["optimizer.schedule=cosine", "optimizer.warmup_ratio=0.3", "optimizer.max_grad_norm=0",
                             "train.max_steps=7", "optimizer.beta1=0.8", "optimizer.beta2=0.99"], 7),
    ("constant_clip_idle", ["optimizer.schedule=constant", "optimizer.warmup_steps=0", "optimizer.max_grad_norm=100",
                            "optimizer.lr=3e-3", "train.max_steps=5"], 5),
]


# Hugging Face's schedule lambdas (transformers/optimization.py), verbatim in substance.
def hf_lambda(kind, warmup, total):
    def linear(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))

    def cosine(step, num_cycles=0.5):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    def constant(step):
        if step < warmup:
            return float(step) / float(max(1.0, warmup))
        return 1.0

    return {"linear": linear, "cosine": cosine, "constant": constant}[kind]


def read_trace(prefix):
    meta, steps = {}, []
    with open(prefix + ".txt") as f:
        for line in f:
            w = line.split()
            if w[0] == "step":
                steps.append(dict(k=int(w[1]), lr=float(w[2]), gnorm=float(w[3]), loss=float(w[4])))
            elif w[0] in ("schedule",):
                meta[w[0]] = w[1]
            else:
                meta[w[0]] = float(w[1])
    return meta, steps, load_file(prefix + ".safetensors")


def f32(x):
    """x rounded to float32, as the C optimizer holds its hyperparameters."""
    return float(np.float32(x))


def run_case(tool, name, overrides, n_steps, tmp):
    errs = []
    prefix = os.path.join(tmp, name)
    cmd = [tool, "trace", prefix, str(n_steps)]
    for o in overrides:
        cmd += ["--set", o]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return [f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}"], {}
    meta, steps, t = read_trace(prefix)
    S = int(meta["stores"])
    total = int(meta["total_steps"])
    given = dict(o.split("=", 1) for o in overrides)
    # --- warmup steps and total, as Hugging Face's TrainingArguments computes them
    want_total = int(given["train.max_steps"])
    ratio = float(given.get("optimizer.warmup_ratio", 0))
    want_warmup = int(given.get("optimizer.warmup_steps", 0)) or math.ceil(want_total * ratio)
    if total != want_total or int(meta["warmup_steps"]) != want_warmup:
        errs.append(f"total/warmup steps {total}/{int(meta['warmup_steps'])}, want {want_total}/{want_warmup}")

    # --- the reference: flat float64 tensors, split by weight decay
    decay = [t[f"decay.{s}"] > 0.5 for s in range(S)]
    params, groups = [], [[], []]  # groups: with decay, without
    for s in range(S):
        for d in (True, False):
            p = torch.nn.Parameter(torch.zeros(int((decay[s] == d).sum()), dtype=torch.float64))
            params.append((s, d, p))
            groups[0 if d else 1].append(p)
    lr0 = meta["lr"]
    b1, b2, eps, wd = f32(meta["beta1"]), f32(meta["beta2"]), f32(meta["eps"]), f32(meta["weight_decay"])
    opt = torch.optim.AdamW([{"params": groups[0], "weight_decay": wd}, {"params": groups[1], "weight_decay": 0.0}],
                            lr=lr0, betas=(b1, b2), eps=eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_lambda(meta["schedule"], want_warmup, want_total))
    # the unclipped replay (negative control for the clipping case): its own moments
    params_nc = [(s, d, torch.nn.Parameter(torch.zeros_like(p))) for s, d, p in params]
    opt_nc = torch.optim.AdamW([{"params": [p for _, d, p in params_nc if d], "weight_decay": wd},
                                {"params": [p for _, d, p in params_nc if not d], "weight_decay": 0.0}],
                               lr=lr0, betas=(b1, b2), eps=eps)
    sched_nc = torch.optim.lr_scheduler.LambdaLR(opt_nc, hf_lambda(meta["schedule"], want_warmup, want_total))
    mabs = [np.zeros(int(p.numel())) for _, _, p in params]  # sum of |terms| of each first moment
    max_norm = meta["max_grad_norm"]
    stats = dict(lr=0.0, gnorm=0.0, param=0.0, clipped=0, nc_gap=0.0)
    before = {s: t[f"init.{s}"] for s in range(S)}
    for st in steps:
        k = st["k"]
        lr_ref = sched.get_last_lr()[0]
        # lr: C computes cfg.lr * lambda in double, by other formulas (1 - progress against
        # (total - step) / span): a few roundings of 2^-53; 1e-13 relative covers them with room.
        if abs(st["lr"] - lr_ref) > 1e-13 * lr0:
            errs.append(f"step {k}: lr {st['lr']!r}, LambdaLR {lr_ref!r}")
        stats["lr"] = max(stats["lr"], abs(st["lr"] - lr_ref) / lr0)
        for i, (s, d, p) in enumerate(params):
            with torch.no_grad():
                p.copy_(torch.from_numpy(before[s][decay[s] == d].astype(np.float64)))
                params_nc[i][2].copy_(p)
            g = torch.from_numpy(t[f"grad.{k}.{s}"][decay[s] == d].astype(np.float64))
            p.grad = g.clone()
            params_nc[i][2].grad = g.clone()
        # clip_grad_norm_ returns the norm before clipping; max_norm 0 means "off" in distill, inf
        # in torch (clip_coef clamps to 1).
        norm = float(torch.nn.utils.clip_grad_norm_([p for _, _, p in params],
                                                    max_norm if max_norm > 0 else float("inf")))
        clipped = max_norm > 0 and norm > max_norm
        stats["clipped"] += clipped
        # grad norm: C sums the squares of the fp32 gradients in float64 (chunks, then the chunk sums):
        # ~n 2^-53 relative for n < 10^6 values, ~1e-10; 1e-9 leaves room. torch's float64 norm of
        # norms is as close to exact.
        if abs(st["gnorm"] - norm) > 1e-9 * norm:
            errs.append(f"step {k}: grad norm {st['gnorm']!r}, clip_grad_norm_ {norm!r}")
        stats["gnorm"] = max(stats["gnorm"], abs(st["gnorm"] - norm) / norm)
        scale = min(1.0, max_norm / (norm + 1e-6)) if max_norm > 0 else 1.0
        opt.step()
        sched.step()
        opt_nc.step()
        sched_nc.step()
        # The bound per parameter. C runs AdamW in fp32 on the same gradients and parameters:
        #  - p * (1 - lr wd): the product and 1 - lr wd round: <= 3u |p| (4u with room);
        #  - the first moment m: each step rounds the clipped gradient g*scale (scale itself is a
        #    float: 2u), (1 - b1) g, b1 m and their sum, so after k steps |m_C - m| <= 4 k u mabs,
        #    with mabs = b1 mabs + (1 - b1)|g scale| the sum of the terms' sizes (m may cancel);
        #    the second moment has no cancellation (terms >= 0): relative <= 4 k u, so
        #    sqrt(v) / sqrt(bc2) + eps moves by <= (2 k u + ...) relative; both through m / denom and
        #    lr / bc1: err(delta) <= lr / bc1 (4 k u mabs + 4 k u |m|) / denom, doubled for room;
        #  - bc1 = 1 - b1^k and bc2 = 1 - b2^k from powf: b^k rounds by <= u absolute, so bc is off
        #    by u / bc relative (large for bc2 = 1 - 0.999^k at small k); sqrt halves it; lr rounded
        #    to float adds u: err(delta) += (u / bc1 + u / (2 bc2) + 2u) |delta|.
        b1k, b2k = b1 ** k, b2 ** k
        bc1, bc2 = 1.0 - b1k, 1.0 - b2k
        for i, (s, d, p) in enumerate(params):
            state = opt.state[p]
            m = state["exp_avg"].numpy()
            v = state["exp_avg_sq"].numpy()
            gs = np.abs(p.grad.numpy()) * scale
            mabs[i] = b1 * mabs[i] + (1 - b1) * gs
            denom = np.sqrt(v) / math.sqrt(bc2) + eps
            delta = lr_ref / bc1 * np.abs(m) / denom
            pb = before[s][decay[s] == d].astype(np.float64)
            tol = (4 * U * np.abs(pb) + 2 * lr_ref / bc1 * 4 * k * U * (mabs[i] + np.abs(m)) / denom
                   + (U / bc1 + U / (2 * bc2) + 2 * U) * delta + 1e-30)
            got = t[f"param.{k}.{s}"][decay[s] == d].astype(np.float64)
            ref = p.detach().numpy()
            diff = np.abs(got - ref)
            bad = np.nonzero(diff > tol)[0]
            if len(bad):
                j = bad[np.argmax((diff / tol)[bad])]
                errs.append(f"step {k} store {s} {'decay' if d else 'no_decay'}: {len(bad)} params off, worst "
                            f"C {got[j]!r} torch {ref[j]!r} (|diff| {diff[j]:.3g} > bound {tol[j]:.3g})")
            stats["param"] = max(stats["param"], float(np.max(diff / tol)) if diff.size else 0.0)
            if clipped:
                nc = params_nc[i][2].detach().numpy()
                stats["nc_gap"] = max(stats["nc_gap"], float(np.max(np.abs(got - nc) / tol)))
        before = {s: t[f"param.{k}.{s}"] for s in range(S)}
    # the case exercises what it is meant to
    if want_warmup and not any(st["k"] - 1 < want_warmup and st["lr"] == 0.0 for st in steps[:1]):
        errs.append("warmup: the first step's lr is not 0")
    if max_norm > 0 and max_norm < 1 and stats["clipped"] != len(steps):
        errs.append(f"clipping was active in {stats['clipped']} of {len(steps)} steps, want all")
    if max_norm >= 1 and stats["clipped"]:
        errs.append("clipping bit where max_grad_norm should be idle")
    if stats["clipped"] and stats["nc_gap"] < 10:
        errs.append(f"an unclipped replay would pass too (worst gap {stats['nc_gap']:.3g} bounds): the case "
                    "cannot see clipping")
    return errs, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True)
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides, n in CASES:
            errs, stats = run_case(a.tool, name, overrides, n, tmp)
            extra = ""
            if stats:
                extra = (f"max rel lr diff {stats['lr']:.2g}, grad norm {stats['gnorm']:.2g}, params at "
                         f"{stats['param']:.2g} of their bound; clipped in {stats['clipped']} steps" +
                         (f", an unclipped replay off by {stats['nc_gap']:.3g} bounds" if stats["clipped"] else ""))
            print(f"{'FAIL' if errs else 'ok  '} {name}: {n} steps; {extra}")
            for e in errs:
                print("     " + e)
            failures += bool(errs)
    print("PASS" if not failures else f"FAIL: {failures} case(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
