"""The TransformerLens 4.x backend: `run(subject, batch, read, write)` on a `TransformerBridge`.

TransformerLens 4.3 has adapters for BERT and RoBERTa *masked LMs* only. The sequence classifiers
(`BertForSequenceClassification`, `RobertaForSequenceClassification`) get an adapter here: the MLM
head components are dropped and the classifier is mapped; the bridge runs the HF model's own
forward, so the head (BERT: pooler + classifier) is the HF one and the logits are the HF logits.

Site names -> bridge hook points (checked value by value against the hooks backend, see
tests/test_backends.py). Some TL names mean something else on a post-LN encoder:

| our site                       | bridge hook point                  | note |
| ------------------------------ | ---------------------------------- | ---- |
| `embed`                        | `embed_ln.hook_out`                | TL's `hook_embed` is the word embedding only |
| `blocks.{l}.attn.hook_pattern` | `blocks.{l}.attn.hook_pattern`     | read only: the bridge discards writes |
| `blocks.{l}.attn.hook_z`       | `blocks.{l}.attn.hook_z`           | = `attn.o.hook_in`, [batch, pos, head, d_head] |
| `blocks.{l}.hook_attn_out`     | `blocks.{l}.attn.o.hook_out`       | TL's `hook_attn_out` is *after* the attention LayerNorm |
| `blocks.{l}.hook_resid_mid`    | `blocks.{l}.ln1.hook_out`          | TL's `hook_resid_mid` is `ln2.hook_in` = mlp_out + resid_mid, pre-LN |
| `blocks.{l}.hook_mlp_out`      | `blocks.{l}.mlp.out.hook_out`      | |
| `blocks.{l}.hook_resid_post`   | `blocks.{l}.hook_resid_post`       | after the output LayerNorm, = hidden_states[l + 1] |
| `logits`                       | the bridge's return value          | |

The bridge replaces submodules of the model it wraps (and adds `_original_component` aliases to
its state_dict). `bridge_from_hf` therefore wraps a copy by default, and a Subject keeps the
fingerprint of the unwrapped weights. A Subject is made from a bridge by `interp.subject.load_subject(bridge)`
(or `interp.subject.subject_from_bridge`); this module never imports `interp.subject`.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformer_lens  # noqa: F401  (imports beartype before anything can import nnsight)
from torch import nn
from transformer_lens.factories.architecture_adapter_factory import ArchitectureAdapterFactory
from transformer_lens.model_bridge.generalized_components import LinearBridge
from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
from transformer_lens.model_bridge.supported_architectures.bert import BertArchitectureAdapter
from transformer_lens.model_bridge.supported_architectures.roberta import RobertaArchitectureAdapter

from interp.arch import detect_arch
from interp.engine import apply_write, logits_site
from interp.loading import load_folder, model_fingerprint
from interp.sites import parse_site

HOOK_NAMES = {
    "embed": "embed_ln.hook_out",
    "attn.hook_pattern": "blocks.{l}.attn.hook_pattern",
    "attn.hook_z": "blocks.{l}.attn.hook_z",
    "hook_attn_out": "blocks.{l}.attn.o.hook_out",
    "hook_resid_mid": "blocks.{l}.ln1.hook_out",
    "hook_mlp_out": "blocks.{l}.mlp.out.hook_out",
    "hook_resid_post": "blocks.{l}.hook_resid_post",
}
FAMILIES = ("bert", "roberta")
_FINGERPRINT_ATTR = "_kd_interp_fingerprint"


# --- adapters for the sequence classifiers ------------------------------------------------------

def _classifier_adapter(base: type, classifier: str) -> type:
    class Adapter(base):
        """`base` without the MLM head; the HF classification head runs as part of the HF forward."""

        def __init__(self, cfg: Any) -> None:
            super().__init__(cfg)
            for key in ("mlm_head", "unembed", "ln_final"):
                self.component_mapping.pop(key, None)
            self.component_mapping["classifier"] = LinearBridge(name=classifier)  # classifier.hook_out: logits

    Adapter.__name__ = Adapter.__qualname__ = f"{base.__name__.replace('Architecture', 'SequenceClassification')}"
    return Adapter


BertSequenceClassificationAdapter = _classifier_adapter(BertArchitectureAdapter, "classifier")
RobertaSequenceClassificationAdapter = _classifier_adapter(RobertaArchitectureAdapter, "classifier.out_proj")
ADAPTERS = {"BertForSequenceClassification": BertSequenceClassificationAdapter,
            "RobertaForSequenceClassification": RobertaSequenceClassificationAdapter}


def register_adapters() -> None:
    """Register our adapters with TransformerLens (leaves any native adapter of the same name alone)."""
    for name, adapter in ADAPTERS.items():
        if name not in ArchitectureAdapterFactory._adapters:
            ArchitectureAdapterFactory.register_adapter(name, adapter)


register_adapters()


# --- building -----------------------------------------------------------------------------------

def _unsupported(model: nn.Module) -> NotImplementedError:
    return NotImplementedError(
        f"The TransformerLens bridge backend does not support {type(model).__name__}: kd-interp maps its sites "
        f"onto TransformerLens {_tl_version()} bridges only for {', '.join(ADAPTERS)} (TransformerLens has no "
        "adapter for DistilBERT at all). Use backend='hooks' or backend='nnsight', which read and write the "
        "same sites with the same numbers.")


def _tl_version() -> str:
    from importlib.metadata import version
    try:
        return version("transformer-lens")
    except Exception:  # noqa: BLE001
        return "4.x"


def bridge_from_hf(model: nn.Module | str | os.PathLike, tokenizer: Any = None, copy_model: bool = True,
                   num_labels: int | None = None):
    """A TransformerBridge (in eval mode) around a HF sequence classifier or a checkpoint folder.

    The bridge mutates the tokenizer it is given, so it gets its own copy of `tokenizer`, and it
    replaces submodules of the model it wraps, so by default it wraps a deep copy of `model`
    (`copy_model=False` wraps `model` itself; the hooks and nnsight backends still work on it).
    """
    if isinstance(model, (str, os.PathLike)):
        model, folder_tokenizer = load_folder(Path(model), num_labels)
        tokenizer = tokenizer if tokenizer is not None else folder_tokenizer
        copy_model = False
    if type(model).__name__ not in ADAPTERS:
        raise _unsupported(model)
    if tokenizer is None:
        raise ValueError("bridge_from_hf needs tokenizer= (without one the bridge tries to download it).")
    fingerprint = model_fingerprint(model)
    if copy_model:
        model = copy.deepcopy(model)
    impl = getattr(model.config, "_attn_implementation", "eager")
    if impl not in (None, "eager"):
        hf: Any = model  # a transformers PreTrainedModel (an ADAPTERS class, checked above)
        hf.set_attn_implementation("eager")  # the pattern is only materialised by eager attention
    bridge = build_bridge_from_module(model, type(model).__name__, hf_config=model.config,
                                      tokenizer=copy.deepcopy(tokenizer),
                                      model_name=getattr(model.config, "_name_or_path", "") or type(model).__name__)
    bridge.eval()
    bridge.__dict__[_FINGERPRINT_ATTR] = fingerprint
    return bridge


def check_bridge(bridge: Any) -> nn.Module:
    """The bridge's HF model, after checking that kd-interp's sites map onto its hook points."""
    model = bridge.original_model
    if detect_arch(model).family not in FAMILIES:
        raise _unsupported(model)
    missing = [h for h in _hook_names(0) if h not in bridge.hook_dict]
    if missing:
        raise NotImplementedError(
            f"This bridge ({type(bridge.adapter).__name__}) lacks the hook points {missing} that kd-interp's sites "
            "map to; build the bridge with interp.backends.tl_bridge.bridge_from_hf, or use backend='hooks'.")
    return model


def bridge_fingerprint(bridge: Any) -> str | None:
    """The fingerprint of the unwrapped weights, recorded by bridge_from_hf (None for other bridges)."""
    return bridge.__dict__.get(_FINGERPRINT_ATTR)


def _hook_names(layer: int) -> list[str]:
    return [h.format(l=layer) for h in HOOK_NAMES.values()]


def _attach(subject):
    """Give a Subject made for another backend a bridge (wrapping a copy of its model)."""
    fingerprint = subject.fingerprint
    bridge = bridge_from_hf(subject.model, subject.tokenizer)
    subject.model, subject.bridge, subject._fingerprint = bridge.original_model, bridge, fingerprint
    return bridge


# --- run ----------------------------------------------------------------------------------------

def hook_name(subject, site: str) -> str:
    """The bridge hook point that holds `site`'s canonical value (see the module docstring)."""
    s = parse_site(site, subject.n_layers, subject.arch.kinds)
    if s.kind == "logits":
        raise KeyError("'logits' is the bridge's return value, not a hook point.")
    return HOOK_NAMES[s.kind].format(l=s.layer)


