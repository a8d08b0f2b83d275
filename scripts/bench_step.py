#!/usr/bin/env python3
"""bench_step.py — one distillation training step, distill against PyTorch, same work, same run.

The step is configs/tiny.yaml's: a teacher forward (no grad) and a student forward + backward with
logits_kd (T = 2, T^2 * KL batchmean), hidden_mse (a Linear projection per uniformly mapped pair),
attention_mse on scores (entries <= -1e2 zeroed on both sides; --attention-target probs compares
the probabilities instead) and embedding_mse (a projection), then global-norm clipping and AdamW.
The reductions are losses/losses.h's: each MSE term is a mean over all elements of its pair, summed
over pairs. Both sides use random weights of the same shapes and random token ids, every row `seq`
tokens long, the same thread count. distill is timed by `distill bench --json` (median step after
one warm-up); PyTorch (eager, scripts/torch_bert.py) by the same protocol here. Prints both and the
ratio (> 1: distill faster), and the achieved GFLOP/s of each (teacher forward + 3x student
forward, GEMMs and attention).

--torch-only runs the PyTorch side alone and prints one JSON object (step times, median, peak RSS
of this process, torch version): scripts/bench_vs_torch.py runs it in a fresh process per
measurement, under whichever Python holds the PyTorch to time. --precision bf16 runs both
forwards (and so the student's backward) under torch.autocast("cpu", dtype=torch.bfloat16); the
losses, clipping and AdamW stay in float32.

Usage: bench_step.py --distill build/train/distill [--batch 32] [--seq 64] [--threads 2] [--steps 5]
                     [--teacher 6,384,12,1536] [--student 4,312,12,1200] [--attention-target scores]
       bench_step.py --torch-only [--precision fp32|bf16] [same shape options]
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def shape(s):
    L, H, A, I = (int(x) for x in s.split(","))
    return {"num_hidden_layers": L, "hidden_size": H, "num_attention_heads": A, "intermediate_size": I,
            "vocab_size": 30522, "num_labels": 2}


def forward_flops(c, B, S):
    T, H, I = B * S, c["hidden_size"], c["intermediate_size"]
    per_layer = 2.0 * T * (4 * H * H + 2 * H * I) + 4.0 * B * S * S * H
    return c["num_hidden_layers"] * per_layer + 2.0 * B * H * H + 2.0 * B * H * c["num_labels"]


def distill_bench_cmd(distill, teacher, student, batch, seq, threads, steps, attention_target="scores",
                      precision=None, device="cpu"):
    """`distill bench --json` on configs/tiny.yaml with these shapes (teacher, student: "L,H,A,I"),
    the attention_mse target given, `precision` set when not None, on `device` (cpu or cuda)."""
    L, H, A, I = teacher.split(",")
    sL, sH, sA, sI = student.split(",")
    cmd = [distill, "bench", "--config", os.path.join(HERE, "..", "configs", "tiny.yaml"),
           "--set", f"teacher={{init: random, layers: {L}, hidden: {H}, heads: {A}, intermediate: {I}}}",
           "--set", f"student.layers={sL}", "--set", f"student.hidden={sH}", "--set", f"student.heads={sA}",
           "--set", f"student.intermediate={sI}", "--set", f"data.batch_size={batch}",
           "--set", f"losses[2].target={attention_target}",
           "--set", f"threads={threads}", "--set", f"device={device}",
           "--steps", str(steps), "--seq", str(seq), "--json"]
    if precision is not None:
        cmd += ["--set", f"precision={precision}"]
    return cmd


def torch_step_times(tc, sc, B, S, threads, steps, attention_target="scores", precision="fp32", device="cpu"):
    """Median-ready list of `steps` step times (s) after one warm-up, and the first step's loss.
    device "cuda": models and data on the GPU, autocast("cuda"), each step timed to the end of its
    GPU work (torch.cuda.synchronize)."""
    import torch
    import torch.nn.functional as F
    from torch_bert import TorchBert
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    teacher, student = TorchBert(tc).eval().to(device), TorchBert(sc).train().to(device)
    Lt, Ls = tc["num_hidden_layers"], sc["num_hidden_layers"]
    pairs = [(m, m * Lt // Ls) for m in range(1, Ls + 1)]  # uniform map, hidden-state indices
    Ht, Hs = tc["hidden_size"], sc["hidden_size"]
    projs = torch.nn.ModuleList([torch.nn.Linear(Hs, Ht) for _ in range(len(pairs) + 1)]).to(device)
    params = list(student.parameters()) + list(projs.parameters())
    decay = [p for n, p in list(student.named_parameters()) + list(projs.named_parameters())
             if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in list(student.named_parameters()) + list(projs.named_parameters())
                if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-5)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30522, (B, S), generator=g).to(device)
    mask = torch.ones(B, S, dtype=torch.long, device=device)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    T = 2.0
    if precision == "bf16":
        autocast = lambda: torch.autocast(device, dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    times, first_loss = [], None
    for s in range(steps + 1):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad(), autocast():
            to = teacher(ids, mask)
        with autocast():
            so = student(ids, mask)
            # the projections are Linear layers: their GEMMs run in bf16 too
            ph = [projs[i](so["hidden_states"][m]) for i, (m, _) in enumerate(pairs)]
            pe = projs[-1](so["hidden_states"][0])
        f32 = lambda x: x.float()  # noqa: E731  (a no-op in fp32): losses in float32
        loss = F.kl_div(F.log_softmax(f32(so["logits"]) / T, -1), F.softmax(f32(to["logits"]) / T, -1),
                        reduction="batchmean") * T * T
        for i, (m, n) in enumerate(pairs):
            loss = loss + F.mse_loss(f32(ph[i]), f32(to["hidden_states"][n]))
            if attention_target == "probs":
                loss = loss + F.mse_loss(f32(so["probs"][m - 1]), f32(to["probs"][n - 1]))
            else:
                a_s, a_t = f32(so["scores"][m - 1]), f32(to["scores"][n - 1])
                a_s = torch.where(a_s <= -1e2, torch.zeros_like(a_s), a_s)
                a_t = torch.where(a_t <= -1e2, torch.zeros_like(a_t), a_t)
                loss = loss + F.mse_loss(a_s, a_t)
        loss = loss + F.mse_loss(f32(pe), f32(to["hidden_states"][0]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        dt = time.perf_counter() - t0
        if s > 0:
            times.append(dt)
        else:
            first_loss = float(loss.detach())
    return times, first_loss


def torch_only(a):
    """The PyTorch side alone, as one JSON line (see the module docstring)."""
    import torch
    times, first_loss = torch_step_times(shape(a.teacher), shape(a.student), a.batch, a.seq, a.threads, a.steps,
                                         a.attention_target, a.precision)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    ms = sorted(1e3 * t for t in times)
    print(json.dumps({"torch": torch.__version__, "torch_path": os.path.dirname(torch.__file__),
                      "precision": a.precision, "threads": torch.get_num_threads(), "batch": a.batch,
                      "seq": a.seq, "steps": a.steps,
                      "step_ms": {"median": statistics.median(ms), "min": ms[0], "max": ms[-1]},
                      "peak_rss_mb": peak_kb / 1024.0, "first_loss": first_loss}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distill", help="the distill binary (not with --torch-only)")
    ap.add_argument("--torch-only", action="store_true", help="time the PyTorch side alone, print JSON")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="PyTorch: float32, or bf16 autocast (--torch-only)")
    ap.add_argument("--attention-target", choices=("scores", "probs"), default="scores",
                    help="what attention_mse compares (tiny.yaml: scores)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--teacher", default="6,384,12,1536")
    ap.add_argument("--student", default="4,312,12,1200")
    a = ap.parse_args()
    if a.torch_only:
        return torch_only(a)
    if not a.distill:
        ap.error("--distill is required (or --torch-only)")
    tc, sc = shape(a.teacher), shape(a.student)
    cmd = distill_bench_cmd(a.distill, a.teacher, a.student, a.batch, a.seq, a.threads, a.steps,
                            a.attention_target)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_step.py: distill bench failed: {r.stderr.strip()}")
    d = json.loads(r.stdout)
    t_times, _ = torch_step_times(tc, sc, a.batch, a.seq, a.threads, a.steps, a.attention_target, a.precision)
    flops = forward_flops(tc, a.batch, a.seq) + 3 * forward_flops(sc, a.batch, a.seq)
    d_ms, t_ms = d["step_ms"]["median"], 1e3 * statistics.median(t_times)
    print(f"distillation step, teacher {a.teacher} -> student {a.student}, batch {a.batch} x seq {a.seq}, "
          f"{a.threads} threads, median of {a.steps} steps after 1 warm-up")
    print(f"  distill   {d_ms:9.1f} ms  {flops / d_ms / 1e6:6.1f} GFLOP/s  (teacher {d['teacher_ms']:.1f} ms)")
    print(f"  PyTorch   {t_ms:9.1f} ms  {flops / t_ms / 1e6:6.1f} GFLOP/s  (torch {__import__('torch').__version__})")
    print(f"  ratio     {t_ms / d_ms:9.2f}x  (PyTorch time / distill time; > 1 means distill is faster)")


if __name__ == "__main__":
    main()
