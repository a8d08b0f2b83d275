"""torch_bert.py — the project's own PyTorch BERT, the reference the C engine is tested against.

Written to Hugging Face's BertModel + BertForSequenceClassification semantics (transformers is
NOT imported): word + token-type + position embeddings (positions 0..S-1), LayerNorm, dropout;
post-LN encoder layers (self-attention with the additive mask, exact erf GELU FFN); pooler
tanh(dense(h[:, 0])); classifier dropout; classifier. Module and parameter names mirror HF's, so
`state_dict()` keys are HF's without the "bert." prefix.

Module API (other tests import it; keep it stable):

    TorchBert(config: dict)            HF config.json keys
    .load_hf_state_dict(state)         names with or without "bert."; pooler/classifier optional
    .forward(input_ids, attention_mask, token_type_ids=None) -> dict
        logits         (B, C), or None without a classifier
        pooled         (B, H), or None without a pooler
        hidden_states  list of L+1 tensors (B, S, H): embedding output, then each layer's output
        scores         list of L tensors (B, heads, S, S): pre-softmax, scaled, mask added
        probs          list of L tensors (B, heads, S, S): softmax of scores, BEFORE attention
                       dropout (HF returns them after dropout; identical in eval mode)
    .hf_named_parameters()             (HF name, parameter) pairs, "bert." prefix included

Runs in float32, or float64 after `.double()`. The additive mask is (1 - mask) * the float32
minimum, as HF builds it for float32 models (HF uses the float64 minimum for a float64 model; the
probabilities are the same, 0 on padded keys, and the masked scores match the C engine's).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

F32_MIN = torch.finfo(torch.float32).min


def config_num_labels(config):
    """Classifier outputs implied by an HF config: num_labels, else len(id2label) for a
    *ForSequenceClassification architecture (default 2), else 0 for other architectures
    (BertModel, BertForMaskedLM, ...), else HF's default 2."""
    if config.get("num_labels") is not None:
        return int(config["num_labels"])
    archs = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return len(config.get("id2label") or {}) or 2
    if archs:
        return 0
    if config.get("id2label"):
        return len(config["id2label"])
    return 2


class _Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], H, padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], H)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], H)
        self.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, input_ids, token_type_ids):
        S = input_ids.shape[1]
        positions = torch.arange(S, device=input_ids.device)                 # (S)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)[None]                    # (B, S, H)
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.d = H // self.heads
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.dropout = nn.Dropout(c["attention_probs_dropout_prob"])

    def _split(self, t):                                                      # (B, S, H)
        B, S, _ = t.shape
        return t.view(B, S, self.heads, self.d).transpose(1, 2)               # (B, nh, S, d)

    def forward(self, x, mask_add):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + mask_add       # (B, nh, S, S)
        probs = F.softmax(scores, dim=-1)
        ctx = self.dropout(probs) @ v                                         # (B, nh, S, d)
        B, _, S, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(B, S, self.heads * self.d)          # (B, S, H)
        return ctx, scores, probs


class _SelfOutput(nn.Module):
    def __init__(self, c, width_in):
        super().__init__()
        H = c["hidden_size"]
        self.dense = nn.Linear(width_in, H)
        self.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _SelfOutput(c, c["hidden_size"])


class _Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact erf form, HF "gelu"


class _Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _SelfOutput(c, c["intermediate_size"])

    def forward(self, x, mask_add):
        ctx, scores, probs = self.attention.self(x, mask_add)
        h1 = self.attention.output(ctx, x)                                    # (B, S, H)
        return self.output(self.intermediate(h1), h1), scores, probs


class _Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([_Layer(c) for _ in range(c["num_hidden_layers"])])


class _Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))                               # (B, H)


_DEFAULTS = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2,
    "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "classifier_dropout": None, "initializer_range": 0.02, "pad_token_id": 0,
    "hidden_act": "gelu", "position_embedding_type": "absolute",
}


