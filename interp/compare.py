"""Teacher vs student, head by head: effects on the HANS metric, cross-model patching, and the
attribution of the student's lost robustness to heads and layers.

The metric is the entailment margin: entailment logit minus logsumexp of the other logits
(for a 2-way head, the plain logit difference). On HANS non-entailment examples a model that
follows the lexical-overlap heuristic has a high margin; robustness lowers it.

Every intervention resumes the forward pass at the first layer it touches (interp.engine.run_from), so
the layers before it are computed once per batch, not once per component.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from interp import engine
from interp.cache import ActivationCache
from interp.contrast import LogOdds
from interp.inputs import as_examples
from interp.interventions import Batch, after_z, head_write, prepare, resume, token_mask
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


def _layer_head_effects(subject: Subject, b: Batch, cache: ActivationCache, layer: int, z: torch.Tensor,
                        mean: torch.Tensor, metric: Metric) -> tuple[torch.Tensor, torch.Tensor]:
    """Metric with each head of `layer` mean-ablated, all heads at once (copy h ablates head h): total and
    direct [batch, head] (see _after_z). z: [batch, pos, head, d_head], mean: [head, d_head]."""
    H, B = subject.n_heads, z.shape[0]
    idx = torch.arange(H, device=z.device)
    zz = z.unsqueeze(0).repeat(H, 1, 1, 1, 1)                                 # [copy, batch, pos, head, d_head]
    zz[idx, :, :, idx] = mean[:, None, None, :]
    total, direct = after_z(subject, b, cache, layer, zz)
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
    prepared = prepare(subject, examples, batch_size, extra_reads=[*z_sites, *later])
    n_tokens = sum(token_mask(b).sum() for b, _ in prepared)
    means = {s: sum(((c[s] * token_mask(b)[:, :, None, None]).sum((0, 1)) for b, c in prepared),
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
                    w = {site: head_write(h, means[site][h])}
                    total[row:row + n, layer, h] = (metric(resume(subject, b, layer, w)) - base).cpu().numpy()
                    direct[row:row + n, layer, h] = (
                        metric(resume(subject, b, layer, {**w, **frozen})) - base).cpu().numpy()
                    bar.update(1)
            row += n
    bar.close()
    return {"total": total, "direct": direct, "clean": clean}


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

    rows = []
    for label, p in result["patched"].items():
        p = check_finite(metric(p), f"student logits with {label} patched").double().numpy()
        stacked = np.stack([t, s, p], 1)  # [n, 3]
        ci = list(bootstrap_ci(stacked, n_boot, seed, of_means=gap_share)) if ok else [float("nan")] * 2
        rows.append({"component": label, "restored": float(gap_share(stacked.mean(0))) if ok else float("nan"), "ci95": ci,
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
