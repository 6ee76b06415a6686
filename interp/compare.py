"""Teacher vs student, head by head: effects on the HANS metric, cross-model patching, and the
attribution of the student's lost robustness to heads and layers.

The metric is the entailment margin: entailment logit minus logsumexp of the other logits
(for a 2-way head, the plain logit difference). On HANS non-entailment examples a model that
follows the lexical-overlap heuristic has a high margin; robustness lowers it.

Every intervention resumes the forward pass at the first layer it touches (interp.engine.run_from), so
the layers before it are computed once per batch, not once per component.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from interp import engine
from interp.cache import ActivationCache
from interp.contrast import LogOdds
from interp.inputs import as_examples, batches
from interp.pair import Pair, pattern_similarity
from interp.progress import bar as progress_bar
from interp.signal import bootstrap_ci, check_finite, gap_share, measure_gap, require_signal
from interp.subject import Subject

Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [batch, n_labels] -> [batch]


def entailment_margin(labels: Sequence[str]) -> Metric:
    """logit(entailment) - logsumexp(other logits), per example (interp.contrast.LogOdds)."""
    names = [str(l).lower() for l in labels]
    if "entailment" not in names:
        raise ValueError(f"The model's labels {list(labels)} have no 'entailment': pass metric= explicitly.")
    return LogOdds(names.index("entailment"))


@dataclass
class _Batch:
    """A tokenised batch with the clean value of every layer input cached."""

    inputs: dict[str, torch.Tensor]
    layer_in: list[torch.Tensor]    # [n_layers] of [batch, pos, d_model]
    kwargs: dict
    clean_logits: torch.Tensor      # [batch, n_labels]


def _prepare(subject: Subject, examples: Sequence[dict], batch_size: int, max_length: int = 128,
             extra_reads: Sequence[str] = ()) -> list[tuple[_Batch, ActivationCache]]:
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
            out.append((_Batch(inputs, layer_in, kwargs, logits), cache))
    return out


def _token_mask(b: _Batch) -> torch.Tensor:
    """[batch, pos] 1 at real tokens: the attention mask of text, all ones for images (ViT patches)."""
    if "attention_mask" in b.inputs:
        return b.inputs["attention_mask"]
    return torch.ones(b.layer_in[0].shape[:2], dtype=b.layer_in[0].dtype, device=b.layer_in[0].device)


def _resume(subject: Subject, b: _Batch, start: int, write: Mapping[str, Any]) -> torch.Tensor:
    logits, _ = engine.run_from(subject, start, b.layer_in[start], b.kwargs, write=write)
    return logits


def _head_write(h: int, value: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Replace head h of z [batch, pos, head, d_head] by `value` ([batch, pos, d_head] or [d_head])."""
    def write(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, h] = value if value is not None else 0.0
        return z
    return write



def _readout_chain(subject: Subject, cache: ActivationCache, start: int, h: torch.Tensor) -> torch.Tensor:
    """Logits when the readout row h [..., 1, d] leaves layer start - 1 and every later layer's attn_out and
    mlp_out keep their cached values: only the residual stream and LayerNorms, which act per position."""
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    for j in range(start, subject.n_layers):
        mid = engine.resid_mid(subject, j, h, cache[f"blocks.{j}.hook_attn_out"][:, row])
        h = engine.from_mlp_out(subject, j, mid, cache[f"blocks.{j}.hook_mlp_out"][:, row])
    return subject.arch.head(subject.model, h.flatten(0, -3))


