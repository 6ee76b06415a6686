"""Weight (parameter) patching: which component's *parameters* make the difference between two models.

For each component of the base model (usually the student) the base's own forward pass is run with
that component's parameters swapped in from a source model (the teacher, or a reference student of
the same architecture), and the change of the metric is scored. Activation patching asks "would
the source's activation here fix the base?" and credits every component whose activations changed,
including an untouched component downstream of a changed one; weight patching asks "would the
source's parameters here fix it?" and so isolates changed parameters. For a student copied from
teacher layers and then damaged, untouched components score exactly 0 and a damaged one scores the
effect of repairing it alone.

Components (`kinds=`), per base layer l mapped to source layer `layer_map[l]`:
| kind      | parameters swapped                                                        | label         |
| --------- | ------------------------------------------------------------------------- | ------------- |
| `head`    | the head's rows of the query, key and value projections (weights, biases) | `head l.h<-Ts.k` |
|           | and its columns of the attention output projection                        |               |
| `mlp`     | the MLP (both linear layers)                                              | `mlp l<-Ts`   |
| `ln_attn` | the attention LayerNorm (post-LN: after attention; pre-LN: before it)     | `ln_attn l<-Ts` |
| `ln_mlp`  | the MLP LayerNorm                                                         | `ln_mlp l<-Ts` |
| `layer`   | every parameter of the layer                                              | `layer l<-Ts` |
| `embed`   | the embedding block                                                       | `embed`       |
| `readout` | everything after the last layer (pooler, classifier)                      | `readout`     |
The attention output projection's bias belongs to no head (it is in `layer`).

Correspondence. Parameters correspond by where they came from, not by what they compute: a
student initialised from teacher layers maps student layer j to teacher layer `kd_init.layers[j]`
and head h to head h (`init_correspondence`); same-architecture checkpoints map by index; a
`HeadMap` (matching by function) can be passed instead. Widths and families must agree.

How it is fast and exact: one forward of the base caches every layer's input and sites; for the K
components of layer l the batch is expanded K times and the pass resumes at layer l, where copy k
computes layer l with component k swapped by algebra on the cached values (a head: only that head's
z recomputed, with the source's q/k/v rows; its output-projection columns swapped), then finishes
with interp.engine.finish (last layer at the readout row only). A component whose parameters already
equal the source's is not run: its effect is exactly 0. Tested against one full forward per
component of a model with the parameters swapped.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from interp import engine
from interp.arch import get_linear, get_module
from interp.engine import expand_kwargs, first_output, layer_inputs
from interp.inputs import as_examples, batches
from interp.progress import bar as progress_bar
from interp.signal import check_finite

KINDS = ("head", "mlp", "ln_attn", "ln_mlp", "layer", "embed", "readout")
DEFAULT_KINDS = KINDS


@dataclass(frozen=True)
class WeightComponent:
    """One swappable component: base layer/head and the source layer/head it takes parameters from."""

    kind: str
    layer: int = -1          # base layer (-1 for embed / readout)
    head: int = -1
    src_layer: int = -1
    src_head: int = -1

    @property
    def label(self) -> str:
        if self.kind in ("embed", "readout"):
            return self.kind
        if self.kind == "head":
            return f"head {self.layer}.{self.head}<-T{self.src_layer}.{self.src_head}"
        return f"{self.kind} {self.layer}<-T{self.src_layer}"


def init_correspondence(base: Any, source: Any) -> dict[int, int] | None:
    """base layer -> source layer from where the base's parameters came from: the student's recorded
    init (`config.kd_init`, teacher layers), or the identity for two models of the same depth."""
    from interp.pair import default_layer_map

    init = default_layer_map(source, base)
    if init is not None and len(init) == base.n_layers and max(init.values()) < source.n_layers:
        return init
    if base.n_layers == source.n_layers:
        return {l: l for l in range(base.n_layers)}
    return None


def check_swappable(base: Any, source: Any) -> None:
    """Weight patching needs one family and equal widths: parameters are copied tensor for tensor."""
    if base.arch.family != source.arch.family:
        raise ValueError(f"Weight patching swaps parameters between models of one family; base is "
                         f"{base.arch.family}, source {source.arch.family}. Use cross-model activation patching "
                         "(interp.compare.cross_patch) across families.")
    if (base.d_model, base.n_heads, base.d_head) != (source.d_model, source.n_heads, source.d_head):
        raise ValueError(f"Weight patching needs equal widths: base (d_model, heads, d_head) = "
                         f"{(base.d_model, base.n_heads, base.d_head)}, source {(source.d_model, source.n_heads, source.d_head)}. "
                         "For a narrower student use cross-model activation patching with fitted maps.")
    if not engine.shortcuts_supported(base):
        raise ValueError(f"Weight patching needs the layer math of the {base.arch.family!r} family "
                         "(interp.arch.LayerMath), which this model lacks.")


def components(base: Any, source: Any, layer_map: dict[int, int] | None = None, head_map: Any = None,
               kinds: Sequence[str] = DEFAULT_KINDS) -> list[WeightComponent]:
    """The components of `base` to swap, each with its source layer/head (see the module doc)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"Unknown weight-patching kind(s) {bad}; choose from {KINDS}.")
    layer_map = layer_map if layer_map is not None else init_correspondence(base, source)
    if layer_map is None:
        raise ValueError(f"No layer correspondence: the base ({base.n_layers} layers) records no teacher-layer init "
                         f"and the source has {source.n_layers} layers. Pass layer_map={{base layer: source layer}}.")
    out = [WeightComponent("embed")] if "embed" in kinds else []
    for l in range(base.n_layers):
        if l not in layer_map:
            continue
        s = layer_map[l]
        if "head" in kinds:
            for h in range(base.n_heads):
                if head_map is None:
                    out.append(WeightComponent("head", l, h, s, h))
                else:
                    t = head_map.matches.get((l, h))
                    if t is not None:
                        out.append(WeightComponent("head", l, h, t[0], t[1]))
        out += [WeightComponent(k, l, -1, s, -1) for k in ("mlp", "ln_attn", "ln_mlp", "layer") if k in kinds]
    if "readout" in kinds:
        out.append(WeightComponent("readout"))
    return out


