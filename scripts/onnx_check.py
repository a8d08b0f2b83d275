#!/usr/bin/env python3
"""onnx_check.py — verify a distill ONNX export with ONNX Runtime, and the helpers the ONNX tests,
scripts/quantize.py and scripts/deploy_report.py share.

As a command:

    onnx_check.py MODEL.onnx [--source SRC --tool build/tests/test_onnx_tool] [--data FILE]
                  [--optimize OUT.onnx] [--rows N]

  1. onnx.checker.check_model(full_check=True) (strict shape inference included);
  2. the graph's interface: inputs input_ids / attention_mask / token_type_ids int64 with symbolic
     [batch, sequence], output logits (or last_hidden_state / pooler_output for a BertModel),
     metadata config / precision / producer;
  3. with --source and --tool: ONNX Runtime's outputs against the engine's own forward
     (test_onnx_tool run) on the same rows, max |difference|;
  4. with --optimize: onnxruntime.transformers.optimizer.optimize_model(model_type="bert") and
     the fused operator counts, and the optimised graph's outputs against the plain one's.
  Prints what it found, one line per check; exits 1 when a check fails.

Rows come from --data (a labelled TSV, tokenised with the model's vocabulary by the `tokenizers`
package as BertTokenizer does, or an HDF5 file written by `distill prepare`), else random ids.

Library (import onnx_check): load_rows, random_rows, batch, length_batches, write_tool_input, engine_run,
ort_session, ort_run, engine_args, optimize, fused_counts, model_meta, find_minilm, finetune.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # torch_bert.py

from real_weights import MINILM_PACKAGE, find_minilm  # noqa: E402,F401  (re-exported for tests)
FUSED_OPS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention", "SkipLayerNormalization",
             "LayerNormalization", "Gelu", "BiasGelu", "FastGelu")


# ------------------------------------------------------------------ rows

def _tsv_rows(path, vocab, max_seq, lower=True, limit=None):
    """A TSV with a header: a text column (sentence, text or sentence1), an optional second
    segment (sentence2) and a label column; tokenised as BertTokenizer does. limit: first rows."""
    from tokenizers import BertWordPieceTokenizer
    tok = BertWordPieceTokenizer(vocab, lowercase=lower)
    tok.enable_truncation(max_length=max_seq)
    texts, pairs, labels = [], [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = next((header.index(c) for c in ("sentence", "text", "sentence1") if c in header), None)
        if col is None:
            raise SystemExit(f"{path}:1: expected a header with a sentence/text/sentence1 column, "
                             f"found {header}")
        pair = header.index("sentence2") if "sentence2" in header else None
        lab = header.index("label") if "label" in header else None
        for ln, line in enumerate(f, 2):
            if limit and len(texts) >= limit:
                break
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(header):
                raise SystemExit(f"{path}:{ln}: expected {len(header)} columns, found {len(parts)}")
            texts.append(parts[col])
            pairs.append(parts[pair] if pair is not None else None)
            labels.append(int(parts[lab]) if lab is not None else -1)
    encs = [tok.encode(t, p) if p is not None else tok.encode(t) for t, p in zip(texts, pairs)]
    S = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), S), np.int64)
    types = np.zeros((len(encs), S), np.int64)
    lengths = np.zeros(len(encs), np.int64)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n] = e.ids
        types[i, :n] = e.type_ids
        lengths[i] = n
    return {"ids": ids, "types": types, "lengths": lengths, "labels": np.array(labels, np.int64)}


def _h5_rows(path):
    import h5py
    with h5py.File(path, "r") as f:
        lengths = f["lengths"][:].astype(np.int64)
        S = int(lengths.max())
        ids = f["input_ids"][:, :S].astype(np.int64)
        types = f["token_type_ids"][:, :S].astype(np.int64)
        labels = f["labels"][:].astype(np.int64) if "labels" in f else -np.ones(len(lengths), np.int64)
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
        types[i, n:] = 0
    return {"ids": ids, "types": types, "lengths": lengths, "labels": labels}


def load_rows(path, vocab=None, max_seq=128, limit=None, lower=True):
    """Rows of a labelled file: dict ids (N, S) int64, types (N, S), lengths (N), labels (N; -1
    when unlabelled). HDF5 (.h5/.hdf5) as `distill prepare` writes it, or TSV tokenised with
    `vocab`. limit keeps the first rows."""
    if path.endswith((".h5", ".hdf5")):
        rows = _h5_rows(path)
    else:
        if not vocab:
            raise SystemExit(f"{path}: a TSV needs the model's vocabulary (vocab.txt) to tokenise")
        rows = _tsv_rows(path, vocab, max_seq, lower, limit)
    if limit:
        rows = {k: v[:limit] for k, v in rows.items()}
        S = int(rows["lengths"].max())
        rows["ids"], rows["types"] = rows["ids"][:, :S], rows["types"][:, :S]
    return rows


def random_rows(n, seq, vocab_size, seed=0, full_first=True):
    """n random rows padded to seq, lengths in [1, seq] (row 0 full when full_first), [CLS]-like
    id 1 first, token types 0 then 1 after the middle of each row."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, seq + 1, n)
    if full_first:
        lengths[0] = seq
    ids = rng.integers(1, vocab_size, (n, seq))
    types = np.zeros((n, seq), np.int64)
    for i, L in enumerate(lengths):
        ids[i, L:] = 0
        types[i, L // 2:L] = 1
    return {"ids": ids.astype(np.int64), "types": types, "lengths": lengths.astype(np.int64),
            "labels": -np.ones(n, np.int64)}


def batch(rows, idx):
    """Rows idx, cut to their longest length (dynamic padding)."""
    L = rows["lengths"][idx]
    S = int(L.max())
    return {k: (v[idx][:, :S] if v.ndim == 2 else v[idx]) for k, v in rows.items()}


def length_batches(lengths, size):
    """Row indices in batches of `size`, rows sorted by length (little padding per batch)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


def attention_mask(lengths, S):
    return (np.arange(S)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


# ------------------------------------------------------------------ the engine (C)

def write_tool_input(path, ids, types, lengths):
    B, S = ids.shape
    with open(path, "w") as f:
        f.write(f"{B} {S}\n")
        for arr in (ids, types):
            f.write(" ".join(map(str, np.asarray(arr).ravel().tolist())) + "\n")
        f.write(" ".join(map(str, np.asarray(lengths).tolist())) + "\n")


def engine_run(tool, src, ids, types, lengths, args=(), workdir=None):
    """test_onnx_tool run: the engine's outputs as a dict of arrays, and its JSON line (or None)."""
    from safetensors.numpy import load_file
    tmp = tempfile.mkdtemp(dir=workdir)
    try:
        inp, out = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.safetensors")
        write_tool_input(inp, ids, types, lengths)
        r = subprocess.run([tool, "run", src, inp, out, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} run {src}: exit {r.returncode}: {r.stderr.strip()}")
        info = json.loads(r.stdout) if r.stdout.strip().startswith("{") else None
        return load_file(out), info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def engine_export(tool, src, out, args=()):
    r = subprocess.run([tool, "export", src, out, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{tool} export {src} {out}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


# ------------------------------------------------------------------ ONNX Runtime

def ort_session(path, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_run(sess, ids, types, lengths):
    """All outputs by name."""
    S = ids.shape[1]
    feeds = {"input_ids": np.asarray(ids, np.int64),
             "attention_mask": attention_mask(lengths, S),
             "token_type_ids": np.asarray(types, np.int64)}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


# ------------------------------------------------------------------ graph facts

def model_meta(path_or_model):
    """metadata_props as a dict, with "config" parsed from JSON."""
    import onnx
    m = onnx.load(str(path_or_model), load_external_data=False) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model
    meta = {p.key: p.value for p in m.metadata_props}
    if "config" in meta:
        meta["config"] = json.loads(meta["config"])
    return meta


def engine_args(meta):
    """test_onnx_tool options that load the source as the export saw it (a BertModel has no
    classifier: --num-labels 0; the layer count from the config)."""
    cfg = meta.get("config", {})
    return ["--num-labels", str(cfg.get("num_labels", 0)),
            "--num-layers", str(cfg.get("num_hidden_layers", 0))]


def optimize(path, out, num_heads, hidden_size, opt_level=0):
    """ONNX Runtime's transformer optimizer (model_type bert); returns the fused counts. opt_level
    0 applies only the fusions (the saved graph runs on any execution provider); 1 adds ORT's basic
    graph optimisations for the CPU first."""
    import logging
    from onnxruntime.transformers import optimizer
    # The optimizer warns that the producer is not "pytorch": the graph is ours, built in the
    # shape torch.onnx gives Hugging Face's BERT, which is what the check stands for.
    logging.getLogger("onnxruntime.transformers.optimizer").setLevel(logging.ERROR)
    m = optimizer.optimize_model(str(path), model_type="bert", num_heads=num_heads,
                                 hidden_size=hidden_size, opt_level=opt_level)
    m.save_model_to_file(str(out))
    return fused_counts(m.model)


def fused_counts(model):
    from collections import Counter
    c = Counter(n.op_type for n in model.graph.node)
    return {op: c.get(op, 0) for op in FUSED_OPS}


def expected_fusion(layers):
    """What a fully fused L-layer BERT holds: one embedding LayerNorm, L attentions, 2L skip
    LayerNorms, L GELUs (fused with their bias: BiasGelu), no plain LayerNorm left."""
    return {"EmbedLayerNormalization": 1, "Attention": layers, "SkipLayerNormalization": 2 * layers,
            "LayerNormalization": 0, "gelu": layers}


def fusion_ok(counts, layers):
    exp = expected_fusion(layers)
    gelu = counts["Gelu"] + counts["BiasGelu"] + counts["FastGelu"]
    return (gelu == exp["gelu"] and all(counts[k] == v for k, v in exp.items() if k != "gelu"))


# ------------------------------------------------------------------ models for tests and reports



def finetune(src, out_dir, rows, num_layers=0, lr=1e-4, batch_size=16, seed=0, label_names=None,
             new_pooler=False):
    """Fine-tunes the Hugging Face folder src (its first num_layers layers when > 0) as
    BertForSequenceClassification on `rows` for one epoch, with scripts/torch_bert.py: AdamW (lr,
    weight decay 0.01), batches of batch_size in a seeded order, dropout on, embeddings frozen; a new
    classifier (and pooler when src has none, or new_pooler) initialised as Hugging Face does. Writes out_dir
    (config.json, model.safetensors, vocab.txt, tokenizer files) through a temporary folder renamed
    into place. For tests and demo reports where no distill-trained model exists: the model is
    trained, briefly, not made up. Returns the mean training loss of the epoch."""
    import torch
    from safetensors.numpy import load_file, save_file
    from torch_bert import TorchBert
    torch.manual_seed(seed)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    C = int(rows["labels"].max()) + 1
    names = label_names or [f"LABEL_{i}" for i in range(C)]
    if num_layers:
        cfg["num_hidden_layers"] = num_layers
    cfg["architectures"] = ["BertForSequenceClassification"]
    cfg["id2label"] = {str(i): n for i, n in enumerate(names)}
    cfg["label2id"] = {n: i for i, n in enumerate(names)}
    cfg.pop("num_labels", None)
    model = TorchBert(cfg)
    state = load_file(os.path.join(src, "model.safetensors"))
    L = cfg["num_hidden_layers"]
    keep = {k: torch.from_numpy(v) for k, v in state.items()
            if not any(f"layer.{j}." in k for j in range(L, 1000)) and not k.startswith("classifier.")
            and not (new_pooler and "pooler." in k)}
    model.load_hf_state_dict(keep)
    for p in model.embeddings.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.01)
    model.train()
    order = np.random.default_rng(seed).permutation(len(rows["lengths"]))
    losses = []
    for i in range(0, len(order), batch_size):
        b = batch(rows, order[i:i + batch_size])
        ids = torch.from_numpy(b["ids"])
        out = model(ids, torch.from_numpy(attention_mask(b["lengths"], ids.shape[1])),
                    torch.from_numpy(b["types"]))
        loss = torch.nn.functional.cross_entropy(out["logits"], torch.from_numpy(b["labels"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".finetune-", dir=parent)
    try:
        tensors = {n: p.detach().numpy().copy() for n, p in model.hf_named_parameters()}
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                     "tokenizer.json"):
            if os.path.isfile(os.path.join(src, name)):
                shutil.copy(os.path.join(src, name), os.path.join(tmp, name))
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return float(np.mean(losses))


# ------------------------------------------------------------------ the command

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--source", help="the folder or checkpoint the model was exported from")
    ap.add_argument("--tool", help="build/tests/test_onnx_tool (for the engine's outputs)")
    ap.add_argument("--data", help="labelled TSV or prepared HDF5 rows (default: random ids)")
    ap.add_argument("--vocab", help="vocab.txt for a TSV (default: SOURCE/vocab.txt)")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--optimize", metavar="OUT", help="also optimise to OUT and compare")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    import onnx
    ok = True

    def report(cond, msg):
        nonlocal ok
        print(("ok    " if cond else "FAIL  ") + msg)
        ok &= bool(cond)

    m = onnx.load(a.model)
    try:
        onnx.checker.check_model(m, full_check=True)
        report(True, "onnx.checker.check_model(full_check=True)")
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        report(False, f"onnx.checker: {e}")
    meta = model_meta(m)
    cfg = meta.get("config", {})
    ins = {i.name: i for i in m.graph.input}
    report(list(ins) == ["input_ids", "attention_mask", "token_type_ids"] and all(
        i.type.tensor_type.elem_type == onnx.TensorProto.INT64 and
        [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "sequence"]
        for i in ins.values()), "inputs input_ids, attention_mask, token_type_ids: int64 [batch, sequence]")
    outs = [o.name for o in m.graph.output]
    report(outs in (["logits"], ["last_hidden_state"], ["last_hidden_state", "pooler_output"]),
           f"outputs {outs}; opset {m.opset_import[0].version}; producer {m.producer_name}; "
           f"precision {meta.get('precision')}; vocab_sha256 {meta.get('vocab_sha256', '-')}")
    del m

    rows = None
    if a.data:
        vocab = a.vocab or (os.path.join(a.source, "vocab.txt") if a.source else None)
        rows = load_rows(a.data, vocab, limit=a.rows)
    else:
        rows = random_rows(a.rows, 32, cfg.get("vocab_size", 100))
    sess = ort_session(a.model)
    got = ort_run(sess, rows["ids"], rows["types"], rows["lengths"])
    if a.source and a.tool:
        eng, _ = engine_run(a.tool, a.source, rows["ids"], rows["types"], rows["lengths"],
                            engine_args(meta))
        for k, v in got.items():
            d = float(np.abs(v - eng[k]).max())
            report(d <= a.tol, f"{k}: ONNX Runtime vs engine max |diff| {d:.3g} (bound {a.tol:g})")
    if a.optimize:
        counts = optimize(a.model, a.optimize, cfg["num_attention_heads"], cfg["hidden_size"])
        report(fusion_ok(counts, cfg["num_hidden_layers"]),
               "fused: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        opt = ort_run(ort_session(a.optimize), rows["ids"], rows["types"], rows["lengths"])
        for k, v in got.items():
            d = float(np.abs(v - opt[k]).max())
            report(d <= a.tol, f"{k}: optimised vs plain max |diff| {d:.3g} (bound {a.tol:g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
