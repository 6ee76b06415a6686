"""The forward-pass engine: run with reads and writes, resume from a layer, and exact shortcuts.

Every analysis that intervenes on a forward pass (patching, attribution, weight patching, circuits,
teacher/student comparison) calls this module, never a backend's internals. It works on the
HuggingFace modules with plain PyTorch hooks (the default `hooks` backend is `run` below), and it is
the only path that can resume a forward pass from any layer (`run_from`), which lets patching skip
the layers before the patched one.

Reads and writes:
- `run(subject, batch, read, write)`: one forward pass; `read` sites are cached, `write` maps a site
  to a tensor or a function of its value. `installed` is the same hooks as a context manager.
- `layer_inputs(subject, batch)`: the embedding output and the keyword arguments every layer gets;
  `run_from(subject, start, h, layer_kwargs, read, write)` resumes at layer `start` from its input h;
  `expand_kwargs` tiles those kwargs for a batch repeated k times.

Exact shortcuts for finishing a forward pass that an intervention has changed, used by patching
sweeps (many copies of a batch, each differing at one layer) to skip work a plain forward pass
would do, without changing the result beyond float rounding:
- **Resume inside a layer.** Patching a head's z (or attn_out, or mlp_out) at layer l leaves the
  layer's query/key/value projections and attention scores unchanged, so the layer is finished
  from the patched attn_out (or mlp_out) instead of being run again (`from_z`, `from_attn_out`,
  `from_mlp_out`, `from_outputs`, `head_z`).
- **Compute the last layer at the readout position only.** A sequence classifier reads one
  position of the last layer (the [CLS] / `<s>` token at position 0 for every family here), so the
  last layer needs keys and values at every position but a query, attention output, LayerNorm and
  MLP at position 0 alone (`readout_layer`, `finish`).

Layer math by family, dropout omitted (subjects are in eval mode):
  post-LN (BERT, RoBERTa, DistilBERT): mid = ln_attn(attn_out + h); out = ln_mlp(mlp(mid) + mid)
  pre-LN (ViT):                        mid = attn_out + h;          out = mid + mlp(ln_mlp(mid)),
                                       with queries/keys/values read from ln_attn(h).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from interp.arch import get_linear, get_module
from interp.sites import parse_site


# --- reads and writes ----------------------------------------------------------------------
def apply_write(write: Any, value: torch.Tensor, site: str) -> torch.Tensor:
    """Apply a write (tensor or function) to a site value, checking the shape stays the same."""
    new = write(value) if callable(write) else write
    if not isinstance(new, torch.Tensor):
        raise TypeError(f"Write to {site!r} returned {type(new).__name__}, not a tensor.")
    if new.shape != value.shape:
        raise ValueError(f"Write to {site!r} has shape {tuple(new.shape)}; the site has shape {tuple(value.shape)}.")
    return new.to(value.dtype)


def first_output(output: Any) -> torch.Tensor:
    """The hidden states of a module's output (HuggingFace layers return a tuple, others a tensor)."""
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new


