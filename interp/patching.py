"""Activation patching, batched over components, resuming the forward pass at the patched layer.

Components (`component=`):
| component  | site                         | all positions    | per position        |
| ---------- | ---------------------------- | ---------------- | ------------------- |
| `resid`    | `blocks.{l}.hook_resid_post` | (whole state)    | scores [layer, pos] |
| `attn_out` | `blocks.{l}.hook_attn_out`   | scores [layer]   | [layer, pos]        |
| `mlp_out`  | `blocks.{l}.hook_mlp_out`    | scores [layer]   | [layer, pos]        |
| `head`     | `blocks.{l}.attn.hook_z`     | [layer, head]    | [layer, head, pos]  |

`direction="denoise"` runs the corrupted input and patches in clean values; `"noise"` runs the clean
input and patches in corrupted values. Both report `(m - m_corrupt) / (m_clean - m_corrupt)`:
denoising scores near 1 mark components sufficient to restore the clean behaviour; noising scores
near 0 mark components necessary for it.

No-signal guard (interp.signal): the per-pair clean-minus-corrupted metric gives the gap with a
bootstrap 95% interval over pairs (`PatchResult.signal`). When the interval includes 0 or the gap is
under 2 standard errors, normalised scores would be ratios of noise: `patch` raises NoSignalError, or
with `allow_no_signal=True` returns NaN `scores`, the unnormalised `raw` metric and `no_signal=True`.
A NaN or inf in any layer's output, the logits or a patched metric raises FloatingPointError naming
the model, site and input.

How it is fast: per batch of pairs, one forward on each input caches every layer's input. For the
K components of layer l the batch is expanded K times (copy k patches component k), and the pass
resumes at layer l, so layers before l are never recomputed. Two exact shortcuts (interp.engine) cut
the rest: layer l is finished from the patched z / attn_out / mlp_out (its attention is not run
again), and the last layer is computed at the readout position only. The expanded batch is cut into
chunks of at most `max_rows` rows to bound memory (default per device: interp.sweep).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from interp import engine
from interp.contrast import Contrast, metric_values
from interp.engine import expand_kwargs, layer_inputs, run_from
from interp.progress import bar as progress_bar
from interp.signal import Signal, check_finite, measure_gap, normalise_or_nan, require_signal
from interp.sweep import CHUNK_TOKENS as CHUNK_TOKENS  # re-exported: its home is interp.sweep
from interp.sweep import in_dtype, param_dtype, subject_chunk_rows

COMPONENTS = ("resid", "attn_out", "mlp_out", "head")
GAP_WHAT = "clean - corrupted metric"
SITE_OF = {"resid": "hook_resid_post", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out", "head": "attn.hook_z"}


@dataclass
class PatchResult:
    """Normalised scores (0 = corrupted, 1 = clean) and the raw mean metric per component.

    `signal` is the clean-minus-corrupted gap (interp.signal.Signal.to_dict()); with `no_signal`
    (only under allow_no_signal=True) `scores` are NaN and only `raw` is meaningful.
    """

    component: str
    per_position: bool
    direction: str
    scores: torch.Tensor   # [layer] | [layer, pos] | [layer, head] | [layer, head, pos]
    raw: torch.Tensor      # mean metric, same shape
    clean_metric: float
    corrupt_metric: float
    axes: list[str]
    method: str = "exact"
    meta: dict[str, Any] = field(default_factory=dict)
    signal: dict[str, Any] = field(default_factory=dict)
    no_signal: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "per_position": self.per_position, "direction": self.direction,
                "method": self.method, "axes": self.axes, "shape": list(self.scores.shape),
                "scores": self.scores.tolist(), "raw": self.raw.tolist(), "clean_metric": self.clean_metric,
                "corrupt_metric": self.corrupt_metric, "signal": self.signal, "no_signal": self.no_signal,
                "meta": self.meta}

    def plot(self, title: str | None = None) -> Any:
        """Heatmap of the scores (layer x head, ...) as a `matplotlib.figure.Figure`."""
        from interp.plot.patching import heatmap_figure

        return heatmap_figure(self, title)


def check_component(subject: Any, component: str) -> None:
    if component not in COMPONENTS:
        raise ValueError(f"Unknown component {component!r}; choose one of {COMPONENTS}.")
    if SITE_OF[component] not in subject.arch.kinds:
        raise ValueError(f"Component {component!r} needs site kind {SITE_OF[component]!r}, which the "
                         f"{subject.arch.family} architecture lacks (it has {subject.arch.kinds}).")


def axes_for(component: str, per_position: bool) -> list[str]:
    ax = ["layer"] + (["head"] if component == "head" else [])
    return ax + (["pos"] if per_position else [])


def _shape(subject: Any, component: str, per_position: bool, n_pos: int) -> tuple[int, ...]:
    s: tuple[int, ...] = (subject.n_layers,)
    if component == "head":
        s += (subject.n_heads,)
    if per_position:
        s += (n_pos,)
    return s


def component_masks(subject: Any, component: str, per_position: bool, n_pos: int) -> torch.Tensor:
    """One boolean mask per component of a layer, over the site's patchable axes.

    Returns [K, pos, head] for heads and [K, pos] otherwise; K enumerates components in the order of
    the result's trailing axes (head-major, then position).
    """
    H = subject.n_heads
    if component == "head":
        if per_position:
            m = torch.zeros(H, n_pos, n_pos, H, dtype=torch.bool)  # [head, pos, pos, head]
            for h in range(H):
                m[h, torch.arange(n_pos), torch.arange(n_pos), h] = True
            return m.reshape(H * n_pos, n_pos, H)
        m = torch.zeros(H, n_pos, H, dtype=torch.bool)
        m[torch.arange(H), :, torch.arange(H)] = True
        return m
    if per_position:
        return torch.eye(n_pos, dtype=torch.bool)  # [K=pos, pos]
    if component == "resid":
        raise ValueError("Patching the whole residual stream at all positions replaces the entire state; "
                         "use per_position=True for 'resid'.")
    return torch.ones(1, n_pos, dtype=torch.bool)


def _chunks(k: int, rows_per_copy: int, max_rows: int) -> Iterator[tuple[int, int]]:
    step = max(1, max_rows // max(1, rows_per_copy))
    for a in range(0, k, step):
        yield a, min(k, a + step)


def _pair_inputs(direction: str, batch: Contrast) -> tuple[dict, dict]:
    if direction == "denoise":
        return batch.corrupt, batch.clean
    if direction == "noise":
        return batch.clean, batch.corrupt
    raise ValueError(f"direction must be 'denoise' or 'noise', not {direction!r}.")


def check_pairs(contrast: Contrast) -> None:
    """A contrast with no pairs has no gap and no scores: say so before running anything."""
    if len(contrast) == 0:
        raise ValueError("The contrast has no pairs (0 clean/corrupted examples): patching, attribution and circuits "
                         "need at least two pairs to measure the clean - corrupted gap.")


def check_run(subject: Any, logits: torch.Tensor, cache: dict, which: str) -> None:
    """FloatingPointError naming the first layer (forward order) whose output, or the logits, is not finite."""
    for l in range(subject.n_layers):
        site = f"blocks.{l}.hook_resid_post"
        if site in cache:
            check_finite(cache[site], f"{subject.name}, {site} ({which} input)")
    check_finite(logits, f"{subject.name}, logits ({which} input)")


def gap_signal(clean_vals: Any, corrupt_vals: Any, allow_no_signal: bool = False) -> tuple[Signal, bool]:
    """The clean - corrupted gap over pairs and whether it may be normalised by (raises unless allowed)."""
    sig = measure_gap(clean_vals, corrupt_vals, what=GAP_WHAT)
    return sig, require_signal(sig, allow_no_signal)


def endpoint_values(subject: Any, contrast: Contrast, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair metric on clean and on corrupted inputs: ([n], [n]) float64, every layer checked finite."""
    check_pairs(contrast)
    reads = [f"blocks.{l}.hook_resid_post" for l in range(subject.n_layers)]
    clean: list[torch.Tensor] = []
    corrupt: list[torch.Tensor] = []
    with torch.no_grad():
        for b in contrast.batches(batch_size):
            for batch, which, out in ((b.clean, "clean", clean), (b.corrupt, "corrupted", corrupt)):
                logits, cache = subject.run(batch, read=reads)
                check_run(subject, logits, cache, which)
                out.append(metric_values(contrast.metric, logits).double().cpu())
    return torch.cat(clean), torch.cat(corrupt)


