#!/usr/bin/env python3
"""bench_vs_torch.py — one distillation step: distill against PyTorch 2 (PyPI) and 1.13 (Debian),
alternated in one run, with the GEMM peaks of the same machine; prints a markdown table.

Run it through scripts/bench_vs_torch.sh, which builds distill and tests/bench_gemm and makes the
PyPI PyTorch virtual environment; this file runs bench_gemm before the first and after the last
measurement (the table takes each shape's better rate of the two, and gives the load of both),
alternates the contenders and writes the table.

The step is scripts/bench_step.py's (one definition, used by both sides' commands): teacher forward
without gradients, student forward + backward, logits_kd (T = 2) + hidden_mse through projections +
attention_mse on the probabilities + embedding_mse, clipping, AdamW; random weights and ids. The
contenders, each in a FRESH process per measurement (so each peak RSS is that measurement's alone):

  distill fp32            distill bench --json
  distill bf16            the same with --set precision=bf16 (n/a with distill's reason where the
                          build or the CPU refuses it)
  PyTorch PyPI fp32       bench_step.py --torch-only under the PyPI venv's Python
  PyTorch PyPI bf16       the same under torch.autocast("cpu", bfloat16)
  PyTorch Debian fp32     bench_step.py --torch-only under Debian's python3 (python3-torch)

Per shape row, the contenders run in turn, round after round (A B C D E A B C D E ...), so slow
drifts of the machine (other jobs, thermal) spread over all of them; each measurement is the median
step after one warm-up, and the table gives the median of those over the rounds, their min-max,
the ratio to distill's time, GFLOP/s (teacher forward + 3x student forward, bench_step.forward_flops,
the same count for every contender) and its share of the GEMM peak at that row's M = batch*seq
(the faster of OpenBLAS SGEMM and oneDNN f32 for fp32, oneDNN bf16 for bf16), peak RSS, and the 1-minute load average read just before
each measurement (median over the rounds): a figure taken under load > ~0.5 on this 2-core box is
not a clean one.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_step import distill_bench_cmd, forward_flops, shape  # noqa: E402

SMOKE_TEACHER, SMOKE_STUDENT, SMOKE_ROWS = "4,64,4,128", "2,32,4,64", "2x16"


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_info():
    model, flags = platform.processor() or "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == "model name":
                    model = v.strip()
                elif k.strip() == "flags":
                    flags = set(v.split())
    except OSError:
        pass
    isa = [x for x in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if x in flags]
    return model, os.cpu_count(), isa


def torch_version(python):
    """(version, path) of the torch that `python` imports, or (None, reason)."""
    if not python:
        return None, "no Python given"
    try:
        r = subprocess.run([python, "-c", "import torch, os; print(torch.__version__, os.path.dirname(torch.__file__))"],
                           capture_output=True, text=True)
    except OSError as e:
        return None, "cannot run %s: %s" % (python, e.strerror)
    if r.returncode != 0:
        return None, "import torch failed under %s: %s" % (python, (r.stderr.strip().splitlines() or ["?"])[-1])
    v, p = r.stdout.split()
    return v, p


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def measure(cmd, timeout):
    """Run one measurement process; (result dict, None) or (None, reason)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % timeout
    if r.returncode != 0:
        reason = last_line(r.stderr) or "exit status %d" % r.returncode
        return None, reason.replace("distill: error: ", "").replace("|", "/")[:160]
    try:
        return json.loads(last_line(r.stdout)), None
    except ValueError:
        return None, "no JSON in the output: %r" % last_line(r.stdout)[:80]