class TorchBert(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        c = dict(_DEFAULTS)
        c.update({k: v for k, v in config.items() if v is not None or k == "classifier_dropout"})
        if c["hidden_act"] != "gelu":
            raise ValueError(f"hidden_act must be 'gelu' (exact erf GELU), found {c['hidden_act']!r}")
        if c["position_embedding_type"] != "absolute":
            raise ValueError("position_embedding_type must be 'absolute', found "
                             f"{c['position_embedding_type']!r}")
        if c["hidden_size"] % c["num_attention_heads"]:
            raise ValueError("hidden_size must be a multiple of num_attention_heads, found "
                             f"{c['hidden_size']} and {c['num_attention_heads']}")
        self.config = c
        self.num_labels = config_num_labels(config)
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)
        self.pooler = _Pooler(c) if c.get("add_pooling_layer", True) or self.num_labels else None
        p_cls = c["classifier_dropout"]
        self.dropout = nn.Dropout(c["hidden_dropout_prob"] if p_cls is None else p_cls)
        self.classifier = nn.Linear(c["hidden_size"], self.num_labels) if self.num_labels else None
        self._init_weights()

    def _init_weights(self):
        """HF _init_weights: normal(0, initializer_range) for Linear and Embedding weights, zero
        biases, LayerNorm weight 1 / bias 0, the padding row of the word embedding zero."""
        std = self.config["initializer_range"]
        with torch.no_grad():
            for mod in self.modules():
                if isinstance(mod, nn.Linear):
                    mod.weight.normal_(0.0, std)
                    mod.bias.zero_()
                elif isinstance(mod, nn.Embedding):
                    mod.weight.normal_(0.0, std)
                    if mod.padding_idx is not None:
                        mod.weight[mod.padding_idx].zero_()
                elif isinstance(mod, nn.LayerNorm):
                    mod.weight.fill_(1.0)
                    mod.bias.zero_()

    def hf_named_parameters(self):
        """(Hugging Face name, parameter) for every parameter, in HF's order."""
        for name, p in self.named_parameters():
            yield (name if name.startswith("classifier.") else "bert." + name), p

    def load_hf_state_dict(self, state):
        """Copies HF-named tensors into the model. Accepts names with or without "bert.", and
        TF-era "LayerNorm.gamma/beta". Every encoder and embedding tensor must be present with
        the right shape (KeyError / ValueError otherwise); pooler and classifier are optional and
        keep their initialisation when absent (HF's "newly initialized" weights). Returns
        {"missing": [...], "unexpected": [...]} in HF names."""
        own = dict(self.hf_named_parameters())
        seen, unexpected = set(), []
        with torch.no_grad():
            for key, value in state.items():
                name = key.replace("LayerNorm.gamma", "LayerNorm.weight")
                name = name.replace("LayerNorm.beta", "LayerNorm.bias")
                if not name.startswith(("bert.", "classifier.")):
                    name = "bert." + name
                if name not in own:
                    unexpected.append(key)
                    continue
                p = own[name]
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"{key}: expected shape {tuple(p.shape)}, found "
                                     f"{tuple(value.shape)}")
                p.copy_(value.to(dtype=p.dtype, device=p.device))
                seen.add(name)
        missing = [n for n in own if n not in seen]
        required = [n for n in missing if not n.startswith(("bert.pooler.", "classifier."))]
        if required:
            raise KeyError(f"state dict lacks {len(required)} tensors, first {required[0]!r}")
        return {"missing": missing, "unexpected": unexpected}

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        dtype = self.embeddings.LayerNorm.weight.dtype
        x = self.embeddings(input_ids, token_type_ids)                       # (B, S, H)
        mask_add = (1.0 - attention_mask.to(dtype))[:, None, None, :] * F32_MIN  # (B, 1, 1, S)
        hidden, scores, probs = [x], [], []
        for layer in self.encoder.layer:
            x, sc, pr = layer(x, mask_add)
            hidden.append(x)
            scores.append(sc)
            probs.append(pr)
        pooled = self.pooler(x) if self.pooler is not None else None
        logits = None
        if self.classifier is not None:
            logits = self.classifier(self.dropout(pooled))                   # (B, C)
        return {"logits": logits, "pooled": pooled, "hidden_states": hidden, "scores": scores,
                "probs": probs}
