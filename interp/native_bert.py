"""BERT sequence classifiers without importing transformers: a checkpoint folder's config.json and
model.safetensors loaded into the same module tree, parameter names and eager arithmetic as
transformers' `BertForSequenceClassification`.

Why: importing transformers' modelling code costs 2-3 s on a 2-core CPU (it pulls in
torch.distributed.tensor, sympy, torch._dynamo and scipy.optimize), more than a whole edge-circuit
search on MiniLM. `interp.loading.load_folder` uses this module for the checkpoints it covers exactly
(`load`: a trained BERT classifier, float32 safetensors, absolute positions, GELU, encoder only) with
the hooks backend, and transformers for everything else. Same weights, same fingerprint, same
module names (so every site, hook and shortcut of `interp.arch`'s "bert" entry applies), same operations
in the same order as transformers' eager attention path: logits and every site equal transformers' to
the last bit on the same machine (tests/test_native_bert.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

# transformers' BertConfig defaults, for keys a config.json leaves out
_DEFAULTS = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
             "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
             "classifier_dropout": None}
# config.json values this module reproduces; any other value of these keys -> transformers
_REQUIRED = {"model_type": ("bert",), "architectures": (["BertForSequenceClassification"],),
             "hidden_act": ("gelu",), "position_embedding_type": ("absolute", None), "is_decoder": (False, None),
             "add_cross_attention": (False, None), "chunk_size_feed_forward": (0, None),
             "dtype": ("float32", None), "torch_dtype": ("float32", None)}


class NativeBertConfig:
    """config.json as attributes (what analyses read: sizes, id2label, pad_token_id ...), with the
    label maps keyed as transformers keys them and eager attention."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update({**_DEFAULTS, **values})
        self.id2label = {int(k): v for k, v in values.get("id2label", {}).items()}
        self.label2id = {k: int(v) for k, v in values.get("label2id", {}).items()}
        self._attn_implementation = "eager"

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    def __getattr__(self, name: str) -> Any:  # only for names config.json lacks
        raise AttributeError(f"config.json has no {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class SequenceClassifierOutput(NamedTuple):
    """The classifier's output: `.logits` [batch, n_labels] (and `[0]`), as transformers returns it."""

    logits: torch.Tensor


class Linear(nn.Linear):
    """nn.Linear whose weights start uninitialised: `load` assigns every one (torch's random init would cost
    time and draw from the global generator; its meta device would import torch._dynamo, 1.2 s)."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """nn.Embedding whose table starts uninitialised (see Linear)."""

    def reset_parameters(self) -> None:
        pass


class BertEmbeddings(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.word_embeddings = Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.position_ids: torch.Tensor
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        seq = input_ids.shape[1]
        position_ids = self.position_ids[:, :seq]                                  # [1, pos]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # [batch, pos, d]
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.num_attention_heads = c.num_attention_heads
        self.attention_head_size = c.hidden_size // c.num_attention_heads
        self.scaling = self.attention_head_size ** -0.5
        self.query = Linear(c.hidden_size, c.hidden_size)
        self.key = Linear(c.hidden_size, c.hidden_size)
        self.value = Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
                ) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        q = self.query(hidden_states).view(shape).transpose(1, 2)                 # [batch, head, pos, d_head]
        k = self.key(hidden_states).view(shape).transpose(1, 2)
        v = self.value(hidden_states).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scaling               # [batch, head, q, k]
        if attention_mask is not None:
            scores = scores + attention_mask
        pattern = nn.functional.softmax(scores, dim=-1)
        pattern = nn.functional.dropout(pattern, p=self.dropout.p if self.training else 0.0, training=self.training)
        z = torch.matmul(pattern, v).transpose(1, 2).contiguous()                 # [batch, pos, head, d_head]
        return z.reshape(*hidden_states.shape[:-1], -1).contiguous(), pattern


class BertResidualOutput(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): transformers' BertSelfOutput and BertOutput."""

    def __init__(self, d_in: int, c: NativeBertConfig):
        super().__init__()
        self.dense = Linear(d_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertResidualOutput(c.hidden_size, c)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
                ) -> tuple[torch.Tensor, torch.Tensor]:
        z, pattern = self.self(hidden_states, attention_mask=attention_mask, **kwargs)
        return self.output(z, hidden_states), pattern


class BertIntermediate(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.dense = Linear(c.hidden_size, c.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertLayer(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertResidualOutput(c.intermediate_size, c)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                encoder_hidden_states: None = None, **kwargs: Any) -> torch.Tensor:
        mid, _ = self.attention(hidden_states, attention_mask, **kwargs)           # [batch, pos, d]
        return self.output(self.intermediate(mid), mid)


class BertEncoder(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            # the keyword arguments transformers passes (interp.engine.layer_inputs records them)
            hidden_states = layer(hidden_states, attention_mask, None, encoder_attention_mask=None, cache=None,
                                  position_ids=None)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.dense = Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))                   # [batch, d]


class BertModel(nn.Module):
    def __init__(self, c: NativeBertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)


def additive_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype, q_len: int) -> torch.Tensor | None:
    """transformers' eager bidirectional mask: None when every key is attended, else [batch, 1, q, k] with 0
    at attended keys and the dtype's minimum at padding."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    b, k = attention_mask.shape
    m = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min   # [batch, 1, 1, k]
    return m.expand(b, 1, q_len, k)


class NativeBertForSequenceClassification(nn.Module):
    """transformers' BertForSequenceClassification in eval-time use: forward(input_ids, attention_mask,
    token_type_ids) -> `.logits`. No loss, no caches, no position_ids or inputs_embeds."""

    def __init__(self, config: NativeBertConfig):
        super().__init__()
        self.config = config
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        p = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(p if p is not None else config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> SequenceClassifierOutput:
        h = self.bert.embeddings(input_ids, token_type_ids)                       # [batch, pos, d]
        h = self.bert.encoder(h, additive_mask(attention_mask, h.dtype, h.shape[1]))
        return SequenceClassifierOutput(self.classifier(self.dropout(self.bert.pooler(h))))


def load(path: Path, num_labels: int | None = None) -> NativeBertForSequenceClassification | None:
    """The classifier in checkpoint folder `path`, in eval mode, or None where this module does not cover it
    exactly (see the module doc; the caller then loads it with transformers): another architecture or
    setting in config.json, weights not float32 safetensors, or weight names other than the model's."""
    try:
        values = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    labels = values.get("id2label") or {}
    if not labels or (num_labels is not None and num_labels != len(labels)):
        return None
    if not all(values.get(k) in ok for k, ok in _REQUIRED.items()) or not (path / "model.safetensors").is_file():
        return None
    from safetensors import SafetensorError, safe_open

    model = NativeBertForSequenceClassification(NativeBertConfig(values))
    try:
        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            names = set(f.keys())
            if names != set(model.state_dict()) or any(f.get_slice(k).get_dtype() != "F32" for k in names):
                return None
            state = {k: f.get_tensor(k) for k in names}
    except SafetensorError:  # not a safetensors file: transformers reports it
        return None
    model.load_state_dict(state, assign=True)  # shapes checked
    return model.eval()