def _position_ids(subject, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """HF's own default position ids where the bridge would otherwise derive different ones.

    The bridge derives position ids from the attention mask when a masked token precedes a real one
    (left padding); HF BERT uses 0..n-1 and RoBERTa counts from padding_idx + 1 over non-pad tokens.
    """
    mask, ids = batch.get("attention_mask"), batch.get("input_ids")
    if "position_ids" in batch or mask is None or ids is None or mask.ndim != 2:
        return None
    left_padded = ((mask.long().cumsum(-1) == 0) & (mask.long().sum(-1, keepdim=True) > 0)).any()
    if not bool(left_padded):
        return None
    if subject.arch.family == "roberta":
        pad = subject.config.pad_token_id
        return (ids.ne(pad).long().cumsum(-1) * ids.ne(pad).long()) + pad
    return torch.arange(ids.shape[1], device=ids.device).expand_as(ids)


def run(subject, batch: Mapping[str, torch.Tensor], read: Sequence[str],
        write: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    bridge = subject.bridge if subject.bridge is not None else _attach(subject)
    if bridge.training:
        raise RuntimeError(f"{subject.name}: the bridge is in train mode; call subject.bridge.eval().")
    cache: dict[str, torch.Tensor] = {}
    read_set = set(read)

    def make_hook(site: str):
        def hook(value: torch.Tensor, hook: Any) -> torch.Tensor | None:
            if site in write:
                value = apply_write(write[site], value, site)
            if site in read_set:
                cache[site] = value
            return value if site in write else None
        return hook

    fwd_hooks = []
    for site in dict.fromkeys([*write, *read]):
        if site == "logits":
            continue
        if "hook_pattern" in site and site in write:
            raise NotImplementedError(
                f"Writing {site!r} is not supported by the TransformerLens bridge backend (the bridge's attention "
                "delegates to the HF module, which has consumed the pattern before the hook runs, so the bridge "
                "discards the edit). Patch the head's output 'attn.hook_z' instead.")
        fwd_hooks.append((hook_name(subject, site), make_hook(site)))

    kwargs = {k: v for k, v in batch.items() if k not in ("input_ids", "pixel_values")}
    position_ids = _position_ids(subject, batch)
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    # token_type_ids, attention_mask (and anything else in the batch) go through to the HF forward.
    logits = bridge.run_with_hooks(batch["input_ids"], fwd_hooks=fwd_hooks, return_type="logits", **kwargs)
    return logits_site(logits, read, write, cache), cache
