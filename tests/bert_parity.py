#!/usr/bin/env python3
"""bert_parity.py — BERT forward and backward of the C engine against PyTorch in float64.

For each tiny config below it runs the C half (tests/test_bert_parity.c), which initialises a
model with bert_init, builds a random padded batch, runs two recorded forward+backward passes
(A: unfused scale_mask + softmax in every layer; B: fused scale_mask_softmax in all layers but 0)
and writes everything to HDF5. This script loads the same parameters and inputs into
scripts/torch_bert.py (the project's own HF-semantics BERT) in float64, computes the same loss,
and compares: logits, pooled output, every hidden state, attention scores and probabilities (at
valid key positions; masked keys must be exactly float32-min / 0), the loss, and the gradient of
every parameter. Any difference beyond its bound, or any failure of the C half's own checks,
makes it exit 1 with the list of what differed.

Usage: bert_parity.py --exe build/tests/test_bert_parity [--workdir DIR]
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_bert import F32_MIN, TorchBert  # noqa: E402

# Configs: layers/hidden/heads/intermediate vary; odd sizes on purpose (37 is prime, head dim 8,
# 16, 12, 8); init ranges from HF's 0.02 (near-uniform attention) to 0.3 (peaked attention, large
# pre-LN activations); num_labels 3, 1 (regression head), 2 and 0 (no classifier).
CONFIGS = [
    dict(L=2, H=32, heads=4, I=37, V=61, P=20, T=2, C=3, init=0.02, B=4, S=9, seed=11),
    dict(L=3, H=48, heads=3, I=64, V=97, P=16, T=3, C=1, init=0.1, B=3, S=16, seed=12),
    dict(L=1, H=24, heads=2, I=50, V=50, P=12, T=2, C=2, init=0.3, B=5, S=7, seed=13),
    dict(L=2, H=16, heads=2, I=20, V=30, P=8, T=2, C=0, init=0.05, B=2, S=5, seed=14),
]

# fp32 unit roundoff: every fp32 operation is exact up to a relative 2^-24.
U32 = 2.0 ** -24


def tolerances(cfg):
    """Normwise relative bounds, max|c - t| / max|t| per tensor, for fp32 against float64.

    Each fp32 operation rounds with relative error at most u = 2^-24. A length-K dot product in
    fp32 carries at most K*u in the worst case, and about sqrt(K)*u in practice: the roundings
    are of random sign and add in quadrature (Higham & Mary 2019 make that a bound that holds with
    high probability). The same holds across the chain of rounding stages a value passes through:
    LayerNorm renormalises after every sublayer, so stage errors add instead of multiplying, and
    n stages of reductions of length <= K give about sqrt(n*K)*u. A forward passes 8 stages per
    encoder layer (q/k/v, q k^T, softmax, p v, attention out, residual + LayerNorm, FFN in + GELU,
    FFN out + residual + LayerNorm), plus 1 for the embeddings and 2 for pooler and classifier.
    The backward walks the chain a second time (twice the stages), and weight gradients also sum
    over all B*S tokens, so K grows to max(H, I, S, B*S). The factor 4 covers the tail of the
    random-sign sum and the gain of the softmax, GELU and LayerNorm derivatives (each <= ~2).
    For these configs the bounds are 5e-6 to 1e-5 forward and 8e-6 to 1.4e-5 for gradients
    (a LayerNorm eps of 1e-5 instead of 1e-12, say, already shows as ~5e-6).
    """
    H, I, S, B, L = cfg["H"], cfg["I"], cfg["S"], cfg["B"], cfg["L"]
    stages_fwd = 8 * L + 3
    fwd = 4.0 * math.sqrt(stages_fwd * max(H, I, S)) * U32
    bwd = 4.0 * math.sqrt(2 * stages_fwd * max(H, I, S, B * S)) * U32
    return fwd, bwd


class Report:
    def __init__(self):
        self.failures = []
        self.worst = {}  # category -> (ratio err/tol, name)

    def compare(self, category, name, c, t, tol, scale_floor=0.0):
        """Normwise relative error of c against t (both float64 arrays): max|c - t| / scale with
        scale = max(max|t|, scale_floor). Where the scale is 0, c must be exactly 0 (rows no
        token touches, the padding row's gradient, gradients of unused heads)."""
        c = np.asarray(c, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if c.shape != t.shape:
            self.failures.append(f"{name}: shape {c.shape} != reference {t.shape}")
            return
        if not np.all(np.isfinite(c)):
            self.failures.append(f"{name}: non-finite values in the C result")
            return
        scale = max(float(np.max(np.abs(t))) if t.size else 0.0, scale_floor)
        err = float(np.max(np.abs(c - t))) if t.size else 0.0
        if scale == 0.0:
            if err != 0.0:
                self.failures.append(f"{name}: reference is 0, C has max |value| {err:.3g}")
            return
        rel = err / scale
        ratio = rel / tol
        if ratio > self.worst.get(category, (-1.0, ""))[0]:
            self.worst[category] = (ratio, name)
        if rel > tol:
            self.failures.append(f"{name}: relative error {rel:.3g} > bound {tol:.3g}")

    def exact(self, name, ok, what):
        if not ok:
            self.failures.append(f"{name}: {what}")


def torch_reference(f, cfg):
    """Float64 TorchBert forward + backward of the same loss on the C half's parameters/inputs."""
    config = {
        "vocab_size": cfg["V"], "hidden_size": cfg["H"], "num_hidden_layers": cfg["L"],
        "num_attention_heads": cfg["heads"], "intermediate_size": cfg["I"],
        "max_position_embeddings": cfg["P"], "type_vocab_size": cfg["T"],
        "num_labels": cfg["C"], "layer_norm_eps": float(f.attrs["layer_norm_eps"]),
        "initializer_range": cfg["init"], "pad_token_id": int(f.attrs["pad_token_id"]),
    }
    model = TorchBert(config).double().eval()
    state = {name: torch.from_numpy(f["params"][name][()]) for name in f["params"]}
    info = model.load_hf_state_dict(state)
    if info["missing"] or info["unexpected"]:
        raise SystemExit(f"bert_parity: parameter names differ from HF's: {info}")

    ids = torch.from_numpy(f["inputs/input_ids"][()]).long()
    types = torch.from_numpy(f["inputs/token_type_ids"][()]).long()
    lengths = torch.from_numpy(f["inputs/lengths"][()]).long()
    B, S = ids.shape
    mask = (torch.arange(S)[None, :] < lengths[:, None]).long()               # (B, S)
    # Keep the gradient of every Linear output, dy (rows, out): a bias gradient is the sum of dy
    # over the B*S rows, so its rounding error is relative to the sum of |dy| (see compare_bias).
    linear_out = {}

    def keep(name):
        def hook(_mod, _inp, y):
            y.retain_grad()
            linear_out[name] = y
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            prefix = name if name.startswith("classifier") else "bert." + name
            mod.register_forward_hook(keep(prefix + ".bias"))
    out = model(ids, mask, types)

    tg = f["targets"]
    L = cfg["L"]
    mse = lambda a, b: ((a - b) ** 2).mean()  # noqa: E731
    loss = sum(mse(out["hidden_states"][l], torch.from_numpy(tg[f"hidden_{l}"][()]).double())
               for l in range(L + 1))
    loss = loss + sum(mse(out["probs"][l], torch.from_numpy(tg[f"probs_{l}"][()]).double())
                      for l in range(L))
    if out["logits"] is not None:
        loss = loss + mse(out["logits"], torch.from_numpy(tg["logits"][()]).double())
    loss.backward()
    grads = {}
    for name, p in model.hf_named_parameters():
        grads[name] = (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
    bias_scale = {}
    for name, y in linear_out.items():
        if y.grad is not None:
            bias_scale[name] = float(y.grad.abs().reshape(-1, y.shape[-1]).sum(0).max())
    return out, loss.item(), grads, bias_scale, mask.numpy().astype(bool)


def check_config(exe, workdir, cfg, report):
    path = os.path.join(workdir, f"bert_parity_{cfg['seed']}.h5")
    args = [exe, path] + [str(cfg[k]) for k in
                          ("L", "H", "heads", "I", "V", "P", "T", "C", "init", "B", "S", "seed")]
    proc = subprocess.run(args, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    tag = f"[L={cfg['L']} H={cfg['H']} heads={cfg['heads']} I={cfg['I']}]"
    if proc.returncode != 0:
        report.failures.append(f"{tag} the C half failed (exit {proc.returncode}), see above")
        return
    tol_fwd, tol_bwd = tolerances(cfg)
    with h5py.File(path, "r") as f:
        out, loss, grads, bias_scale, valid = torch_reference(f, cfg)
        L = cfg["L"]
        key_valid = valid[:, None, None, :]                                   # (B, 1, 1, S)
        for run in ("A", "B"):
            g = f[run]
            pre = f"{tag} run {run}"
            report.compare("loss", f"{pre} loss", g["loss"][()], np.array([loss]), tol_fwd)
            if out["logits"] is not None:
                report.compare("logits", f"{pre} logits", g["logits"][()],
                               out["logits"].detach().numpy(), tol_fwd)
            else:
                report.exact(f"{pre} logits", "logits" not in g, "C returned logits without a classifier")
            if "pooled" in g:
                report.compare("pooled", f"{pre} pooled", g["pooled"][()],
                               out["pooled"].detach().numpy(), tol_fwd)
            for l in range(L + 1):
                report.compare("hidden", f"{pre} hidden_{l}", g[f"hidden_{l}"][()],
                               out["hidden_states"][l].detach().numpy(), tol_fwd)
            for l in range(L):
                ref_p = out["probs"][l].detach().numpy()
                c_p = g[f"probs_{l}"][()]
                vmask = np.broadcast_to(key_valid, ref_p.shape)
                report.compare("probs", f"{pre} probs_{l}", c_p[vmask], ref_p[vmask], tol_fwd)
                report.exact(f"{pre} probs_{l}", np.all(c_p[~vmask] == 0.0),
                             "probabilities on padded keys are not exactly 0")
                name = f"scores_{l}"
                if run == "A" or l == 0:
                    report.exact(f"{pre} {name}", name in g, "requested scores missing")
                if name in g:
                    ref_s = out["scores"][l].detach().numpy()
                    c_s = g[name][()]
                    report.compare("scores", f"{pre} {name}", c_s[vmask], ref_s[vmask], tol_fwd)
                    report.exact(f"{pre} {name}", np.all(c_s[~vmask] == np.float32(F32_MIN)),
                                 "scores on padded keys are not exactly float32 min")
            gg = g["grads"]
            report.exact(f"{pre} grads", set(gg.keys()) == set(grads.keys()),
                         f"gradient names differ: {sorted(set(gg.keys()) ^ set(grads.keys()))}")
            for name, ref in grads.items():
                if name in gg:
                    # A Linear bias gradient sums dy over the B*S rows; its error is relative to
                    # sum |dy|, not to the sum itself, which can cancel: the key bias gradient is
                    # exactly 0 in exact arithmetic (softmax ignores a shift common to all keys),
                    # so its reference is rounding noise and only the absolute bound is meaningful.
                    report.compare("grad", f"{pre} grad {name}", gg[name][()], ref, tol_bwd,
                                   scale_floor=bias_scale.get(name, 0.0))
    print(f"bert_parity: {tag} compared (bounds: forward {tol_fwd:.2g}, gradients {tol_bwd:.2g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True, help="the test_bert_parity binary")
    ap.add_argument("--workdir", help="where to write the HDF5 files (default: a temporary dir)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = a.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        for cfg in CONFIGS:
            check_config(a.exe, workdir, cfg, report)
    for cat, (ratio, name) in sorted(report.worst.items()):
        print(f"bert_parity: worst {cat:7s} error/bound = {ratio:.3f} ({name})")
    if report.failures:
        print(f"bert_parity: FAILED, {len(report.failures)} difference(s):", file=sys.stderr)
        for line in report.failures:
            print("  " + line, file=sys.stderr)
        return 1
    print("bert_parity: all outputs and gradients match PyTorch float64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
