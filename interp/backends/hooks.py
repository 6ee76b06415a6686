"""The default backend: plain PyTorch forward hooks on the HuggingFace modules.

Fastest of the three (no tracing), and the only one that can resume a forward pass from any layer
(`run_from`), which lets patching skip the layers before the patched one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from interp import resume
from interp.arch import get_module
from interp.sites import parse_site


def apply_write(write: Any, value: torch.Tensor, site: str) -> torch.Tensor:
    """Apply a write (tensor or function) to a site value, checking the shape stays the same."""
    new = write(value) if callable(write) else write
    if not isinstance(new, torch.Tensor):
        raise TypeError(f"Write to {site!r} returned {type(new).__name__}, not a tensor.")
    if new.shape != value.shape:
        raise ValueError(f"Write to {site!r} has shape {tuple(new.shape)}; the site has shape {tuple(value.shape)}.")
    return new.to(value.dtype)


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new


@contextmanager
def installed(subject, read: Sequence[str], write: Mapping[str, Any], cache: dict) -> Iterator[None]:
    """Install hooks that read `read` into `cache` and apply `write`, for the duration of the block."""
    model, arch = subject.model, subject.arch
    handles = []
    wanted = list(dict.fromkeys([*write, *read]))
    n_heads = subject.n_heads

    def out_hook(site: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            value = _first(output)
            if site in write:
                value = apply_write(write[site], value, site)
            if site in read:
                cache[site] = value
            return _replace_first(output, value) if site in write else None
        return hook

    def z_hook(site: str) -> Callable:
        def hook(module: nn.Module, args: Any) -> Any:
            x = args[0]  # [batch, pos, head * d_head]
            z = x.view(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)  # [batch, pos, head, d_head]
            if site in write:
                z = apply_write(write[site], z, site)
            if site in read:
                cache[site] = z
            return (z.reshape(x.shape),) + tuple(args[1:]) if site in write else None
        return hook

    def pattern_hook(site: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if output[1] is None:
                raise RuntimeError(f"{site}: the model returned no attention pattern; use eager attention.")
            cache[site] = output[1]  # [batch, head, q_pos, k_pos]
        return hook

    try:
        for site in wanted:
            if site == "logits":
                continue
            s = parse_site(site, subject.n_layers, arch.kinds)
            if s.kind == "embed":
                handles.append(get_module(model, arch.embed).register_forward_hook(out_hook(site)))
                continue
            layer = subject.layers[s.layer]
            if s.kind == "hook_resid_post":
                handles.append(layer.register_forward_hook(out_hook(site)))
            elif s.kind == "hook_attn_out":
                handles.append(get_module(layer, arch.o_proj).register_forward_hook(out_hook(site)))
            elif s.kind == "hook_mlp_out":
                handles.append(get_module(layer, arch.mlp_out).register_forward_hook(out_hook(site)))
            elif s.kind == "hook_resid_mid":
                handles.append(get_module(layer, arch.resid_mid).register_forward_hook(out_hook(site)))
            elif s.kind == "attn.hook_z":
                handles.append(get_module(layer, arch.o_proj).register_forward_pre_hook(z_hook(site)))
            elif s.kind == "attn.hook_pattern":
                if site in write:
                    raise NotImplementedError(
                        f"Writing {site!r} is not supported by the hooks backend (the pattern is consumed inside "
                        "the attention kernel). Patch the head's output 'attn.hook_z' instead.")
                handles.append(get_module(layer, arch.pattern).register_forward_hook(pattern_hook(site)))
        yield
    finally:
        for h in handles:
            h.remove()


def _logits(subject, logits: torch.Tensor, read: Sequence[str], write: Mapping[str, Any],
            cache: dict) -> torch.Tensor:
    if "logits" in write:
        logits = apply_write(write["logits"], logits, "logits")
    if "logits" in read:
        cache["logits"] = logits
    return logits


def run(subject, batch: Mapping[str, torch.Tensor], read: Sequence[str],
        write: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    cache: dict[str, torch.Tensor] = {}
    with installed(subject, read, write, cache):
        logits = subject.model(**batch).logits  # [batch, n_labels]
    return _logits(subject, logits, read, write, cache), cache


class _Stop(Exception):
    pass


def layer_inputs(subject, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
    """The embedding output and the keyword arguments (attention mask etc.) every layer receives.

    Runs only the embeddings: the forward pass is stopped at the first layer.
    """
    got: dict[str, Any] = {}

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        got["h"] = args[0] if args else kwargs.pop("hidden_states")
        got["kwargs"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        if len(args) > 1:  # positional attention mask
            got["kwargs"]["attention_mask"] = args[1]
        raise _Stop

    handle = subject.layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        subject.model(**batch)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["h"], got["kwargs"]


def run_from(subject, start: int, h: torch.Tensor, layer_kwargs: Mapping[str, Any], read: Sequence[str] = (),
             write: Mapping[str, Any] | None = None, readout_only: bool = True
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Resume the forward pass at layer `start` from its input h [batch, pos, d_model].

    `h` is `embed` for start 0, else `blocks.{start-1}.hook_resid_post`. Sites before `start` can
    be neither read nor written. With `readout_only` and no site of the last layer read or written,
    that layer is computed at the readout position only (interp.resume; same logits to float rounding).
    """
    write = dict(write or {})
    last = subject.n_layers - 1
    touches_last = False
    for site in [*read, *write]:
        s = parse_site(site, subject.n_layers, subject.arch.kinds)
        if s.kind == "embed" or (s.layer is not None and s.layer < start):
            raise ValueError(f"run_from(start={start}) cannot reach site {site!r}: it comes before layer {start}.")
        touches_last |= s.layer == last
    cache: dict[str, torch.Tensor] = {}
    with installed(subject, read, write, cache):
        if readout_only and not touches_last and resume.supported(subject):  # last layer at the readout position only
            logits = resume.finish(subject, start, h, layer_kwargs)
        else:
            for layer in subject.layers[start:]:
                h = _first(layer(h, **layer_kwargs))
            logits = subject.arch.head(subject.model, h)
    return _logits(subject, logits, read, write, cache), cache


def expand_kwargs(layer_kwargs: Mapping[str, Any], repeats: int) -> dict[str, Any]:
    """Repeat batched tensors in layer kwargs (the attention mask) `repeats` times along the batch."""
    out = {}
    for k, v in layer_kwargs.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] > 1:
            v = v.repeat(repeats, *([1] * (v.dim() - 1)))  # tiled: copy k of row i is row k * batch + i
        out[k] = v
    return out
