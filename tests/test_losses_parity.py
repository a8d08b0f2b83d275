#!/usr/bin/env python3
"""Loss parity: every term of losses/ against a float64 PyTorch reference.

Usage: test_losses_parity.py PATH/TO/test_losses_parity [cuda]   (the C dumper, tests/test_losses_parity.c)

The C program builds each case's LossSet, fabricates student/teacher outputs as random leaf tensors,
runs forward + backward in fp32 on the CPU and writes inputs, projections, term values, the total and
the gradients. This script re-derives everything independently from the specs *as given*: the
uniform layer map, defaults, temperature schedules and projection names are resolved here again, and
each term is written from the reference code's semantics:

  logits_kd      DistilBERT: nn.KLDivLoss(reduction="batchmean")(log_softmax(s/T), softmax(t/T)) * T**2
  logits_ce      TinyBERT's soft_cross_entropy(s/T, t/T), whose .mean() runs over batch AND classes;
                 DESIGN §4 defines the sum over classes, so the reference multiplies it by C
  hard_ce        F.cross_entropy;  mse: HF's MSELoss(logits[:, 0], labels)
  hidden_mse     TinyBERT: MSELoss(fit_dense(student_rep), teacher_rep), summed over pairs
  attention_mse  TinyBERT: torch.where(att <= -1e2, 0, att) on both sides, then MSELoss
  attention_kl   MiniLM: KL(teacher row || student row), mean over the B*heads*S rows
  hidden_cos     DistilBERT: masked_select of the valid tokens, CosineEmbeddingLoss(target=1)

Exit 0 when every value and gradient agrees, 1 otherwise, 77 (CTest skip) when torch is missing
(1 then under CI=true: tests/ci_skip.py) or, for `cuda`, when there is no GPU.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    from ci_skip import missing_reference
    missing_reference(f"the PyTorch reference cannot be imported: {e}")

torch.set_default_dtype(torch.float64)

# Tolerances. The C side computes in fp32 (unit roundoff u = 6e-8) from the very same fp32 inputs
# (printed with 9 significant digits, so they are exact in float64). The longest reduction in these
# cases is an attention MSE over 3*2*7*7 = 294 elements; a naive fp32 sum of n terms has a worst-case
# relative error of n*u = 1.8e-5 and a typical one of sqrt(n)*u = 1e-6. Hence:
VALUE_RTOL = 2e-5       # term values and the total: the n*u worst case above
GRAD_RTOL = 1e-5        # gradients: a few fp32 operations per element (softmax, a log, a division)
GRAD_ATOL_REL = 1e-6    # plus cancellation (p - t in softmax gradients) absolute to the largest
                        # entry of the same tensor: ~16 u of that scale
# On CUDA the projections' GEMMs run in TF32 (cuBLAS tensor-op math; engine/cuda/cuda_backend.cu):
# each operand is rounded to 10 mantissa bits (relative 2^-11 = 4.9e-4), so a projected entry and
# everything downstream of it carries up to ~1e-3 relative error. Bounds of 2e-3 cover two such
# roundings; they are still far below any change of definition (a missing T^2, a wrong layer).
TF32_TOL = 2e-3

TYPES_LOGITS = ("logits_kd", "logits_ce")
TYPES_HIDDEN = ("hidden_mse", "embedding_mse", "hidden_cos")
TYPES_ATTENTION = ("attention_mse", "attention_kl")


def parse(path):
    cases, cur = [], None
    with open(path) as f:
        lines = iter(f.read().splitlines())
        for line in lines:
            w = line.split()
            if not w:
                continue
            if w[0] == "case":
                cur = {"name": w[1], "specs": [], "t": {}}
                cases.append(cur)
            elif w[0] == "shapes":
                keys = ("M", "N", "Hs", "Ht", "heads", "C", "B", "S", "step")
                cur.update(dict(zip(keys, map(int, w[1:]))))
            elif w[0] == "spec":
                n_pairs = int(w[7])
                rest = w[8 + 2 * n_pairs:]
                cur["specs"].append({
                    "type": w[1], "weight": float(w[2]), "temperature": float(w[3]),
                    "temperature_end": float(w[4]), "temperature_steps": int(w[5]), "map": w[6],
                    "pairs": [(int(w[8 + 2 * i]), int(w[9 + 2 * i])) for i in range(n_pairs)],
                    "target": rest[0], "projection": rest[1],
                    "name": w[1] if rest[2] == "-" else rest[2]})
            elif w[0] == "tensor":
                name, dtype, ndim = w[1], w[2], int(w[3])
                shape = tuple(int(x) for x in w[4:4 + ndim])
                vals = next(lines).split()
                arr = np.array([int(v) for v in vals] if dtype == "i32" else [float(v) for v in vals])
                cur["t"][name] = arr.reshape(shape)
            elif w[0] == "end":
                cur = None
            else:
                raise ValueError(f"unexpected line: {line[:80]}")
    return cases


def temperature(sp, step):
    t0 = sp["temperature"] if sp["temperature"] != 0 else 1.0
    n = sp["temperature_steps"]
    if n == 0:
        return t0
    frac = min(max(step, 0), n) / n
    return t0 + (sp["temperature_end"] - t0) * frac


def pairs_of(sp, M, N):
    """Resolved pairs; attention pairs are 1-based encoder layers (array index = layer - 1)."""
    if sp["map"] == "explicit":
        return sp["pairs"]
    if sp["map"] == "embeddings":
        return [(0, 0)]
    if sp["map"] == "last":
        return [(M, N)]
    assert sp["map"] == "uniform", sp["map"]
    return [(m, (m * N) // M) for m in range(1, M + 1)]


def projection_names(sp, n_pairs, Hs, Ht):
    mode = sp["projection"]
    if mode == "shared":
        return [("projections.shared.weight", "projections.shared.bias")] * n_pairs
    if mode == "per_pair" or (mode == "auto" and Hs != Ht):
        return [(f"projections.{sp['name']}.{p}.weight", f"projections.{sp['name']}.{p}.bias")
                for p in range(n_pairs)]
    return [None] * n_pairs


def reference(case):
    t = case["t"]
    M, N, C, step = case["M"], case["N"], case["C"], case["step"]
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in t.items()
              if k.startswith("s.") or k.startswith("param.")}
    teacher = {k: torch.tensor(v) for k, v in t.items() if k.startswith("t.")}
    lengths = torch.tensor(t["lengths"])
    labels = t.get("labels")
    expected_params = set()
    terms = []
    for sp in case["specs"]:
        ty = sp["type"]
        if ty in TYPES_LOGITS:
            T = temperature(sp, step)
            s, te = leaves["s.logits"], teacher["t.logits"]
            if ty == "logits_kd":
                v = torch.nn.KLDivLoss(reduction="batchmean")(
                    F.log_softmax(s / T, dim=-1), F.softmax(te / T, dim=-1)) * T ** 2
            else:
                student_likelihood = F.log_softmax(s / T, dim=-1)
                targets_prob = F.softmax(te / T, dim=-1)
                v = (-targets_prob * student_likelihood).mean() * C
        elif ty == "hard_ce":
            v = F.cross_entropy(leaves["s.logits"], torch.tensor(labels, dtype=torch.long))
        elif ty == "mse":
            v = F.mse_loss(leaves["s.logits"][:, 0], torch.tensor(labels))
        elif ty in TYPES_HIDDEN:
            pairs = pairs_of(sp, M, N)
            projs = projection_names(sp, len(pairs), case["Hs"], case["Ht"])
            v = 0
            for (a, b), pr in zip(pairs, projs):
                hs, ht = leaves[f"s.hidden.{a}"], teacher[f"t.hidden.{b}"]
                if ty == "hidden_cos":
                    mask = torch.arange(case["S"])[None, :] < lengths[:, None]      # (B, S)
                    hs = torch.masked_select(hs, mask[..., None]).view(-1, hs.shape[-1])
                    ht = torch.masked_select(ht, mask[..., None]).view(-1, ht.shape[-1])
                if pr is not None:
                    expected_params.update(pr)
                    hs = F.linear(hs, leaves["param." + pr[0]], leaves["param." + pr[1]])
                if ty == "hidden_cos":
                    target = hs.new_ones(hs.shape[0])
                    v = v + torch.nn.CosineEmbeddingLoss(reduction="mean")(hs, ht, target)
                else:
                    v = v + F.mse_loss(hs, ht)
        elif ty in TYPES_ATTENTION:
            target = sp["target"] if sp["target"] != "default" else (
                "scores" if ty == "attention_mse" else "probs")
            v = 0
            for a, b in pairs_of(sp, M, N):
                s = leaves[f"s.{target}.{a - 1}"]
                te = teacher[f"t.{target}.{b - 1}"]
                if ty == "attention_kl":
                    rows = s.numel() // s.shape[-1]
                    # KL(t || s) per row; log(0) where t == 0 contributes nothing (clamped as the
                    # kernel clamps s below at 1e-30).
                    v = v + F.kl_div(torch.log(s.clamp_min(1e-30)), te, reduction="sum") / rows
                elif target == "scores":
                    s = torch.where(s <= -1e2, torch.zeros_like(s), s)
                    te = torch.where(te <= -1e2, torch.zeros_like(te), te)
                    v = v + F.mse_loss(s, te)
                else:
                    v = v + F.mse_loss(s, te)
        else:
            raise ValueError(f"unknown loss type {ty}")
        terms.append(sp["weight"] * v)
    total = sum(terms)
    total.backward()
    got_params = {k[len("param."):] for k in t if k.startswith("param.")}
    return terms, total, leaves, expected_params, got_params


def compare(label, got, ref, rtol, atol_rel):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return [f"{label}: shape {got.shape} != reference {ref.shape}"]
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    err = np.abs(got - ref)
    bound = atol_rel * scale + rtol * np.abs(ref)
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        return [f"{label}: {int(bad.sum())} of {ref.size} entries off; worst at {tuple(map(int, i))}: "
                f"got {got[i]:.9g}, reference {ref[i]:.9g} (bound {bound[i]:.3g})"]
    return []


def check(case, tol):
    value_rtol, grad_rtol, grad_atol_rel = tol
    try:
        terms, total, leaves, expected_params, got_params = reference(case)
    except KeyError as e:
        return [f"the reference needs {e}, which the C side did not write (a layer map or "
                f"request that differs from the reference's)"]
    t = case["t"]
    errs = []
    if expected_params != got_params:
        errs.append(f"projections: expected {sorted(expected_params)}, found {sorted(got_params)}")
    for i, v in enumerate(terms):
        errs += compare(f"term {i} ({case['specs'][i]['name']})", t[f"out.term.{i}"],
                        [v.item()], value_rtol, 0.0)
    errs += compare("total", t["out.total"], [total.item()], value_rtol, 0.0)
    for name, leaf in leaves.items():
        ref = leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape)
        got = t.get("grad." + name)
        if got is None:
            if np.abs(ref).max() > 0:
                errs.append(f"grad.{name}: missing on the C side, reference is non-zero")
            continue
        errs += compare("grad." + name, got, ref, grad_rtol, grad_atol_rel)
    return errs


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] != "cuda"):
        print(__doc__)
        return 2
    cuda = len(sys.argv) == 3
    tol = (TF32_TOL, TF32_TOL, TF32_TOL) if cuda else (VALUE_RTOL, GRAD_RTOL, GRAD_ATOL_REL)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "losses.txt")
        r = subprocess.run([sys.argv[1], out] + sys.argv[2:])
        if r.returncode == 77:
            return 77
        if r.returncode != 0:
            print(f"FAIL: {sys.argv[1]} exited with {r.returncode}")
            return 1
        cases = parse(out)
    failures = 0
    for case in cases:
        errs = check(case, tol)
        n_grads = sum(1 for k in case["t"] if k.startswith("grad."))
        print(f"{'FAIL' if errs else 'ok  '} {case['name']}: {len(case['specs'])} terms, "
              f"{n_grads} gradients")
        for e in errs:
            print("     " + e)
        failures += bool(errs)
    if len(cases) == 0:
        print("FAIL: no cases were written")
        return 1
    print(f"{len(cases) - failures}/{len(cases)} cases agree with PyTorch (float64)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