def _after_z(subject: Subject, b: _Batch, cache: ActivationCache, layer: int, zz: torch.Tensor,
             direct_only: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Logits [copies * batch, labels] when layer `layer`'s z is zz [copies, batch, pos, head, d_head]
    (copy k of row i is row k * batch + i), through the engine's shortcuts: total (later layers recomputed,
    the last at the readout row only; None with `direct_only`) and direct (later attn_out / mlp_out at
    their cached values: the readout row alone is computed)."""
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    h_in = b.layer_in[layer]                                                   # [batch, pos, d]
    direct = _readout_chain(subject, cache, layer + 1, engine.from_z(subject, layer, h_in[:, row], zz[:, :, row]))
    if layer == subject.n_layers - 1:
        return direct, direct  # nothing after the last layer: the total effect is the direct one
    if direct_only:
        return None, direct
    out = engine.from_z(subject, layer, h_in, zz).flatten(0, 1)                # [copies * batch, pos, d]
    return engine.finish(subject, layer + 1, out, engine.expand_kwargs(b.kwargs, zz.shape[0])), direct


def _layer_head_effects(subject: Subject, b: _Batch, cache: ActivationCache, layer: int, z: torch.Tensor,
                        mean: torch.Tensor, metric: Metric) -> tuple[torch.Tensor, torch.Tensor]:
    """Metric with each head of `layer` mean-ablated, all heads at once (copy h ablates head h): total and
    direct [batch, head] (see _after_z). z: [batch, pos, head, d_head], mean: [head, d_head]."""
    H, B = subject.n_heads, z.shape[0]
    idx = torch.arange(H, device=z.device)
    zz = z.unsqueeze(0).repeat(H, 1, 1, 1, 1)                                 # [copy, batch, pos, head, d_head]
    zz[idx, :, :, idx] = mean[:, None, None, :]
    total, direct = _after_z(subject, b, cache, layer, zz)
    assert total is not None
    return metric(total).view(H, B).T, metric(direct).view(H, B).T


def head_effects(subject: Subject, data: Iterable, metric: Metric | None = None, batch_size: int = 64,
                 progress: bool = True) -> dict[str, np.ndarray]:
    """Per-example total and direct effects of mean-ablating each head's z on the metric.

    total: the head's z is replaced by its mean over the data (all positions) and everything
    downstream is recomputed. direct: the same, with every later layer's attn_out and mlp_out held
    at their clean values, so the change reaches the logits only through the residual stream and
    the LayerNorms. Returns {"total": [n, layers, heads], "direct": [...], "clean": [n]}.
    """
    examples = as_examples(data)
    metric = metric or entailment_margin(subject.labels)
    z_sites = subject.expand("blocks.*.attn.hook_z")
    later = subject.expand(["blocks.*.hook_attn_out", "blocks.*.hook_mlp_out"])
    prepared = _prepare(subject, examples, batch_size, extra_reads=[*z_sites, *later])
    n_tokens = sum(_token_mask(b).sum() for b, _ in prepared)
    means = {s: sum(((c[s] * _token_mask(b)[:, :, None, None]).sum((0, 1)) for b, c in prepared),
                    torch.zeros(())) / n_tokens
             for s in z_sites}  # mean over real tokens: [head, d_head]
    L, H = subject.n_layers, subject.n_heads
    clean = torch.cat([metric(b.clean_logits) for b, _ in prepared]).cpu().numpy()
    total = np.zeros((len(examples), L, H))
    direct = np.zeros((len(examples), L, H))
    fast = engine.shortcuts_supported(subject)
    bar = progress_bar(total=L * (1 if fast else H) * len(prepared), desc=f"head effects {subject.name}",
                       disable=not progress)
    with torch.no_grad():
        row = 0
        for b, cache in prepared:
            n = b.clean_logits.shape[0]
            base = metric(b.clean_logits)
            for layer in range(L) if fast else ():
                z = cache[f"blocks.{layer}.attn.hook_z"]
                t, d = _layer_head_effects(subject, b, cache, layer, z, means[f"blocks.{layer}.attn.hook_z"], metric)
                total[row:row + n, layer] = (t - base[:, None]).cpu().numpy()
                direct[row:row + n, layer] = (d - base[:, None]).cpu().numpy()
                bar.update(1)
            for layer in range(L) if not fast else ():
                site = f"blocks.{layer}.attn.hook_z"
                frozen = {s: cache[s] for s in later if int(s.split(".")[1]) > layer}
                for h in range(H):
                    w = {site: _head_write(h, means[site][h])}
                    total[row:row + n, layer, h] = (metric(_resume(subject, b, layer, w)) - base).cpu().numpy()
                    direct[row:row + n, layer, h] = (
                        metric(_resume(subject, b, layer, {**w, **frozen})) - base).cpu().numpy()
                    bar.update(1)
            row += n
    bar.close()
    return {"total": total, "direct": direct, "clean": clean}


# --- cross-model patching ------------------------------------------------------------------------

@dataclass
class LinearMap:
    """Ridge regression from teacher to student activations: y ~ (x - mx) W + my."""

    W: torch.Tensor   # [d_teacher, d_student]
    mx: torch.Tensor  # [d_teacher]
    my: torch.Tensor  # [d_student]
    r2: float         # held-out R^2 of the fit

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mx) @ self.W + self.my).to(x.dtype)


def fit_ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-2, holdout: float = 0.2, seed: int = 0) -> LinearMap:
    """Closed-form ridge map x [n, dx] -> y [n, dy] (lam relative to the mean eigenvalue of x^T x).

    R^2 is measured on a held-out fraction; the returned map is refitted on all rows.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"fit_ridge: x has {x.shape[0]} rows, y has {y.shape[0]}.")

    def solve(xa: torch.Tensor, ya: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mx, my = xa.mean(0), ya.mean(0)
        xc, yc = xa - mx, ya - my
        gram = xc.T @ xc
        reg = lam * torch.trace(gram) / gram.shape[0]
        W = torch.linalg.solve(gram + reg * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)
        return W, mx, my

    x, y = x.double(), y.double()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    k = max(1, int(holdout * x.shape[0]))
    test, train = perm[:k], perm[k:]
    W, mx, my = solve(x[train], y[train])
    pred = (x[test] - mx) @ W + my
    r2 = float(1 - ((pred - y[test]) ** 2).sum() / ((y[test] - y[test].mean(0)) ** 2).sum())
    W, mx, my = solve(x, y)
    return LinearMap(W, mx, my, r2)


def _matched_sites(pair: Pair) -> list[tuple[str, int, int, str, int | None]]:
    """(label, student layer, student head|-1, teacher site, teacher head) for heads and layers."""
    out: list[tuple[str, int, int, str, int | None]] = []
    if pair.head_map is not None:
        for (sl, sh), t in sorted(pair.head_map.matches.items()):
            if t is not None:
                out.append((f"head {sl}.{sh}<-T{t[0]}.{t[1]}", sl, sh, f"blocks.{t[0]}.attn.hook_z", t[1]))
    for sl, tl in sorted(pair.layer_map.items()):
        out.append((f"layer {sl}<-T{tl}", sl, -1, f"blocks.{tl}.hook_resid_post", None))
    return out



def _patch_write(layer: int, head: int, value: torch.Tensor) -> dict[str, Any]:
    """The write of a cross-model patch: head `head`'s z at `layer` (head >= 0), else its resid_post."""
    if head >= 0:
        return {f"blocks.{layer}.attn.hook_z": _head_write(head, value)}
    return {f"blocks.{layer}.hook_resid_post": value}


def _patched_logits(student: Subject, b: _Batch, cache: ActivationCache, layer: int, head: int,
                    value: torch.Tensor, fast: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(total, direct) logits of one cross-model patch; direct is None unless `fast` (engine shortcuts, z
    and later outputs in `cache`), where it comes from the readout row alone."""
    if not fast:
        return _resume(student, b, layer, _patch_write(layer, head, value)), None
    if head >= 0:
        zz = cache[f"blocks.{layer}.attn.hook_z"].clone()
        zz[:, :, head] = value
        total, direct = _after_z(student, b, cache, layer, zz[None])
        assert total is not None
        return total, direct
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    direct = _readout_chain(student, cache, layer + 1, value[None, :, row])
    if layer == student.n_layers - 1:
        return direct, direct
    return engine.finish(student, layer + 1, value, b.kwargs), direct


def cross_patch(pair: Pair, data: Iterable, maps: dict[str, LinearMap] | None = None, batch_size: int = 64,
                progress: bool = True, direct: bool = False) -> dict:
    """Patch teacher activations into the student at matched sites, on the same inputs.

    Heads: the student head's z is replaced by its matched teacher head's z; layers: the student's
    resid_post by the mapped teacher layer's. Where widths differ a fitted `maps[teacher_site]`
    (see `fit_site_maps`) translates teacher values first. Returns logits:
    {"teacher": [n, labels], "student": [n, labels], "patched": {component: [n, labels]}} and, with
    `direct`, "patched_direct": the same patches with every later student layer's attn_out and
    mlp_out held at the student's own values (path patching to the readout: the patch reaches the
    logits only through the residual stream and the LayerNorms). Total minus direct is what flows
    through later components.
    """
    examples = as_examples(data)
    teacher, student = pair.teacher, pair.student
    maps = maps or {}
    targets = _matched_sites(pair)
    t_sites = sorted({t[3] for t in targets})
    for label, _, _, t_site, th in targets:
        dt = teacher.d_head if th is not None else teacher.d_model
        ds = student.d_head if th is not None else student.d_model
        key = t_site if th is None else f"{t_site}[{th}]"
        if dt != ds and key not in maps:
            raise ValueError(f"{label}: teacher width {dt} differs from student width {ds} and no fitted map was "
                             f"given for {key!r}. Fit one with fit_site_maps(pair, held_out_data).")
    if not examples:
        raise ValueError("cross_patch: no examples; pass the inputs to patch on.")
    out: dict = {"teacher": [], "student": [], "patched": {t[0]: [] for t in targets}}
    if direct:
        out["patched_direct"] = {t[0]: [] for t in targets}
    fast = direct and engine.shortcuts_supported(student)
    z_sites = sorted({f"blocks.{t[1]}.attn.hook_z" for t in targets if t[2] >= 0}) if fast else []
    later = student.expand(["blocks.*.hook_attn_out", "blocks.*.hook_mlp_out"]) + z_sites if direct else []
    bar = progress_bar(total=len(targets) * -(-len(examples) // batch_size), desc="cross-model patching", disable=not progress)
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            t_logits, t_cache = teacher.run(teacher.tokenize(chunk), read=t_sites)
            (b, s_cache), = _prepare(student, chunk, len(chunk), extra_reads=later)
            check_finite(t_logits, f"{teacher.name}, logits")
            check_finite(b.clean_logits, f"{student.name}, logits")
            out["teacher"].append(t_logits)
            out["student"].append(b.clean_logits)
            for label, sl, sh, t_site, th in targets:
                key = t_site if th is None else f"{t_site}[{th}]"
                value = t_cache[t_site] if th is None else t_cache[t_site][:, :, th]
                if key in maps:
                    value = maps[key](value)
                check_finite(value, f"{teacher.name}, {t_site}" + ("" if th is None else f" head {th}"))
                total, path = _patched_logits(student, b, s_cache, sl, sh, value, fast)
                out["patched"][label].append(total)
                if direct:
                    if path is None:
                        frozen = {s: s_cache[s] for s in later if int(s.split(".")[1]) > sl}
                        path = _resume(student, b, sl, {**_patch_write(sl, sh, value), **frozen})
                    out["patched_direct"][label].append(path)
                bar.update(1)
    bar.close()
    res: dict[str, Any] = {"teacher": torch.cat(out["teacher"]).cpu(), "student": torch.cat(out["student"]).cpu()}
    for key in ("patched", "patched_direct"):
        if key in out:
            res[key] = {k: check_finite(torch.cat(v).cpu(), f"{student.name} patched at {k}, logits")
                        for k, v in out[key].items()}  # results live on CPU
    return res


def fit_site_maps(pair: Pair, data: Iterable, lam: float = 1e-2, batch_size: int = 64) -> dict[str, LinearMap]:
    """Ridge maps teacher -> student for every matched site, fitted on held-out token activations."""
    examples = as_examples(data)
    targets = _matched_sites(pair)
    xs: dict[str, list] = {}
    ys: dict[str, list] = {}
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            bt, bs = pair.teacher.tokenize(chunk), pair.student.tokenize(chunk)
            _, ct = pair.teacher.run(bt, read=sorted({t[3] for t in targets}))
            s_sites = sorted({f"blocks.{t[1]}.attn.hook_z" if t[2] >= 0 else f"blocks.{t[1]}.hook_resid_post"
                              for t in targets})
            _, cs = pair.student.run(bs, read=s_sites)
            m = bt["attention_mask"].bool()
            for _, sl, sh, t_site, th in targets:
                key = t_site if th is None else f"{t_site}[{th}]"
                xv = ct[t_site] if th is None else ct[t_site][:, :, th]
                yv = cs[f"blocks.{sl}.hook_resid_post"] if sh < 0 else cs[f"blocks.{sl}.attn.hook_z"][:, :, sh]
                xs.setdefault(key, []).append(xv[m])
                ys.setdefault(key, []).append(yv[m])
    return {k: fit_ridge(torch.cat(xs[k]), torch.cat(ys[k]), lam) for k in xs}


def entailment_rate(labels: Sequence[str]) -> Metric:
    """1.0 where the model predicts entailment (argmax), else 0.0; on HANS non-entailment examples
    its mean is 1 - accuracy."""
    e = [str(l).lower() for l in labels].index("entailment")
    return lambda logits: (logits.argmax(-1) == e).double()


def restoration(result: dict, metric: Metric, n_boot: int = 1000, seed: int = 0,
                allow_no_signal: bool = False) -> list[dict]:
    """Share of the teacher-student gap in `metric` each patch closes, ranked, with bootstrap intervals.

    restored = (mean patched - mean student) / (mean teacher - mean student), resampling examples;
    delta = mean patched - mean student (raw) with its interval. The gap is checked first
    (interp.signal): NoSignalError when its 95% interval includes 0 or it is under 2 standard errors;
    with `allow_no_signal=True` rows carry `no_signal: True`, `restored` NaN, and are ranked by delta.
    """
    t = check_finite(metric(result["teacher"]), "source (teacher) logits").double().numpy()
    s = check_finite(metric(result["student"]), "student logits").double().numpy()
    sig = measure_gap(t, s, what="teacher - student metric", n_boot=n_boot, seed=seed)
    ok = require_signal(sig, allow_no_signal, fix="Use examples on which teacher and student differ, more examples")

    def share(v: np.ndarray) -> float:  # [n, 3] (teacher, student, patched) -> share of the gap restored
        denom = v[:, 0].mean() - v[:, 1].mean()
        return float((v[:, 2].mean() - v[:, 1].mean()) / denom) if denom != 0 else float("nan")

    rows = []
    for label, p in result["patched"].items():
        p = check_finite(metric(p), f"student logits with {label} patched").double().numpy()
        stacked = np.stack([t, s, p], 1)  # [n, 3]
        ci = list(bootstrap_ci(stacked, n_boot, seed, of_means=gap_share)) if ok else [float("nan")] * 2
        rows.append({"component": label, "restored": share(stacked) if ok else float("nan"), "ci95": ci,
                     "delta": float(p.mean() - s.mean()), "delta_ci95": list(bootstrap_ci(p - s, n_boot, seed)),
                     "metric_patched": float(p.mean()), "no_signal": not ok})
    key = "restored" if ok else "delta"
    rows.sort(key=lambda r: (np.isnan(r[key]), -np.nan_to_num(r[key])))
    return [{"gap_teacher_minus_student": sig.gap, "gap_ci95": list(sig.ci95), "gap_significant": sig.significant,
             **r} for r in rows]


def compare_checkpoints(a: Subject, b: Subject, data: Iterable, metric: Metric | None = None,
                        batch_size: int = 32, progress: bool = True) -> list[dict]:
    """Head-by-head view of two checkpoints of one architecture (same head = same index).

    Per head: attention-pattern similarity, per-head z CKA, and the total/direct effects on the
    metric in each checkpoint with their change and a bootstrap interval of the change. A head whose
    z is constant across examples (dead: zero output) has z_cka NaN and is listed by checkpoint in
    "dead" (["b"], say); every other row has "dead": [].
    """
    from interp.capture import capture
    from interp.cka import constant_heads, head_cka_grid
    from interp.compat import check_compatible
    from interp.pair import pattern_similarity

    check_compatible(a, b)
    if (a.n_layers, a.n_heads, a.d_head) != (b.n_layers, b.n_heads, b.d_head):
        raise ValueError("compare_checkpoints needs one architecture: "
                         f"{(a.n_layers, a.n_heads, a.d_head)} vs {(b.n_layers, b.n_heads, b.d_head)} (layers, heads, d_head).")
    examples = as_examples(data)
    psim = pattern_similarity(a, b, examples, batch_size)
    za = capture(a, examples, "blocks.*.attn.hook_z", pool="mean", progress=False)
    zb = capture(b, examples, "blocks.*.attn.hook_z", pool="mean", progress=False)
    ea = head_effects(a, examples, metric, progress=progress)
    eb = head_effects(b, examples, metric, progress=progress)
    rows = []
    H = a.n_heads
    for layer in range(a.n_layers):
        site = f"blocks.{layer}.attn.hook_z"
        zcka = head_cka_grid(za.acts[site], zb.acts[site], constant="nan")  # [H, H], NaN for dead heads
        dead = {k: constant_heads(c.acts[site]) for k, c in (("a", za), ("b", zb))}
        for h in range(H):
            i = layer * H + h
            row = {"head": f"{layer}.{h}", "pattern_sim": float(psim[i, i]), "z_cka": float(zcka[h, h]),
                   "dead": [k for k in ("a", "b") if h in dead[k]]}
            for kind in ("total", "direct"):
                va, vb = ea[kind][:, layer, h], eb[kind][:, layer, h]
                row[f"{kind}_a"], row[f"{kind}_b"] = float(va.mean()), float(vb.mean())
                row[f"{kind}_change"] = float(vb.mean() - va.mean())
                row[f"{kind}_change_ci95"] = list(bootstrap_ci(vb - va))
            rows.append(row)
    return rows


def head_by_head(pair: Pair, triggering: Iterable, control: Iterable, metric: Metric | None = None,
                 batch_size: int = 32, progress: bool = True) -> list[dict]:
    """For each student head and its matched teacher head: attention-pattern similarity on
    bias-triggering vs control inputs, and total/direct effects (mean ablation) on the metric over
    the triggering inputs in each model, with the change (student - teacher) and its interval."""
    if pair.head_map is None:
        raise ValueError("The pair has no head map: set pair.head_map = match_heads(...) first.")
    trig, ctrl = as_examples(triggering), as_examples(control)
    sim_t = pattern_similarity(pair.teacher, pair.student, trig, batch_size)
    sim_c = pattern_similarity(pair.teacher, pair.student, ctrl, batch_size)
    et = head_effects(pair.teacher, trig, metric, progress=progress)
    es = head_effects(pair.student, trig, metric, progress=progress)
    ht, hs = pair.teacher.n_heads, pair.student.n_heads
    rows = []
    for (sl, sh), t in sorted(pair.head_map.matches.items()):
        row: dict = {"student_head": f"{sl}.{sh}", "teacher_head": f"{t[0]}.{t[1]}" if t else None,
                     "match_score": pair.head_map.score[(sl, sh)]}
        if t is not None:
            i, j = t[0] * ht + t[1], sl * hs + sh
            row["pattern_sim_triggering"] = float(sim_t[i, j])
            row["pattern_sim_control"] = float(sim_c[i, j])
            for kind in ("total", "direct"):
                vt, vs = et[kind][:, t[0], t[1]], es[kind][:, sl, sh]
                row[f"{kind}_teacher"], row[f"{kind}_student"] = float(vt.mean()), float(vs.mean())
                row[f"{kind}_change"] = float((vs - vt).mean())
                row[f"{kind}_change_ci95"] = list(bootstrap_ci(vs - vt))
        rows.append(row)
    return rows