# --- which parameters a component owns ------------------------------------------------------------
def _head_params(subject: Any, layer: int, head: int) -> list[torch.Tensor]:
    lm = subject.arch.layer_math
    blk = subject.layers[layer]
    rows = slice(head * subject.d_head, (head + 1) * subject.d_head)
    out = []
    for path in (lm.q, lm.k, lm.v):
        lin = get_linear(blk, path)
        out += [lin.weight[rows]] + ([lin.bias[rows]] if lin.bias is not None else [])
    return out + [get_linear(blk, subject.arch.o_proj).weight[:, rows]]


def _params_outside(subject: Any, skip: tuple[str, ...]) -> list[torch.Tensor]:
    return [p for n, p in sorted(subject.model.named_parameters()) if not n.startswith(skip)]


def params_of(subject: Any, kind: str, layer: int = -1, head: int = -1) -> list[torch.Tensor]:
    """The parameter tensors (views) a component owns, in a fixed order."""
    if kind == "embed":
        return [p for _, p in sorted(get_module(subject.model, subject.arch.embed).named_parameters())]
    if kind == "readout":
        return _params_outside(subject, (subject.arch.embed, subject.arch.layers))
    blk = subject.layers[layer]
    lm = subject.arch.layer_math
    if kind == "head":
        return _head_params(subject, layer, head)
    if kind == "layer":
        return [p for _, p in sorted(blk.named_parameters())]
    paths = {"mlp": subject.arch.mlp_modules, "ln_attn": (lm.ln_attn,), "ln_mlp": (lm.ln_mlp,)}[kind]
    return [p for path in paths for _, p in sorted(get_module(blk, path).named_parameters())]


def unchanged(base: Any, source: Any, c: WeightComponent) -> bool:
    """True when the component's parameters in base equal the source's bit for bit."""
    a = params_of(base, c.kind, c.layer, c.head)
    b = params_of(source, c.kind, c.src_layer, c.src_head)
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y.to(x.device)) for x, y in zip(a, b))


