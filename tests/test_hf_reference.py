#!/usr/bin/env python3
"""test_hf_reference.py — distill's BERT against Hugging Face's own BertModel (transformers), not
only against the project's PyTorch BERT (scripts/torch_bert.py, tests/bert_parity.py).

For each small config below, transformers builds a BertForSequenceClassification (eager attention,
exact GELU) whose every parameter is redrawn at random (weights N(0, r), biases and LayerNorm
shifts N(0, 0.1), LayerNorm gains 1 + N(0, 0.1): HF's own init has zero biases and unit gains,
which would leave those paths untested), and save_pretrained writes it (config.json +
model.safetensors). `test_hf_tool grad` loads that folder with distill's hf_load, runs the recorded
forward on a padded batch (rows of different lengths, token types) and an MSE loss against random
targets on every hidden state, every attention probability map, the pooler output and the logits,
then the backward. The same model, cast to float64, does the same in transformers, and every
output and every parameter's gradient is compared, normwise per tensor (a Linear bias's gradient
relative to the sum of |dy| it adds up), with the bounds of tests/bert_parity.py (derived there: fp32 reductions of random-sign terms through the forward's
and backward's chains of stages).

The reference venv is scripts/torch_venv.sh's (.cache/torch-venv: PyPI torch + transformers).
When it is missing: on a developer's machine the test is skipped (77) with the command that makes
it; under CI=true the test makes it (pip from PyPI, a few minutes the first time) and runs.

Usage: test_hf_reference.py --tool build/tests/test_hf_tool [--venv-script scripts/torch_venv.sh]
Exit 0 all agree; 1 a difference, a failed run or (under CI) a venv that cannot be made; 77 skip.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ci_skip import missing_reference, under_ci  # noqa: E402

U32 = 2.0 ** -24

# Odd sizes on purpose; num_labels 3 (classification) and 1 (a regression head); a LayerNorm eps
# other than the default (read from config.json); init ranges from a near-uniform attention (0.05)
# to a peaked one (0.3).
CONFIGS = [
    dict(L=2, H=32, heads=4, I=37, V=61, P=20, T=2, C=3, r=0.05, eps=1e-12, B=4, S=9, seed=21),
    dict(L=3, H=48, heads=3, I=64, V=97, P=16, T=3, C=1, r=0.3, eps=1e-5, B=3, S=16, seed=22),
]


def tolerances(cfg):
    """tests/bert_parity.py's bounds (normwise relative, fp32 against float64; the derivation is
    there): sqrt(stages * longest reduction) * u, x4 for the tail and the nonlinearities' gains;
    the backward walks the stages twice and its weight gradients sum over all B*S tokens."""
    H, I, S, B, L = cfg["H"], cfg["I"], cfg["S"], cfg["B"], cfg["L"]
    stages_fwd = 8 * L + 3
    fwd = 4.0 * math.sqrt(stages_fwd * max(H, I, S)) * U32
    bwd = 4.0 * math.sqrt(2 * stages_fwd * max(H, I, S, B * S)) * U32
    return fwd, bwd


def outer(args):
    """Find (or, under CI, make) the reference venv, then run this script inside it."""
    script = args.venv_script
    chk = subprocess.run(["bash", script, "--check"], capture_output=True, text=True)
    if chk.returncode != 0:
        if not under_ci():
            missing_reference(f"the reference venv with transformers is not there ({chk.stderr.strip()})")
        print(f"test_hf_reference: CI: making the reference venv with {script} (pip from PyPI)", flush=True)
        mk = subprocess.run(["bash", script], capture_output=True, text=True)
        sys.stderr.write(mk.stderr)
        if mk.returncode != 0:
            print(f"FAIL: {script} could not make the reference venv (exit {mk.returncode})")
            return 1
        chk = mk
    py = chk.stdout.strip().splitlines()[-1]
    cmd = [py, os.path.abspath(__file__), "--inner", "--tool", args.tool, "--venv-script", script]
    return subprocess.run(cmd).returncode


def inner(args):
    import numpy as np
    import torch
    import transformers
    from safetensors.numpy import load_file, save_file
    from transformers import BertConfig, BertForSequenceClassification

    transformers.utils.logging.disable_progress_bar()
    print(f"reference: torch {torch.__version__}, transformers {transformers.__version__}")
    failures = []
    worst = {}

    def compare(cat, name, c, t, tol, scale_floor=0.0):
        c = np.asarray(c, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if c.shape != t.shape:
            failures.append(f"{name}: shape {c.shape}, transformers {t.shape}")
            return
        if not np.all(np.isfinite(c)):
            failures.append(f"{name}: non-finite values in distill's result")
            return
        scale = max(float(np.max(np.abs(t))) if t.size else 0.0, scale_floor)
        err = float(np.max(np.abs(c - t))) if t.size else 0.0
        if scale == 0.0:
            if err != 0.0:
                failures.append(f"{name}: transformers gives 0, distill max |value| {err:.3g}")
            return
        rel = err / scale
        if rel / tol > worst.get(cat, (-1.0, "", 0.0))[0]:
            worst[cat] = (rel / tol, name, rel)
        if rel > tol:
            failures.append(f"{name}: relative error {rel:.3g} > bound {tol:.3g}")

    with tempfile.TemporaryDirectory() as tmp:
        for ci, cfg in enumerate(CONFIGS):
            fwd_tol, bwd_tol = tolerances(cfg)
            d = os.path.join(tmp, f"model{ci}")
            torch.manual_seed(cfg["seed"])
            hc = BertConfig(vocab_size=cfg["V"], hidden_size=cfg["H"], num_hidden_layers=cfg["L"],
                            num_attention_heads=cfg["heads"], intermediate_size=cfg["I"],
                            max_position_embeddings=cfg["P"], type_vocab_size=cfg["T"], num_labels=cfg["C"],
                            layer_norm_eps=cfg["eps"], hidden_act="gelu", initializer_range=cfg["r"],
                            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
            hc._attn_implementation = "eager"  # the attention probabilities are returned
            model = BertForSequenceClassification(hc).eval()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "LayerNorm.weight" in n:
                        p.copy_(1.0 + 0.1 * torch.randn_like(p))
                    elif n.endswith(".bias") or "LayerNorm" in n:
                        p.copy_(0.1 * torch.randn_like(p))
                    else:
                        p.copy_(cfg["r"] * torch.randn_like(p))
            model.save_pretrained(d)  # config.json + model.safetensors
            with open(os.path.join(d, "vocab.txt"), "w") as f:
                f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                  [f"tok{i}" for i in range(5, cfg["V"])]) + "\n")
            with open(os.path.join(d, "config.json")) as f:
                arch = json.load(f).get("architectures")

            # the batch: lengths S, 1, and in between; ids in [1, V) (0 = padding), token types
            rng = np.random.default_rng(cfg["seed"])
            B, S, L = cfg["B"], cfg["S"], cfg["L"]
            lengths = np.array([S, 1] + list(rng.integers(2, S, size=B - 2)), dtype=np.int64)
            ids = np.zeros((B, S), dtype=np.int64)
            types = np.zeros((B, S), dtype=np.int64)
            for b in range(B):
                ids[b, :lengths[b]] = rng.integers(1, cfg["V"], size=lengths[b])
                types[b, lengths[b] // 2:lengths[b]] = rng.integers(0, cfg["T"])
            inp = os.path.join(tmp, f"input{ci}.txt")
            with open(inp, "w") as f:
                f.write(f"{B} {S}\n")
                f.write("\n".join(" ".join(map(str, r)) for r in ids) + "\n")
                f.write("\n".join(" ".join(map(str, r)) for r in types) + "\n")
                f.write(" ".join(map(str, lengths)) + "\n")
            # targets
            H, heads, C = cfg["H"], cfg["heads"], cfg["C"]
            targets = {f"hidden.{l}": rng.standard_normal((B, S, H)) for l in range(L + 1)}
            targets.update({f"probs.{l}": rng.random((B, heads, S, S)) / S for l in range(L)})
            targets["pooled"] = rng.standard_normal((B, H))
            targets["logits"] = rng.standard_normal((B, C))
            targets = {k: v.astype(np.float32) for k, v in targets.items()}
            tgt = os.path.join(tmp, f"targets{ci}.safetensors")
            save_file(targets, tgt)

            out = os.path.join(tmp, f"distill{ci}.safetensors")
            r = subprocess.run([args.tool, "grad", d, inp, tgt, out], capture_output=True, text=True)
            if r.returncode != 0:
                failures.append(f"config {ci}: test_hf_tool grad exited {r.returncode}: {r.stderr.strip()}")
                continue
            got = load_file(out)

            # transformers in float64 (the fp32 weights, exactly)
            ref = model.double()
            pooled, linear_out = {}, {}

            def keep_linear(name):
                def hook(m, i, o):
                    o.retain_grad()
                    linear_out[name + ".bias"] = o
                return hook

            hooks = [ref.bert.pooler.register_forward_hook(lambda m, i, o: pooled.__setitem__("v", o))]
            hooks += [m.register_forward_hook(keep_linear(n)) for n, m in ref.named_modules()
                      if isinstance(m, torch.nn.Linear)]
            mask = torch.from_numpy((np.arange(S)[None, :] < lengths[:, None]).astype(np.int64))
            o = ref(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types), attention_mask=mask,
                    output_hidden_states=True, output_attentions=True)
            for h in hooks:
                h.remove()
            outs = {f"hidden.{l}": o.hidden_states[l] for l in range(L + 1)}
            outs.update({f"probs.{l}": o.attentions[l] for l in range(L)})
            outs["pooled"] = pooled["v"]
            outs["logits"] = o.logits
            loss = sum(torch.nn.functional.mse_loss(v, torch.from_numpy(targets[k]).double())
                       for k, v in outs.items())
            loss.backward()
            # A Linear bias gradient sums dy over the B*S rows; its rounding error is relative to
            # sum |dy|, not to the sum, which can cancel: the key bias gradient is exactly 0 in
            # exact arithmetic (softmax ignores a shift common to all keys), so its reference is
            # rounding noise and only the bound relative to sum |dy| means something (as in
            # tests/bert_parity.py).
            bias_scale = {n: float(y.grad.abs().reshape(-1, y.shape[-1]).sum(0).max())
                          for n, y in linear_out.items() if y.grad is not None}
            tag = f"config {ci} (L={L} H={H} heads={heads} C={C} r={cfg['r']} eps={cfg['eps']})"
            for k, v in outs.items():
                compare("forward", f"{tag} {k}", got[k], v.detach().numpy(), fwd_tol)
            compare("forward", f"{tag} loss", got["loss"], loss.detach().numpy().reshape(1), fwd_tol)
            n_grads = 0
            for n, p in ref.named_parameters():
                key = "grad." + n
                if key not in got and n.startswith("bert."):
                    key = "grad." + n[len("bert."):]
                if key not in got:
                    failures.append(f"{tag}: no gradient for {n} from distill")
                    continue
                compare("gradient", f"{tag} grad {n}", got[key], p.grad.numpy(), bwd_tol,
                        scale_floor=bias_scale.get(n, 0.0))
                n_grads += 1
            extra = set(k for k in got if k.startswith("grad.")) - {"grad." + n for n, _ in ref.named_parameters()} \
                - {"grad." + n[5:] for n, _ in ref.named_parameters() if n.startswith("bert.")}
            if extra:
                failures.append(f"{tag}: distill has parameters transformers lacks: {sorted(extra)}")
            print(f"{tag}: architectures {arch}; {len(outs) + 1} outputs, {n_grads} gradients compared "
                  f"(bounds {fwd_tol:.2g} forward, {bwd_tol:.2g} gradients)")
    for cat, (ratio, name, rel) in sorted(worst.items()):
        print(f"worst {cat}: {name}: relative error {rel:.3g} ({ratio:.2f} of its bound)")
    for f in failures:
        print("FAIL " + f)
    print("PASS" if not failures else f"FAIL: {len(failures)} difference(s)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--venv-script", default=os.path.join(HERE, "..", "scripts", "torch_venv.sh"))
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    return inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    sys.exit(main())
