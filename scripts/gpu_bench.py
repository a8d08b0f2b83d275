#!/usr/bin/env python3
"""gpu_bench.py — the bf16 distillation step on one GPU: distill against PyTorch bf16 autocast on the
same device, with the device's measured bf16 GEMM rate and each side's model FLOP utilisation.
scripts/gpu_check.sh runs it; it writes one JSON file and prints a summary.

The step is scripts/bench_step.py's (one definition for both sides): BERT-base teacher forward
without gradients, TinyBERT-4 student forward + backward, logits_kd (T = 2) + hidden_mse through
projections + attention_mse on the probabilities + embedding_mse, clipping, AdamW; random weights and
ids, every row full length. distill: `distill bench --json` with precision bf16 on the device.
PyTorch: bench_step.torch_step_times under torch.autocast(device, bfloat16).

Measured, in this order (each a median after warm-up):
  gemm     torch.matmul of bf16 matrices (cuBLAS/cuBLASLt, fp32 accumulation) at the step's shapes
           (M = batch*seq against the teacher's and student's N, K) and one large square; the best
           rate is the device's bf16 GEMM rate ("peak" below).
  distill  the step's median time; PyTorch likewise.
Derived: TFLOP/s = (teacher forward + 3x student forward FLOPs, bench_step.forward_flops) / step
time; MFU = that / peak; speedup = PyTorch time / distill time. The issue's goals (speedup >= 1.5,
distill MFU >= 0.40) are reported as met or not; they do not change the exit status, which is 0 when
every measurement ran and 1 when one failed.

  gpu_bench.py --distill BUILD/train/distill --out FILE.json [--device cuda|cpu] [--batch 32]
               [--seq 128] [--steps 10] [--teacher 12,768,12,3072] [--student 4,312,12,1200]
               [--timeout S] [--smoke]
--device cpu --smoke (tiny models and shapes) rehearses every code path on a machine without a GPU
(gpu_check.sh --dry-run); its figures mean nothing.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_step import distill_bench_cmd, forward_flops, shape, torch_step_times  # noqa: E402

GOAL_SPEEDUP, GOAL_MFU = 1.5, 0.40


def gemm_rate(device, shapes, iters):
    """[{m, n, k, tflops}] of bf16 matmuls C (m x n) = A (m x k) B (k x n) on device."""
    import torch
    out = []
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    for m, n, k in shapes:
        a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=device, dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        times = []
        for _ in range(iters):
            sync()
            t0 = time.perf_counter()
            a @ b
            sync()
            times.append(time.perf_counter() - t0)
        out.append({"m": m, "n": n, "k": k, "tflops": 2.0 * m * n * k / statistics.median(times) / 1e12})
        del a, b
    if device != "cpu":
        torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distill", required=True)
    ap.add_argument("--out", required=True, help="the JSON file to write")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--teacher", default="12,768,12,3072", help="L,H,A,I (default BERT-base)")
    ap.add_argument("--student", default="4,312,12,1200", help="L,H,A,I (default TinyBERT-4)")
    ap.add_argument("--timeout", type=int, default=240, help="seconds for the whole run")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes (a rehearsal; figures mean nothing)")
    a = ap.parse_args()
    if a.smoke:
        a.teacher, a.student, a.batch, a.seq, a.steps = "2,64,4,128", "2,32,4,64", 2, 16, 2
    t_end = time.time() + a.timeout
    res = {"device": a.device, "batch": a.batch, "seq": a.seq, "steps": a.steps, "teacher": a.teacher,
           "student": a.student, "smoke": a.smoke, "goals": {"speedup": GOAL_SPEEDUP, "mfu": GOAL_MFU}}
    failed = []
    tc, sc = shape(a.teacher), shape(a.student)
    flops = forward_flops(tc, a.batch, a.seq) + 3 * forward_flops(sc, a.batch, a.seq)
    res["gflop_per_step"] = flops / 1e9

    def say(msg):
        print("gpu_bench: " + msg, flush=True)

    try:
        import torch
        res["torch"] = torch.__version__
        if a.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False")
            res["device_name"] = torch.cuda.get_device_name(0)
    except Exception as e:  # noqa: BLE001 (any import or driver failure: reported, distill still runs)
        torch = None
        res["torch_error"] = "%s: %s" % (type(e).__name__, e)
        say("PyTorch unavailable (%s): no GEMM rate, no PyTorch step" % res["torch_error"])
        failed.append("torch")

    # 1. the bf16 GEMM rate
    if torch is not None:
        M = a.batch * a.seq
        Ht, It, Hs, Is = tc["hidden_size"], tc["intermediate_size"], sc["hidden_size"], sc["intermediate_size"]
        big = 512 if a.smoke else 8192
        shapes = [(M, Ht, Ht), (M, It, Ht), (M, Ht, It), (M, Is, Hs), (big, big, big)]
        res["gemm"] = gemm_rate(a.device, shapes, 3 if a.smoke else 20)
        res["peak_tflops"] = max(s["tflops"] for s in res["gemm"])
        for s in res["gemm"]:
            say("bf16 GEMM %5d x %5d x %5d: %8.1f TFLOP/s" % (s["m"], s["n"], s["k"], s["tflops"]))

    # 2. distill, bf16 on the device
    cmd = distill_bench_cmd(a.distill, a.teacher, a.student, a.batch, a.seq, os.cpu_count(), a.steps, "probs",
                            precision="bf16", device=a.device)
    env = dict(os.environ, DISTILL_ALLOW_UNTESTED_GPU_BF16="1")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=max(10, t_end - time.time()))
        if r.returncode != 0:
            raise RuntimeError((r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1])
        res["distill"] = json.loads(r.stdout.strip().splitlines()[-1])
        say("distill bf16 step: %.2f ms (%s)" % (res["distill"]["step_ms"]["median"], res["distill"].get("gemm")))
    except Exception as e:  # noqa: BLE001
        res["distill_error"] = "%s: %s" % (type(e).__name__, e)
        say("distill bench failed: " + res["distill_error"])
        failed.append("distill")

    # 3. PyTorch bf16 autocast, same step, same device
    if torch is not None:
        try:
            times, first_loss = torch_step_times(tc, sc, a.batch, a.seq, os.cpu_count(), a.steps, "probs", "bf16",
                                                 device=a.device)
            ms = sorted(1e3 * t for t in times)
            res["torch_step"] = {"step_ms": {"median": statistics.median(ms), "min": ms[0], "max": ms[-1]},
                                 "first_loss": first_loss}
            say("PyTorch %s bf16 autocast step: %.2f ms" % (torch.__version__, res["torch_step"]["step_ms"]["median"]))
        except Exception as e:  # noqa: BLE001
            res["torch_step_error"] = "%s: %s" % (type(e).__name__, e)
            say("PyTorch step failed: " + res["torch_step_error"])
            failed.append("torch_step")

    # 4. derived figures and the goals
    d_ms = res.get("distill", {}).get("step_ms", {}).get("median")
    t_ms = res.get("torch_step", {}).get("step_ms", {}).get("median")
    peak = res.get("peak_tflops")
    if d_ms:
        res["distill_tflops"] = flops / d_ms / 1e9
    if t_ms:
        res["torch_tflops"] = flops / t_ms / 1e9
    if d_ms and peak:
        res["distill_mfu"] = res["distill_tflops"] / peak
    if t_ms and peak:
        res["torch_mfu"] = res["torch_tflops"] / peak
    if d_ms and t_ms:
        res["speedup_vs_torch"] = t_ms / d_ms
    res["goal_speedup_met"] = res.get("speedup_vs_torch", 0) >= GOAL_SPEEDUP if "speedup_vs_torch" in res else None
    res["goal_mfu_met"] = res.get("distill_mfu", 0) >= GOAL_MFU if "distill_mfu" in res else None
    res["failed"] = failed
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)

    def fmt(x, spec):
        return "n/a" if x is None else format(x, spec)

    say("step %.1f GFLOP (teacher forward + 3x student forward); bf16 GEMM peak %s TFLOP/s" %
        (flops / 1e9, fmt(peak, ".1f")))
    say("distill %s ms = %s TFLOP/s = MFU %s | PyTorch %s ms = %s TFLOP/s = MFU %s | speedup %s" %
        (fmt(d_ms, ".2f"), fmt(res.get("distill_tflops"), ".1f"), fmt(res.get("distill_mfu"), ".1%"),
         fmt(t_ms, ".2f"), fmt(res.get("torch_tflops"), ".1f"), fmt(res.get("torch_mfu"), ".1%"),
         fmt(res.get("speedup_vs_torch"), ".2f")))
    say("goals: speedup >= %.1f: %s; distill MFU >= %.0f%%: %s%s" %
        (GOAL_SPEEDUP, res["goal_speedup_met"], 100 * GOAL_MFU, res["goal_mfu_met"],
         " (smoke rehearsal: figures mean nothing)" if a.smoke else ""))
    say("wrote " + a.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
