"""Interventions on a batch resumed from the layer they touch: the batch with every clean layer input
cached (`prepare`), hooked resumes (`resume`, `head_write`) and the engine's exact shortcuts for z and
residual patches (`after_z`, `readout_chain`: the total effect with the last layer at the readout row, the
direct effect at the readout row only). Shared by head effects (interp.compare) and cross-model patching
(interp.cross_patch)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp import engine
from interp.cache import ActivationCache
from interp.inputs import batches
from interp.signal import check_finite
from interp.subject import Subject


@dataclass
class Batch:
    """A tokenised batch with the clean value of every layer input cached."""

    inputs: dict[str, torch.Tensor]
    layer_in: list[torch.Tensor]    # [n_layers] of [batch, pos, d_model]
    kwargs: dict
    clean_logits: torch.Tensor      # [batch, n_labels]


def prepare(subject: Subject, examples: Sequence[dict], batch_size: int, max_length: int = 128,
            extra_reads: Sequence[str] = ()) -> list[tuple[Batch, ActivationCache]]:
    """The examples in tokenised batches, each with its clean layer inputs, logits and the `extra_reads`."""
    out = []
    resid = subject.expand("blocks.*.hook_resid_post")
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            inputs = subject.tokenize(chunk, max_length)
            h0, kwargs = engine.layer_inputs(subject, inputs)
            logits, cache = subject.run(inputs, read=[*resid, *extra_reads])
            for s in resid:  # the first layer that turns NaN / inf is the one named
                check_finite(cache[s], f"{subject.name}, {s}")
            layer_in = [h0] + [cache[s] for s in resid[:-1]]
            out.append((Batch(inputs, layer_in, kwargs, logits), cache))
    return out


def token_mask(b: Batch) -> torch.Tensor:
    """[batch, pos] 1 at real tokens: the attention mask of text, all ones for images (ViT patches)."""
    if "attention_mask" in b.inputs:
        return b.inputs["attention_mask"]
    return torch.ones(b.layer_in[0].shape[:2], dtype=b.layer_in[0].dtype, device=b.layer_in[0].device)


def resume(subject: Subject, b: Batch, start: int, write: Mapping[str, Any]) -> torch.Tensor:
    """Logits of the batch resumed at layer `start` with the hook `write`s (interp.engine.run_from)."""
    logits, _ = engine.run_from(subject, start, b.layer_in[start], b.kwargs, write=write)
    return logits


def head_write(h: int, value: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Replace head h of z [batch, pos, head, d_head] by `value` ([batch, pos, d_head] or [d_head])."""
    def write(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, h] = value if value is not None else 0.0
        return z
    return write


def readout_chain(subject: Subject, cache: ActivationCache, start: int, h: torch.Tensor) -> torch.Tensor:
    """Logits when the readout row h [..., 1, d] leaves layer start - 1 and every later layer's attn_out and
    mlp_out keep their cached values: only the residual stream and LayerNorms, which act per position."""
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    for j in range(start, subject.n_layers):
        mid = engine.resid_mid(subject, j, h, cache[f"blocks.{j}.hook_attn_out"][:, row])
        h = engine.from_mlp_out(subject, j, mid, cache[f"blocks.{j}.hook_mlp_out"][:, row])
    return subject.arch.head(subject.model, h.flatten(0, -3))


def after_z(subject: Subject, b: Batch, cache: ActivationCache, layer: int, zz: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [copies * batch, labels] when layer `layer`'s z is zz [copies, batch, pos, head, d_head]
    (copy k of row i is row k * batch + i), through the engine's shortcuts: total (later layers recomputed,
    the last at the readout row only) and direct (later attn_out / mlp_out at their cached values: the
    readout row alone is computed)."""
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    h_in = b.layer_in[layer]                                                   # [batch, pos, d]
    direct = readout_chain(subject, cache, layer + 1, engine.from_z(subject, layer, h_in[:, row], zz[:, :, row]))
    if layer == subject.n_layers - 1:
        return direct, direct  # nothing after the last layer: the total effect is the direct one
    out = engine.from_z(subject, layer, h_in, zz).flatten(0, 1)                # [copies * batch, pos, d]
    return engine.finish(subject, layer + 1, out, engine.expand_kwargs(b.kwargs, zz.shape[0])), direct