# --- one layer with one component swapped, from cached values ------------------------------------
@dataclass
class _Layer:
    """Cached base values at one layer (query side already cut to `rows`)."""

    h: torch.Tensor        # layer input, all positions [B, pos, d]
    z: torch.Tensor        # [B, q, head, d_head]
    attn_out: torch.Tensor  # [B, q, d]
    mid: torch.Tensor      # resid_mid [B, q, d]
    mlp_out: torch.Tensor  # [B, q, d]
    rows: slice
    mask: torch.Tensor | None


def _swapped_layer(base: Any, source: Any, c: WeightComponent, v: _Layer, kwargs: dict) -> torch.Tensor:
    """Base layer c.layer's output [B, q, d] with component c's parameters taken from the source."""
    l, s = c.layer, c.src_layer
    p = base.arch.layer_math
    if c.kind == "layer":
        if v.rows == slice(None):
            return first_output(source.layers[s](v.h, **kwargs))
        return engine.readout_layer(source, s, v.h, v.mask)
    if c.kind == "head":
        x = engine.layer_module(base, l, p.ln_attn)(v.h) if p.pre_ln else v.h  # the attention input
        z_new = engine.head_z(source, s, c.src_head, x[:, v.rows], x, x, v.mask, v.rows)  # [B, q, d_head]
        dh = base.d_head
        z = v.z.clone()
        z[:, :, c.head] = z_new
        w_src = get_linear(source.layers[s], source.arch.o_proj).weight[:, c.src_head * dh:(c.src_head + 1) * dh]
        w_base = get_linear(base.layers[l], base.arch.o_proj).weight[:, c.head * dh:(c.head + 1) * dh]
        attn_out = engine.attn_out_of(base, l, z) + F.linear(z_new, w_src - w_base)
        return engine.from_attn_out(base, l, v.h[:, v.rows], attn_out)
    if c.kind == "mlp":
        mlp_in = engine.layer_module(base, l, p.ln_mlp)(v.mid) if p.pre_ln else v.mid
        return engine.from_mlp_out(base, l, v.mid, engine.mlp(source, s, mlp_in))
    if c.kind == "ln_attn":
        ln = engine.layer_module(source, s, p.ln_attn)
        if p.pre_ln:  # the attention reads the source LayerNorm of h: every head's z changes
            z = engine.attention_z(base, l, ln(v.h), v.mask, v.rows)
            return engine.from_z(base, l, v.h[:, v.rows], z)
        mid = ln(v.attn_out + v.h[:, v.rows])
        return engine.from_mlp_out(base, l, mid, engine.mlp(base, l, mid))
    if c.kind == "ln_mlp":
        ln = engine.layer_module(source, s, p.ln_mlp)
        if p.pre_ln:
            return v.mid + engine.mlp(base, l, ln(v.mid))
        return ln(v.mlp_out + v.mid)
    raise ValueError(f"Unknown layer component kind {c.kind!r}.")


