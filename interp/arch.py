"""Architecture site maps: where each site lives inside a HuggingFace model.

One `Arch` per family. Module paths are relative to the model (`embed`, `layers`) or to one layer
(everything else). `head` maps the last layer's output to logits, so that a forward pass can be
resumed from any layer without recomputing the ones before it.

ResNets have no attention and no tokens: their "layers" are the residual blocks of every stage in
forward order (`layers` is a path with a `*` over stages), and every site but `logits` is a feature map
`[batch, channels, h, w]` (`layout="maps"`): `embed` (stem output), `blocks.{l}.hook_branch_out` (the
block's residual branch, before the shortcut is added) and `blocks.{l}.hook_resid_post` (block output).
A stage's output is its last block's `hook_resid_post` (`stage_sites`). The LeNet-5-style CNN
(`interp.lenet`) has the same layout with one block per stage (conv -> ReLU -> pool): `embed` is the input
image and every `blocks.{l}.hook_resid_post` a stage output.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from interp.sites import LAYER_KINDS


def _bert_head(model: Any, h: torch.Tensor) -> torch.Tensor:
    pooled = model.bert.pooler(h)  # [batch, d_model]
    return model.classifier(model.dropout(pooled))


def _roberta_head(model: Any, h: torch.Tensor) -> torch.Tensor:
    return model.classifier(h)


def _distilbert_head(model: Any, h: torch.Tensor) -> torch.Tensor:
    x = torch.relu(model.pre_classifier(h[:, 0]))  # [batch, d_model]
    return model.classifier(model.dropout(x))


def _vit_head(model: Any, h: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.vit.layernorm(h)[:, 0])


def _resnet_head(model: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return get_module(model, "classifier")(get_module(model, "resnet.pooler")(h))  # [batch, c, h, w] -> [batch, n_labels]


def _lenet_head(model: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return get_module(model, "classifier")(get_module(model, "lenet.pooler")(h))  # [batch, c, h, w] -> [batch, n_labels]


@dataclass(frozen=True)
class LayerMath:
    """Modules inside one layer beyond the sites, enough to recompute the layer piece by piece
    (interp.engine's shortcuts, interp.circuits' receivers). Together with `Arch.o_proj` (z -> attn_out)
    and `Arch.mlp_out` (the MLP's last module)."""

    q: str
    k: str
    v: str
    attn: str              # module holding the attention `scaling`
    ln_attn: str           # post-LN: after attention (resid_mid = ln(attn_out + h)); pre-LN: before attention
    ln_mlp: str            # post-LN: after the MLP; pre-LN: before it
    mlp_in: str | None = None  # MLP module that runs before `mlp_out` (None: `mlp_out` is the whole MLP)
    pre_ln: bool = False


@dataclass(frozen=True)
class Arch:
    """Where the sites of one model family live."""

    family: str
    model_classes: tuple[str, ...]
    embed: str                 # module whose output is `embed`
    layers: str                # nn.ModuleList of blocks
    pattern: str               # per layer: module whose output[1] is the attention pattern
    o_proj: str                # per layer: attention output projection; its input is z, its output attn_out
    mlp_out: str               # per layer: module whose output is mlp_out
    resid_mid: str | None      # per layer: module whose output is resid_mid (post-LN encoders only)
    head: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    modality: str = "text"     # "text" | "image"
    kinds: tuple[str, ...] = field(default=LAYER_KINDS)
    layer_math: LayerMath | None = None  # None: no shortcuts, no circuits
    layout: str = "tokens"     # "tokens": sites are [batch, pos, ...]; "maps": [batch, channels, h, w]
    extra_out: tuple[tuple[str, str], ...] = ()  # (kind, per-layer module whose output is that site)
    backends: tuple[str, ...] = ("hooks", "nnsight", "tl")  # backends that can run this family

    @property
    def mlp_modules(self) -> tuple[str, ...]:
        """Per layer: the MLP's modules in order, MLP input -> mlp_out."""
        return tuple(p for p in (self.layer_math.mlp_in if self.layer_math else None, self.mlp_out) if p)


_BERT_LIKE: dict[str, Any] = dict(pattern="attention.self", o_proj="attention.output.dense", mlp_out="output.dense",
                  resid_mid="attention.output",
                  layer_math=LayerMath("attention.self.query", "attention.self.key", "attention.self.value",
                                       "attention.self", "attention.output.LayerNorm", "output.LayerNorm",
                                       mlp_in="intermediate"))

ARCHS: dict[str, Arch] = {
    # interp.native_bert's copy of the transformers class has the same modules
    "bert": Arch("bert", ("BertForSequenceClassification", "NativeBertForSequenceClassification"), "bert.embeddings",
                 "bert.encoder.layer", head=_bert_head, **_BERT_LIKE),
    "roberta": Arch("roberta", ("RobertaForSequenceClassification",), "roberta.embeddings",
                    "roberta.encoder.layer", head=_roberta_head, **_BERT_LIKE),
    "distilbert": Arch("distilbert", ("DistilBertForSequenceClassification",), "distilbert.embeddings",
                       "distilbert.transformer.layer", pattern="attention", o_proj="attention.out_lin",
                       mlp_out="ffn", resid_mid="sa_layer_norm", head=_distilbert_head,
                       layer_math=LayerMath("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention",
                                            "sa_layer_norm", "output_layer_norm")),
    "vit": Arch("vit", ("ViTForImageClassification",), "vit.embeddings", "vit.layers", pattern="attention",
                o_proj="attention.o_proj", mlp_out="mlp", resid_mid=None, head=_vit_head, modality="image",
                kinds=tuple(k for k in LAYER_KINDS if k != "hook_resid_mid"),
                layer_math=LayerMath("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention",
                                     "layernorm_before", "layernorm_after", pre_ln=True)),
    # no attention and no MLP: pattern / o_proj / mlp_out are unused (their kinds are not in `kinds`)
    "resnet": Arch("resnet", ("ResNetForImageClassification",), "resnet.embedder", "resnet.encoder.stages.*.layers",
                   pattern="", o_proj="", mlp_out="", resid_mid=None, head=_resnet_head, modality="image",
                   kinds=("hook_branch_out", "hook_resid_post"), layout="maps",
                   extra_out=(("hook_branch_out", "layer"),), backends=("hooks",)),
    "lenet": Arch("lenet", ("LeNetForImageClassification",), "lenet.embedder", "lenet.stages", pattern="", o_proj="",
                  mlp_out="", resid_mid=None, head=_lenet_head, modality="image", kinds=("hook_resid_post",),
                  layout="maps", backends=("hooks",)),
}


def detect_arch(model: nn.Module) -> Arch:
    """The Arch of a HuggingFace classifier, or a clear error naming what is supported."""
    name = type(model).__name__
    for arch in ARCHS.values():
        if name in arch.model_classes:
            return arch
    supported = ", ".join(c for a in ARCHS.values() for c in a.model_classes)
    raise TypeError(
        f"Unsupported architecture {name!r}. kd-interp supports {supported}. A bare encoder "
        "(e.g. BertModel) can be loaded as a classifier with load_subject(path, num_labels=...); "
        "a new family needs an entry in interp.arch.ARCHS.")


def get_layers(model: nn.Module, arch: Arch) -> nn.ModuleList:
    """The layers (blocks) of `model` in forward order. A `*` in `arch.layers` concatenates the lists found
    under every child at that point (ResNet: the blocks of every stage)."""
    if "*" not in arch.layers:
        return cast(nn.ModuleList, get_module(model, arch.layers))
    head, tail = arch.layers.split(".*.", 1)
    return nn.ModuleList([blk for child in get_module(model, head).children() for blk in get_module(child, tail).children()])


def stage_sites(model: nn.Module, arch: Arch) -> list[str]:
    """Per stage, the site holding its output (the last block's `hook_resid_post`); CNNs only (ResNet: the
    stages' last blocks; LeNet: every block is a stage)."""
    if arch.layout != "maps":
        raise ValueError(f"{arch.family} has no stages: stage_sites is for CNNs (ResNet, LeNet).")
    if "*" not in arch.layers:
        return [f"blocks.{l}.hook_resid_post" for l in range(len(get_layers(model, arch)))]
    head, tail = arch.layers.split(".*.", 1)
    ends = list(itertools.accumulate(len(list(get_module(child, tail).children()))
                                     for child in get_module(model, head).children()))
    return [f"blocks.{e - 1}.hook_resid_post" for e in ends]


def get_module(root: nn.Module, path: str) -> nn.Module:
    """`get_module(model, "bert.encoder.layer")`: attribute path with integer indices allowed."""
    module: Any = root  # attributes and ModuleList indices: only known at run time
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def get_linear(root: nn.Module, path: str) -> nn.Linear:
    """`get_module` for a projection whose weight rows or columns are sliced per head: it must be nn.Linear."""
    module = get_module(root, path)
    if not isinstance(module, nn.Linear):
        raise TypeError(f"{path} is a {type(module).__name__}, not an nn.Linear: per-head weight slices assume a "
                        "linear projection [out_features, in_features]. This model family is not supported here.")
    return module
