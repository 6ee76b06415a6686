"""Subject: a model, its tokenizer and its site map, behind one `run` that reads and writes sites.

Everything downstream (capture, CKA, patching, comparison) talks to a Subject, never to a backend.

    subject = load_subject("path/to/checkpoint")                 # device="auto": CUDA when available
    logits, cache = subject.run(("A man sleeps.", "A person sleeps."), read="blocks.*.attn.hook_z")
    cache["z", 1]                                                 # [batch, pos, head, d_head], detached
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interp.arch import Arch, detect_arch, get_layers
from interp.cache import ActivationCache
from interp.inputs import as_examples, tokenize
from interp.loading import check_tokenizer, load_folder, model_fingerprint
from interp.sites import SiteSpec, all_sites, expand_sites, parse_site

# A write is a replacement tensor in the site's canonical shape or a function value -> new value.
Write = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
# What `Subject.run` runs on: a string, a (premise, hypothesis) tuple, an example dict, a list of these,
# or a token batch (a mapping with input_ids / pixel_values tensors, or an input_ids tensor).
Inputs = str | tuple | Mapping[str, Any] | Iterable[Any] | torch.Tensor
BACKENDS = ("hooks", "nnsight", "tl")


@dataclass
class Subject:
    """A model under study. `run(inputs, read, write)` returns (logits, ActivationCache)."""

    model: nn.Module
    tokenizer: Any
    arch: Arch
    backend: str = "hooks"
    name: str = "model"
    bridge: Any = None  # the TransformerBridge, for the "tl" backend
    _fingerprint: str | None = field(default=None, repr=False)

    # --- shape facts -------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        cfg = self.config
        return int(getattr(cfg, "num_attention_heads", None) or cfg.n_heads)

    @property
    def d_model(self) -> int:
        cfg = self.config
        return int(getattr(cfg, "hidden_size", None) or cfg.dim)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def labels(self) -> list[str]:
        """Label names in logit order."""
        id2label = self.config.id2label
        return [str(id2label[i]) for i in range(len(id2label))]

    @property
    def layers(self) -> nn.ModuleList:
        layers = get_layers(self.model, self.arch)
        if not isinstance(layers, nn.ModuleList):
            raise TypeError(f"{self.arch.layers} is a {type(layers).__name__}, not the ModuleList of layers.")
        return layers

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def sites(self) -> list[str]:
        return all_sites(self.n_layers, self.arch.kinds)

    def expand(self, patterns: SiteSpec) -> list[str]:
        """Names, globs or predicates -> site names in forward order: `subject.expand("blocks.*.hook_resid_post")`,
        `subject.expand(lambda s: s.endswith("hook_z"))`. A single string is one pattern."""
        return expand_sites(patterns, self.n_layers, self.arch.kinds)

    def check_site(self, name: str) -> None:
        parse_site(name, self.n_layers, self.arch.kinds)

    # --- running ---------------------------------------------------------------------------
    def tokenize(self, examples: Sequence[dict], max_length: int = 128) -> dict[str, torch.Tensor]:
        batch = tokenize(self.tokenizer, examples, max_length)
        if getattr(self.config, "type_vocab_size", 2) == 1:  # one segment (RoBERTa): a BERT-style tokenizer's
            batch.pop("token_type_ids", None)               # segment-1 ids would index past the table
        return {k: v.to(self.device) for k, v in batch.items()}

    def check_ready(self) -> None:
        """Errors for states that silently give wrong numbers: any submodule in train mode, hidden patterns."""
        training = train_mode_modules(self.model)
        if training:
            raise RuntimeError(f"{self.name}: {_describe_training(training)} in train mode (dropout is active, "
                               "results are random). Call subject.model.eval() first.")
        impl = getattr(self.config, "_attn_implementation", "eager")
        if impl not in (None, "eager"):
            raise RuntimeError(
                f"{self.name}: attention implementation is {impl!r}, which hides attention patterns. Load with "
                "attn_implementation='eager' (load_subject does this for folders) or call "
                "model.set_attn_implementation('eager').")

    def as_batch(self, inputs: Inputs, max_length: int = 128) -> tuple[dict[str, torch.Tensor], list[dict] | None]:
        """Model inputs on the model's device, and the examples they were tokenised from (None for a batch)."""
        if isinstance(inputs, torch.Tensor):
            key = "input_ids" if not inputs.is_floating_point() else "pixel_values"
            batch = {key: inputs if inputs.dim() > (1 if key == "input_ids" else 3) else inputs[None]}
            return {k: v.to(self.device) for k, v in batch.items()}, None
        if isinstance(inputs, Mapping) and any(isinstance(v, torch.Tensor) for v in inputs.values()) \
                and ("input_ids" in inputs or "pixel_values" in inputs):
            return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}, None
        one = isinstance(inputs, (str, Mapping)) or (isinstance(inputs, tuple) and len(inputs) == 2
                                                     and all(isinstance(x, str) for x in inputs))
        examples = as_examples([inputs] if one else list(inputs))
        return self.tokenize(examples, max_length), examples

    def run(self, inputs: Inputs, read: SiteSpec = (), write: Mapping[str, Write] | None = None, *,
            grad: bool = False, max_length: int = 128) -> tuple[torch.Tensor, ActivationCache]:
        """One forward pass: logits [batch, n_labels] and an ActivationCache of the `read` sites.

        `inputs`: a string, a (premise, hypothesis) tuple, an example dict, a list of these, or a token
        batch (a tuple of two strings is one sentence pair; a list of strings is several texts).
        `read`: site names, globs ("blocks.*.attn.hook_z") or predicates on the name, or a list of them.
        `write`: {site: tensor in the site's shape, or function value -> new value}. Values are read after
        any write to the same site. Runs under `torch.no_grad()` and returns detached values; `grad=True`
        keeps the autograd graph (attribution patching: d metric / d site).
        """
        self.check_ready()
        write = dict(write or {})
        names = self.expand(read) if read else []
        for name in write:
            self.check_site(name)
        batch, examples = self.as_batch(inputs, max_length)
        with torch.enable_grad() if grad else torch.no_grad():
            logits, values = _backend(self.backend).run(self, batch, names, write)
        return logits, ActivationCache(values, self.n_layers, batch, examples)

    @property
    def fingerprint(self) -> str:
        """sha256 over parameter names, shapes and bytes: identifies the exact weights."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint


def train_mode_modules(model: nn.Module) -> list[tuple[str, int]]:
    """The outermost submodules in train mode, in module order, each with how many of its own submodules
    are in train mode too: `[("bert.encoder.layer.2", 5)]`; `[("", n)]` when the whole model is."""
    tops: list[list] = []  # [name, count under it]
    for name, module in model.named_modules():
        if not module.training:
            continue
        top = next((t for t in tops if t[0] == "" or name.startswith(t[0] + ".")), None)
        if top is None:
            tops.append([name, 0])
        else:
            top[1] += 1
    return [(n, c) for n, c in tops]


def _describe_training(tops: list[tuple[str, int]], show: int = 3) -> str:
    """"model is", "submodule a.b (and 5 submodules under it) is", "submodules a, b and 2 more are"."""
    if tops[0][0] == "":
        return "model is"
    named = [n + (f" (and {c} submodule{'s' * (c != 1)} under it)" if c else "") for n, c in tops[:show]]
    more = f" and {len(tops) - show} more" if len(tops) > show else ""
    return f"submodule{'s' * (len(tops) > 1)} {', '.join(named)}{more} {'are' if len(tops) > 1 else 'is'}"


def _backend(name: str):
    if name == "hooks":
        from interp.backends import hooks
        return hooks
    if name == "nnsight":
        from interp.backends import nnsight_backend
        return nnsight_backend
    if name == "tl":
        from interp.backends import tl_bridge
        return tl_bridge
    raise ValueError(f"Unknown backend {name!r}; choose one of {BACKENDS}.")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_subject(source: Any, tokenizer: Any = None, backend: str = "hooks", num_labels: int | None = None,
                 device: str | torch.device = "auto", name: str | None = None, native: bool = True) -> Subject:
    """A Subject from a checkpoint folder, an in-memory HF classifier, or a TransformerLens bridge.

    `device="auto"` puts the model on CUDA when available, else on the CPU; inputs follow the model.
    Folders load from local files only (never the hub) with eager attention. A bare encoder checkpoint (e.g. MiniLM's BertModel)
    becomes a sequence classifier with a new head of `num_labels` (default 3), initialised from seed 0.
    With the hooks backend, a trained BERT classifier folder loads as `interp.native_bert`'s model and
    `interp.native_tokenizer`'s tokenizer (the same modules, weights, logits and token ids, without importing
    transformers: 3-4 s on a 2-core CPU); `native=False` loads transformers' own.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
    if type(source).__name__ == "TransformerBridge":
        return subject_from_bridge(source, tokenizer=tokenizer, name=name)
    if isinstance(source, (str, os.PathLike)):
        # the hooks backend runs the native BERT when it covers the folder; nnsight and TL wrap transformers' model
        model, tok = load_folder(Path(source), num_labels, native=native and backend == "hooks")
        tokenizer = tokenizer if tokenizer is not None else tok
        name = name or Path(source).name
    elif isinstance(source, nn.Module):
        model = source
    else:
        raise TypeError(f"load_subject takes a checkpoint folder, a transformers model or a TransformerBridge, "
                        f"not {type(source).__name__}.")
    arch = detect_arch(model)
    if backend not in arch.backends:
        raise ValueError(f"The {backend!r} backend cannot run {type(model).__name__}; use one of {arch.backends}.")
    if arch.modality == "text":
        check_tokenizer(model, tokenizer)
    model.to(resolve_device(device))
    subject = Subject(model=model, tokenizer=tokenizer, arch=arch, backend=backend,
                      name=name or type(model).__name__)
    if isinstance(source, (str, os.PathLike)):
        model.eval()
    subject.check_ready()
    return subject


def subject_from_bridge(bridge: Any, tokenizer: Any = None, name: str | None = None) -> Subject:
    """A Subject (backend "tl") whose `model` is the TransformerLens bridge's underlying HF model."""
    from interp.backends.tl_bridge import bridge_fingerprint, check_bridge

    model = check_bridge(bridge)
    tokenizer = tokenizer if tokenizer is not None else bridge.tokenizer
    check_tokenizer(model, tokenizer)
    subject = Subject(model=model, tokenizer=tokenizer, arch=detect_arch(model), backend="tl", bridge=bridge,
                      name=name or type(model).__name__, _fingerprint=bridge_fingerprint(bridge))
    subject.check_ready()
    return subject