# --- the sweep -------------------------------------------------------------------------------------
def weight_patch(base: Any, source: Any, data: Iterable, comps: Sequence[WeightComponent] | None = None,
                 layer_map: dict[int, int] | None = None, head_map: Any = None,
                 kinds: Sequence[str] = DEFAULT_KINDS, batch_size: int = 32, max_rows: int | None = None,
                 progress: bool = True) -> dict:
    """Swap each component's parameters from `source` into `base` and run base's forward pass.

    Returns logits in the format of `interp.compare.cross_patch`, so `restoration` ranks the shares
    of the source-minus-base gap each swap closes: {"teacher": source logits [n, labels], "student":
    base logits, "patched": {label: [n, labels]}, "components": [WeightComponent], "unchanged":
    [labels whose parameters already equal the source's], "method": "weight"}. `max_rows` bounds
    the rows of one expanded forward (default about 4,096 tokens, as in interp.patching).
    """
    from interp.compat import check_compatible

    check_compatible(source, base)
    check_swappable(base, source)
    base.check_ready()
    source.check_ready()
    examples = as_examples(data)  # refuses empty data
    comps = list(comps) if comps is not None else components(base, source, layer_map, head_map, kinds)
    same = {c.label for c in comps if unchanged(base, source, c)}
    todo = [c for c in comps if c.label not in same]
    by_layer: dict[int, list[WeightComponent]] = {}
    for c in todo:
        by_layer.setdefault(c.layer, []).append(c)  # embed / readout under -1
    out: dict[str, list] = {"teacher": [], "student": [], **{c.label: [] for c in comps}}
    L = base.n_layers
    reads = [f"blocks.{l}.{k}" for l in range(L) for k in ("hook_resid_post", "attn.hook_z", "hook_attn_out",
                                                           "hook_mlp_out")]
    reads += [f"blocks.{l}.hook_resid_mid" for l in range(L) if "hook_resid_mid" in base.arch.kinds]
    bar = progress_bar(total=len(todo) * -(-len(examples) // batch_size), desc="weight patching", disable=not progress)
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            inputs = base.tokenize(chunk)
            src_logits, _ = source.run(source.tokenize(chunk))
            logits, cache = base.run(inputs, read=reads)
            for l in range(L):  # the first layer that turns NaN / inf is the one named
                check_finite(cache[f"blocks.{l}.hook_resid_post"], f"{base.name}, blocks.{l}.hook_resid_post")
            check_finite(logits, f"{base.name}, logits")
            check_finite(src_logits, f"{source.name}, logits")
            embed, kwargs = layer_inputs(base, inputs)
            B, P = embed.shape[:2]
            rows_max = max_rows or max(1, 4096 // P)
            out["teacher"].append(src_logits.cpu())
            out["student"].append(logits.cpu())
            for c in comps:
                if c.label in same:
                    out[c.label].append(logits.cpu())
            for c in by_layer.get(-1, []):
                out[c.label].append(_run_outer(base, source, c, inputs, cache, kwargs).cpu())
                bar.update(1)
            for l in sorted(k for k in by_layer if k >= 0):
                v = _layer_values(base, l, embed, cache, kwargs)
                cs = by_layer[l]
                step = max(1, rows_max // B)
                for a in range(0, len(cs), step):
                    part = cs[a:a + step]
                    h = torch.cat([_swapped_layer(base, source, c, v, kwargs) for c in part])  # [k*B, q, d]
                    check_finite(h, f"{base.name}, blocks.{l} output with {part[0].label} .. {part[-1].label}")
                    lg = engine.finish(base, l + 1, h, expand_kwargs(kwargs, len(part)))  # [k*B, labels]
                    for i, c in enumerate(part):
                        out[c.label].append(lg[i * B:(i + 1) * B].cpu())
                    bar.update(len(part))
    bar.close()
    res = {k: torch.cat(v) for k, v in out.items()}
    for k, logits in res.items():
        check_finite(logits, f"{base.name} with {k} from {source.name}, logits")
    return {"teacher": res.pop("teacher"), "student": res.pop("student"), "patched": res,
            "components": comps, "unchanged": sorted(same), "method": "weight"}


def _layer_values(base: Any, l: int, embed: torch.Tensor, cache: dict, kwargs: dict) -> _Layer:
    rows = slice(engine.READOUT_POS, engine.READOUT_POS + 1) if l == base.n_layers - 1 else slice(None)
    h = embed if l == 0 else cache[f"blocks.{l - 1}.hook_resid_post"]
    attn_out = cache[f"blocks.{l}.hook_attn_out"][:, rows]
    mid_site = f"blocks.{l}.hook_resid_mid"
    mid = cache[mid_site][:, rows] if mid_site in cache else attn_out + h[:, rows]  # pre-LN: attn_out + h
    return _Layer(h, cache[f"blocks.{l}.attn.hook_z"][:, rows], attn_out, mid,
                  cache[f"blocks.{l}.hook_mlp_out"][:, rows], rows, kwargs.get("attention_mask"))


def _run_outer(base: Any, source: Any, c: WeightComponent, inputs: dict, cache: dict, kwargs: dict) -> torch.Tensor:
    """Logits [B, labels] of base with the source's embeddings or readout."""
    if c.kind == "embed":
        e_src, _ = layer_inputs(source, inputs)
        return engine.finish(base, 0, e_src, kwargs)
    return source.arch.head(source.model, cache[f"blocks.{base.n_layers - 1}.hook_resid_post"])