def gemm_peak(gemm, m, keys):
    """Best GFLOP/s over `keys` (sgemm_gflops, dnnl_f32_gflops | bf16_gflops) at M = m, else over
    every shape."""
    if not gemm:
        return None
    rates = [s[k] for s in gemm.get("shapes", []) for k in keys if s.get(k) and s["m"] == m]
    if not rates:
        rates = [s[k] for s in gemm.get("shapes", []) for k in keys if s.get(k)]
    return max(rates) if rates else None


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distill", required=True)
    ap.add_argument("--bench-gemm", help="tests/bench_gemm (omit: no peaks)")
    ap.add_argument("--pypi-python", default="", help="the PyPI venv's python ('' = not available)")
    ap.add_argument("--pypi-reason", default="no PyPI venv", help="why it is not available")
    ap.add_argument("--debian-python", default="/usr/bin/python3")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", default="8x128,32x128,8x32", help="BATCHxSEQ,... (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternations per row (default %(default)s)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement (default %(default)s)")
    ap.add_argument("--teacher", default="12,768,12,3072", help="L,H,A,I (default BERT-base)")
    ap.add_argument("--student", default="4,312,12,1200", help="L,H,A,I (default TinyBERT-4)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per measurement process")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny models (%s -> %s), row %s, 1 round, 2 steps" % (SMOKE_TEACHER, SMOKE_STUDENT, SMOKE_ROWS))
    ap.add_argument("--json-out", help="also write every measurement here")
    a = ap.parse_args()
    if a.smoke:
        a.teacher, a.student, a.rows, a.rounds, a.steps = SMOKE_TEACHER, SMOKE_STUDENT, SMOKE_ROWS, 1, 2
    rows = [tuple(int(x) for x in r.split("x")) for r in a.rows.split(",")]
    gemm_args = ["--smoke"] if a.smoke else ["--tokens", ",".join(str(m) for m in sorted({B * S for B, S in rows}))]

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               PYTHONWARNINGS="ignore")
    os.environ.update(env)
    step_py = os.path.join(HERE, "bench_step.py")
    pypi_v, pypi_p = torch_version(a.pypi_python) if a.pypi_python else (None, a.pypi_reason)
    deb_v, deb_p = torch_version(a.debian_python)
    if deb_v and not deb_p.startswith("/usr/lib/python3/dist-packages"):
        deb_p += " (not Debian's python3-torch?)"

    def torch_cmd(python, precision, B, S):
        return [python, step_py, "--torch-only", "--precision", precision, "--teacher", a.teacher,
                "--student", a.student, "--batch", str(B), "--seq", str(S), "--threads", str(a.threads),
                "--steps", str(a.steps), "--attention-target", "probs"]

    def torch_label(v, what):
        return ("PyTorch %s %s" % (v, what)) if v else "PyTorch %s" % what

    # (label, precision, command builder or None, reason when None)
    contenders = [
        ("distill fp32", "fp32",
         lambda B, S: distill_bench_cmd(a.distill, a.teacher, a.student, B, S, a.threads, a.steps, "probs"), None),
        ("distill bf16", "bf16",
         lambda B, S: distill_bench_cmd(a.distill, a.teacher, a.student, B, S, a.threads, a.steps, "probs",
                                        precision="bf16"), None),
        (torch_label(pypi_v, "fp32 (PyPI)"), "fp32",
         (lambda B, S: torch_cmd(a.pypi_python, "fp32", B, S)) if pypi_v else None, pypi_p),
        (torch_label(pypi_v, "bf16 autocast (PyPI)"), "bf16",
         (lambda B, S: torch_cmd(a.pypi_python, "bf16", B, S)) if pypi_v else None, pypi_p),
        (torch_label(deb_v, "fp32 (Debian)"), "fp32",
         (lambda B, S: torch_cmd(a.debian_python, "fp32", B, S)) if deb_v else None, deb_p),
    ]

    def run_gemm():
        if not a.bench_gemm:
            return None, None
        load = loadavg()
        r = subprocess.run([a.bench_gemm] + gemm_args, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit("bench_vs_torch.py: bench_gemm failed: %s" % last_line(r.stderr))
        print("bench_vs_torch: GEMM rates measured, load %.2f" % load, file=sys.stderr, flush=True)
        return json.loads(last_line(r.stdout)), load

    results = {}  # (row, label) -> {"runs": [...], "loads": [...], "reason": str|None}
    t_start = time.time()
    gemm, gemm_load0 = run_gemm()
    for B, S in rows:
        for label, _, build, reason in contenders:
            results[(B, S), label] = {"runs": [], "loads": [], "reason": None if build else reason}
        for rnd in range(a.rounds):
            for label, _, build, _ in contenders:
                res = results[(B, S), label]
                if res["reason"]:
                    continue
                load = loadavg()
                out, why = measure(build(B, S), a.timeout)
                if out is None:
                    res["reason"] = why
                    continue
                res["runs"].append(out)
                res["loads"].append(load)
                print("bench_vs_torch: %dx%d round %d/%d %-36s %9.1f ms  load %.2f" %
                      (B, S, rnd + 1, a.rounds, label, out["step_ms"]["median"], load), file=sys.stderr, flush=True)
    gemm_end, gemm_load1 = run_gemm()
    if gemm:  # each shape's better rate of the two runs
        for s0, s1 in zip(gemm["shapes"], gemm_end["shapes"]):
            for k in ("sgemm_gflops", "dnnl_f32_gflops", "bf16_gflops"):
                if s0.get(k) is not None:
                    s0[k] = max(s0[k], s1[k])
    wall = time.time() - t_start

    model, ncpu, isa = cpu_info()
    tc, sc = shape(a.teacher), shape(a.student)
    print("### distill vs PyTorch: one distillation step\n")
    print("teacher %s (L,H,A,I) forward without gradients -> student %s forward + backward; logits_kd (T=2) "
          "+ hidden_mse (projections) + attention_mse (probabilities) + embedding_mse; clipping; AdamW; "
          "random weights and ids, every row full length.\n" % (a.teacher, a.student))
    print("- CPU: %s, %d logical CPUs, %s; %d threads on every side" %
          (model, ncpu, ", ".join(isa) or "no AVX-512", a.threads))
    if gemm:
        print("- GEMMs (tests/bench_gemm, before and after the steps, the better of the two; load %.2f and %.2f): "
              "OpenBLAS core %s; oneDNN %s dispatching to %s (%s); plain layouts, C = A W^T" %
              (gemm_load0, gemm_load1, gemm.get("openblas_core"), gemm.get("dnnl_version"), gemm.get("dnnl_isa"),
               gemm.get("dnnl_impl")))
        for s in gemm.get("shapes", []):
            print("  - M=%d N=%d K=%d: OpenBLAS SGEMM %s GFLOP/s, oneDNN f32 %s GFLOP/s, oneDNN bf16 %s GFLOP/s" %
                  (s["m"], s["n"], s["k"], fmt(s.get("sgemm_gflops"), ".1f"), fmt(s.get("dnnl_f32_gflops"), ".1f"),
                   fmt(s.get("bf16_gflops"), ".1f")))
    print("- PyTorch PyPI: %s; PyTorch Debian: %s" %
          ("%s (%s)" % (pypi_v, pypi_p) if pypi_v else "n/a (%s)" % pypi_p,
           "%s (%s)" % (deb_v, deb_p) if deb_v else "n/a (%s)" % deb_p))
    print("- %d round(s) per row, alternating; each measurement a fresh process, median of %d steps after 1 "
          "warm-up; %.0f s in all\n" % (a.rounds, a.steps, wall))
    print("| batch×seq | contender | step ms (median) | min–max | ÷ distill fp32 | ÷ distill bf16 | GFLOP/s "
          "| % of GEMM peak | peak RSS MB | load 1-min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for B, S in rows:
        flops = forward_flops(tc, B, S) + 3 * forward_flops(sc, B, S)
        med = {}
        for label, prec, _, _ in contenders:
            runs = results[(B, S), label]["runs"]
            med[label] = statistics.median(r["step_ms"]["median"] for r in runs) if runs else None
        ref32, ref16 = med["distill fp32"], med["distill bf16"]
        for label, prec, _, _ in contenders:
            res = results[(B, S), label]
            ms = med[label]
            if ms is None:
                print("| %d×%d | %s | n/a (%s) | | | | | | | |" % (B, S, label, res["reason"]))
                continue
            per = [r["step_ms"]["median"] for r in res["runs"]]
            peak = gemm_peak(gemm, B * S, ("bf16_gflops",) if prec == "bf16" else ("sgemm_gflops", "dnnl_f32_gflops"))
            gfs = flops / ms / 1e6
            note = " (%d of %d rounds; then: %s)" % (len(per), a.rounds, res["reason"]) if res["reason"] else ""
            print("| %d×%d | %s | %.1f%s | %.1f–%.1f | %s | %s | %.1f | %s | %.0f | %.2f |" %
                  (B, S, label, ms, note, min(per), max(per), fmt(ms / ref32 if ref32 else None, ".2f"),
                   fmt(ms / ref16 if ref16 else None, ".2f"), gfs,
                   fmt(100.0 * gfs / peak if peak else None, ".0f") + ("%" if peak else ""),
                   max(r["peak_rss_mb"] for r in res["runs"]), statistics.median(res["loads"])))
    print("\n÷ distill: this contender's time over distill's (> 1: distill is faster). GFLOP/s: teacher forward "
          "+ 3× student forward (GEMMs and attention matmuls), %.1f GFLOP per step at the first row. "
          "%% of GEMM peak: against the best fp32 rate of OpenBLAS SGEMM and oneDNN f32 (fp32), or oneDNN bf16 "
          "(bf16), at M = batch×seq." %
          ((forward_flops(tc, *rows[0]) + 3 * forward_flops(sc, *rows[0])) / 1e9))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"gemm": gemm, "threads": a.threads, "cpu": model,
                       "rows": [{"batch": B, "seq": S, "contender": label, **results[(B, S), label]}
                                for B, S in rows for label, _, _, _ in contenders]}, f, indent=1)


if __name__ == "__main__":
    main()