def endpoint_metrics(subject: Any, contrast: Contrast, batch_size: int = 64,
                     allow_no_signal: bool = False) -> tuple[float, float]:
    """Mean metric on clean and on corrupted inputs; NoSignalError when their gap is not significant
    (unless `allow_no_signal`)."""
    clean, corrupt = endpoint_values(subject, contrast, batch_size)
    gap_signal(clean, corrupt, allow_no_signal)
    return float(clean.mean()), float(corrupt.mean())


def patch(subject: Any, contrast: Contrast, component: str = "head", per_position: bool = False,
          direction: str = "denoise", layers: Sequence[int] | None = None, batch_size: int = 64,
          max_rows: int | None = None, shortcuts: bool = True, allow_no_signal: bool = False,
          progress: bool = True, dtype: torch.dtype | None = None) -> PatchResult:
    """Exact activation patching of every component of one kind; see the module doc.

    Raises NoSignalError when the clean - corrupted gap is not significant, unless `allow_no_signal`
    (then `scores` are NaN, `raw` stays and `no_signal` is set).

    `progress`: a bar on a terminal, a log line every ~20 s otherwise (interp.progress).
    `shortcuts=False` runs the patched layer and every later one in full through hooks (the plain
    resumed pass); results agree to float rounding, which the tests check. `max_rows` (sequences per
    expanded forward) defaults per device (interp.sweep.chunk_rows): about CHUNK_TOKENS tokens on CPU,
    where chunks under the allocator's mmap threshold run about 1.4x faster than one huge expanded
    batch; on CUDA as many as half the free GPU memory holds (one chunk whenever it fits).

    `dtype` (e.g. torch.bfloat16): the whole sweep (clean, corrupted and patched runs) runs on a copy of
    the model cast to it; metrics are taken from float32 logits and results are float32 as usual.
    Measured on MiniLM fine-tuned on NLI (the zoo's teacher_erm; head sweep, 64 HANS break_overlap pairs;
    `benchmarks/patching_dtype.py`): bf16 moves a [layer, head] cell's raw metric by at most 0.029 (median
    0.025, mostly a shift shared with the corrupted run's metric), 1.4% of the largest patching effect
    (2.1), and normalised scores by at most 0.0033; float16 moves raw by at most 0.002 (0.09%). Meant for
    GPUs: on CPU both are slower than float32 (bf16 about 4x here); on an NVIDIA H200, 256 pairs took
    0.118 s in bf16 and 0.112 s in fp16 against 0.162 s in float32 (64 pairs: no gain, launch-bound).
    """
    check_component(subject, component)
    subject.check_ready()
    check_pairs(contrast)
    subject = in_dtype(subject, dtype)
    fast = shortcuts and engine.shortcuts_supported(subject)
    patched_logits = _patched_logits_fast if fast else _patched_logits
    n_pos = contrast.n_pos
    max_rows = subject_chunk_rows(subject, n_pos) if max_rows is None else max_rows
    layers = list(range(subject.n_layers)) if layers is None else list(layers)
    masks = component_masks(subject, component, per_position, n_pos).to(subject.device)
    K = masks.shape[0]
    total = torch.zeros(subject.n_layers, K, dtype=torch.float64)
    m_clean: list[torch.Tensor] = []    # per batch [B]
    m_corrupt: list[torch.Tensor] = []
    site_kind = SITE_OF[component]
    bar = progress_bar(total=-(-len(contrast) // batch_size) * len(layers), desc=f"patch {component} {subject.name}",
                       disable=not progress)
    with torch.no_grad():
        for b in contrast.batches(batch_size):
            base, src = _pair_inputs(direction, b)
            B = int(base["input_ids"].shape[0]) if "input_ids" in base else len(b)
            reads = [f"blocks.{l}.hook_resid_post" for l in range(subject.n_layers)]
            if component != "resid":
                reads += [f"blocks.{l}.{site_kind}" for l in layers]
            if fast and component == "mlp_out":
                reads += [f"blocks.{l}.hook_attn_out" for l in layers]
            base_logits, base_cache = subject.run(base, read=reads)
            src_logits, src_cache = subject.run(src, read=reads)
            names = ("corrupted", "clean") if direction == "denoise" else ("clean", "corrupted")
            check_run(subject, base_logits, base_cache, names[0])
            check_run(subject, src_logits, src_cache, names[1])
            m_base = metric_values(contrast.metric, base_logits.float()).double().cpu()  # [B]
            m_src = metric_values(contrast.metric, src_logits.float()).double().cpu()
            m_clean.append(m_src if direction == "denoise" else m_base)
            m_corrupt.append(m_base if direction == "denoise" else m_src)
            embed, kwargs = layer_inputs(subject, base)
            for l in layers:
                h_in = embed if l == 0 else base_cache[f"blocks.{l - 1}.hook_resid_post"]  # [B, pos, d]
                for a, z in _chunks(K, B, max_rows):
                    m, kc = masks[a:z], z - a
                    logits = patched_logits(subject, component, l, h_in, m, base_cache, src_cache,
                                            expand_kwargs(kwargs, kc))
                    vals = metric_values(contrast.metric, logits.float()).double().view(kc, B)
                    check_finite(vals, f"{subject.name}, patched {component} at layer {l} ({site_kind}, "
                                       f"components {a}..{z - 1}): metric of the patched run")
                    total[l, a:z] += vals.sum(1).cpu()
                bar.update(1)
    bar.close()
    n = len(contrast)
    raw = (total / n).reshape(_shape(subject, component, per_position, n_pos)).float()
    clean_v, corrupt_v = torch.cat(m_clean), torch.cat(m_corrupt)  # [n]
    sig, ok = gap_signal(clean_v, corrupt_v, allow_no_signal)
    clean, corrupt = float(clean_v.mean()), float(corrupt_v.mean())
    scores = normalise_or_nan(raw.double(), corrupt, clean, ok).float()
    if len(layers) < subject.n_layers:
        skip = [l for l in range(subject.n_layers) if l not in layers]
        raw[skip] = float("nan")
        scores[skip] = float("nan")
    return PatchResult(component, per_position, direction, scores, raw, clean, corrupt,
                       axes_for(component, per_position), meta={"n_pairs": n, "n_pos": n_pos, "layers": layers,
                                                                "max_rows": max_rows, "batch_size": batch_size,
                                                                "shortcuts": fast,
                                                                "dtype": str(param_dtype(subject)).removeprefix("torch.")},
                       signal=sig.to_dict(), no_signal=not ok)


def _broadcast_mask(component: str, m: torch.Tensor) -> torch.Tensor:
    """Component masks m [kc, pos(, head)] shaped to broadcast over [kc, B, pos, ...] site values."""
    return m[:, None, :, :, None] if component == "head" else m[:, None, :, None]


def _patched_resid(l: int, m: torch.Tensor, base_cache: dict, src_cache: dict) -> torch.Tensor:
    """Layer l's output for kc copies of the batch, copy k patched at the positions of m[k]: [kc*B, pos, d]."""
    base_v = base_cache[f"blocks.{l}.hook_resid_post"]  # [B, pos, d]
    src_v = src_cache[f"blocks.{l}.hook_resid_post"]
    return torch.where(m[:, None, :, None], src_v[None], base_v[None]).reshape(-1, *base_v.shape[1:])


def _patched_logits(subject: Any, component: str, l: int, h_in: torch.Tensor, m: torch.Tensor,
                    base_cache: dict, src_cache: dict, kwargs: dict) -> torch.Tensor:
    """Logits of kc copies of the batch, copy k patched by mask m[k], through hooks and full layers."""
    kc = m.shape[0]
    if component == "resid":
        return run_from(subject, l + 1, _patched_resid(l, m, base_cache, src_cache), kwargs, readout_only=False)[0]
    site = f"blocks.{l}.{SITE_OF[component]}"
    src_v = src_cache[site]  # [B, pos, head, d_head] or [B, pos, d]
    mm = _broadcast_mask(component, m)

    def write(v: torch.Tensor) -> torch.Tensor:
        vv = v.view(kc, -1, *v.shape[1:])  # [kc, B, ...]
        return torch.where(mm, src_v[None], vv).reshape(v.shape)

    h = h_in.repeat(kc, 1, 1)  # copy k of row i is row k * B + i
    return run_from(subject, l, h, kwargs, write={site: write}, readout_only=False)[0]


def _patched_logits_fast(subject: Any, component: str, l: int, h_in: torch.Tensor, m: torch.Tensor,
                         base_cache: dict, src_cache: dict, kwargs: dict) -> torch.Tensor:
    """As `_patched_logits`, with interp.engine's shortcuts: layer l is finished from the patched
    value (no new attention at l), and the last layer is computed at the readout position only."""
    if component == "resid":
        return engine.finish(subject, l + 1, _patched_resid(l, m, base_cache, src_cache), kwargs)
    site = f"blocks.{l}.{SITE_OF[component]}"
    v = torch.where(_broadcast_mask(component, m), src_cache[site][None], base_cache[site][None])  # [kc, B, pos, ...]
    h = h_in[None]  # [1, B, pos, d]
    attn = base_cache.get(f"blocks.{l}.hook_attn_out")  # read for mlp_out only
    if l == subject.n_layers - 1:  # only the readout row of the last layer is read
        row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
        v, h = v[:, :, row], h[:, :, row]
        attn = None if attn is None else attn[:, row]
    if component == "head":
        out = engine.from_z(subject, l, h, v)
    elif component == "attn_out":
        out = engine.from_attn_out(subject, l, h, v)
    else:
        if attn is None:
            raise ValueError(f"Patching mlp_out at layer {l} needs blocks.{l}.hook_attn_out in the base cache.")
        out = engine.from_mlp_out(subject, l, engine.resid_mid(subject, l, h, attn[None]), v)
    return engine.finish(subject, l + 1, out.reshape(-1, *out.shape[2:]), kwargs)


def patch_flops_share(subject: Any, component: str) -> float:
    """Share of a full forward that a patch at layer l must recompute, averaged over layers (the
    ideal cost of resuming at the patched layer, relative to one full forward per component)."""
    L = subject.n_layers
    if component == "resid":
        return sum(L - l - 1 for l in range(L)) / (L * L) + 1e-9
    return sum(L - l for l in range(L)) / (L * L)