@contextmanager
def installed(subject, read: Sequence[str], write: Mapping[str, Any], cache: dict) -> Iterator[None]:
    """Install hooks that read `read` into `cache` and apply `write`, for the duration of the block."""
    model, arch = subject.model, subject.arch
    handles = []
    wanted = list(dict.fromkeys([*write, *read]))
    extra = dict(arch.extra_out)

    def out_hook(site: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            value = first_output(output)
            if site in write:
                value = apply_write(write[site], value, site)
            if site in read:
                cache[site] = value
            return _replace_first(output, value) if site in write else None
        return hook

    def z_hook(site: str) -> Callable:
        def hook(module: nn.Module, args: Any) -> Any:
            x = args[0]  # [batch, pos, head * d_head]
            z = rearrange(x, "... (head d_head) -> ... head d_head", head=subject.n_heads)  # [batch, pos, head, d_head]
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
            elif s.kind in extra:  # family-specific module outputs (ResNet: hook_branch_out)
                handles.append(get_module(layer, extra[s.kind]).register_forward_hook(out_hook(site)))
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


def logits_site(logits: torch.Tensor, read: Sequence[str], write: Mapping[str, Any], cache: dict) -> torch.Tensor:
    """Apply a write to the `logits` site [batch, n_labels] and record it in `cache` if read (every backend)."""
    if "logits" in write:
        logits = apply_write(write["logits"], logits, "logits")
    if "logits" in read:
        cache["logits"] = logits
    return logits


def run(subject, batch: Mapping[str, torch.Tensor], read: Sequence[str] = (),
        write: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass: logits [batch, n_labels] and the `read` sites, with `write` applied (the hooks backend)."""
    write = dict(write or {})
    cache: dict[str, torch.Tensor] = {}
    with installed(subject, read, write, cache):
        logits = subject.model(**batch).logits  # [batch, n_labels]
    return logits_site(logits, read, write, cache), cache


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
    that layer is computed at the readout position only (`finish`; same logits to float rounding).
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
        if readout_only and not touches_last and shortcuts_supported(subject):  # last layer at the readout row only
            logits = finish(subject, start, h, layer_kwargs)
        else:
            for layer in subject.layers[start:]:
                h = first_output(layer(h, **layer_kwargs))
            logits = subject.arch.head(subject.model, h)
    return logits_site(logits, read, write, cache), cache


def expand_kwargs(layer_kwargs: Mapping[str, Any], repeats: int) -> dict[str, Any]:
    """Repeat batched tensors in layer kwargs (the attention mask) `repeats` times along the batch."""
    out = {}
    for k, v in layer_kwargs.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] > 1:
            v = v.repeat(repeats, *([1] * (v.dim() - 1)))  # tiled: copy k of row i is row k * batch + i
        out[k] = v
    return out


# --- exact shortcuts -----------------------------------------------------------------------
READOUT_POS = 0  # every supported classifier head reads position 0 of the last layer


def shortcuts_supported(subject: Any) -> bool:
    """True when the subject is a HuggingFace classifier of a family whose layers the shortcuts recompute."""
    return subject.arch.layer_math is not None and type(subject.model).__name__ in subject.arch.model_classes


def layer_module(subject: Any, layer: int, path: str) -> nn.Module:
    """The submodule at `path` (an `Arch` path such as `arch.o_proj`) of layer `layer`."""
    return get_module(subject.layers[layer], path)


def mlp(subject: Any, layer: int, x: torch.Tensor) -> torch.Tensor:
    """mlp_out from the MLP's input x [..., pos, d_model] (post-LN: resid_mid; pre-LN: its LayerNorm)."""
    for path in subject.arch.mlp_modules:
        x = layer_module(subject, layer, path)(x)
    return x


def after_sum(subject: Any, layer: int, x: torch.Tensor, which: str) -> torch.Tensor:
    """The stream from the residual sum x [..., pos, d_model] after the layer's attention (`which` "attn":
    x = h + attn_out) or MLP ("mlp": x = resid_mid + mlp_out): post-LN, that sum's LayerNorm; pre-LN, x."""
    p = subject.arch.layer_math
    return x if p.pre_ln else layer_module(subject, layer, p.ln_attn if which == "attn" else p.ln_mlp)(x)


def resid_mid(subject: Any, layer: int, h: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """The layer's state after attention, from its input h and attn_out [..., pos, d_model]."""
    return after_sum(subject, layer, attn_out + h, "attn")


def from_mlp_out(subject: Any, layer: int, mid: torch.Tensor, mlp_out: torch.Tensor) -> torch.Tensor:
    """The layer's output from its post-attention state and (patched) mlp_out."""
    return after_sum(subject, layer, mlp_out + mid, "mlp")


def from_attn_out(subject: Any, layer: int, h: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """The layer's output from its input h and a (patched) attn_out; shapes broadcast [..., pos, d_model]."""
    p = subject.arch.layer_math
    mid = resid_mid(subject, layer, h, attn_out)
    mlp_in = layer_module(subject, layer, p.ln_mlp)(mid) if p.pre_ln else mid
    return from_mlp_out(subject, layer, mid, mlp(subject, layer, mlp_in))


def attn_out_of(subject: Any, layer: int, z: torch.Tensor) -> torch.Tensor:
    """attn_out [..., pos, d_model] from per-head z [..., pos, head, d_head] (the output projection)."""
    return layer_module(subject, layer, subject.arch.o_proj)(z.flatten(-2))


def from_z(subject: Any, layer: int, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The layer's output from its input h and (patched) per-head z [..., pos, head, d_head]."""
    return from_attn_out(subject, layer, h, attn_out_of(subject, layer, z))


def from_outputs(subject: Any, layer: int, h: torch.Tensor, z: torch.Tensor, mlp_out: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(resid_mid, output) of a layer whose z and mlp_out are both given: neither its attention nor
    its MLP runs, only the output projection and the residual/LayerNorm algebra."""
    mid = resid_mid(subject, layer, h, attn_out_of(subject, layer, z))
    return mid, from_mlp_out(subject, layer, mid, mlp_out)


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The layer's attention mask [batch, 1, q_pos, k_pos] as additive scores (bool masks converted)."""
    if mask.dim() != 4:
        raise ValueError(f"Expected the [batch, 1, q_pos, k_pos] attention mask a layer receives, got shape "
                         f"{tuple(mask.shape)}; pass the layer kwargs from interp.engine.layer_inputs.")
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask


def attend(subject: Any, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            attention_mask: torch.Tensor | None, q_rows: slice) -> torch.Tensor:
    """HuggingFace eager attention: q [B, H, q, dh], k, v [B, H, pos, dh] -> z [B, q, H, dh]; the mask's
    query rows `q_rows` are used (a mask broadcast over queries is used as it is)."""
    scaling = getattr(layer_module(subject, layer, subject.arch.layer_math.attn), "scaling", q.shape[-1] ** -0.5)
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling  # [B, H, q, pos]
    if attention_mask is not None:
        m = _additive(attention_mask, scores.dtype)
        scores = scores + (m[:, :, q_rows] if m.shape[-2] > 1 else m)
    return torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)


def head_z(subject: Any, layer: int, head: int, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor,
           attention_mask: torch.Tensor | None, q_rows: slice = slice(None)) -> torch.Tensor:
    """One head's z [B, q, d_head] when its query, key and value projections read different inputs
    (q_in [B, q, d_model] at positions `q_rows`; k_in, v_in [B, pos, d_model]), the rest of the layer
    as usual. For pre-LN families the inputs are those after the attention LayerNorm."""
    p = subject.arch.layer_math
    dh = subject.d_head
    rows = slice(head * dh, (head + 1) * dh)

    def proj(path: str, x: torch.Tensor) -> torch.Tensor:  # [B, pos, d_model] -> [B, 1, pos, d_head]
        lin = get_linear(subject.layers[layer], path)
        bias = lin.bias[rows] if lin.bias is not None else None
        return F.linear(x, lin.weight[rows], bias)[:, None]

    z = attend(subject, layer, proj(p.q, q_in), proj(p.k, k_in), proj(p.v, v_in), attention_mask, q_rows)
    return z[:, :, 0]


def readout_layer(subject: Any, layer: int, h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Layer `layer` computed at the readout position only: [batch, 1, d_model] from h [batch, pos, d_model].

    Keys and values use every position; the query, attention output and MLP only position 0. Mirrors
    HuggingFace's eager attention (scores * scaling + additive mask, softmax, weighted values).
    """
    p = subject.arch.layer_math
    x = layer_module(subject, layer, p.ln_attn)(h) if p.pre_ln else h
    row = slice(READOUT_POS, READOUT_POS + 1)
    z = attention_z(subject, layer, x, attention_mask, row)  # [B, 1, H, dh]
    return from_z(subject, layer, h[:, row], z)


def attention_z(subject: Any, layer: int, x: torch.Tensor, attention_mask: torch.Tensor | None,
                q_rows: slice = slice(None)) -> torch.Tensor:
    """Every head's z [B, q, head, d_head] of the layer from its attention input x [B, pos, d_model]
    (pre-LN: after the attention LayerNorm), queries at positions `q_rows`, keys and values everywhere."""
    p = subject.arch.layer_math
    H = subject.n_heads

    def heads(path: str, xx: torch.Tensor) -> torch.Tensor:  # [B, n, d_model] -> [B, H, n, dh]
        return rearrange(layer_module(subject, layer, path)(xx), "b n (head d_head) -> b head n d_head", head=H)

    return attend(subject, layer, heads(p.q, x[:, q_rows]), heads(p.k, x), heads(p.v, x), attention_mask, q_rows)


def finish(subject: Any, start: int, h: torch.Tensor, layer_kwargs: Mapping[str, Any]) -> torch.Tensor:
    """Logits from layer `start`'s input h [batch, pos, d_model] (pos may be 1 once only the readout
    row is left): full layers up to the last, which is computed at the readout position only."""
    L = subject.n_layers
    for layer in subject.layers[start:L - 1]:
        h = first_output(layer(h, **layer_kwargs))
    if start <= L - 1:
        h = readout_layer(subject, L - 1, h, layer_kwargs.get("attention_mask"))
    return subject.arch.head(subject.model, h)
