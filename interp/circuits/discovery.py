"""Pruning and discovery: keep the fewest top-|score| nodes or edges that reach a target faithfulness,
then report faithfulness and completeness with paired bootstrap intervals; AUROC against a known answer."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from interp.circuits.circuit import Circuit
from interp.circuits.edges import _edge_effects
from interp.circuits.evaluation import _faith, _mean, edge_runner, faithfulness_ci, node_runner, record_pairs
from interp.circuits.graph import _check_arch, all_edges, node_names
from interp.circuits.nodes import _node_effects, _normalised, _require
from interp.contrast import Contrast
from interp.patching import endpoint_values, gap_signal
from interp.progress import bar as progress_bar


def score_shares(order: list[str], scores: dict[str, float]) -> torch.Tensor:
    """[n + 1] float64: the share of the total |score| held by the first k items of `order` (0 at k = 0, 1 at
    k = n; uniform when every score is 0). The search's map from a faithfulness to a count."""
    s = torch.tensor([abs(scores[x]) for x in order], dtype=torch.float64)
    total = float(s.sum())
    if not total > 0:
        s, total = torch.ones_like(s), float(len(order))
    return torch.cat([s.new_zeros(1), s.cumsum(0) / total]).clamp_(max=1.0)


def crossing(n: int, value: Callable[[int], float], target: float, shares: torch.Tensor | None = None,
             tolerance: float = 0.0) -> int:
    """A count k in [1, n] with value(k) >= target and value(j) < target for some j >= k - max(1, tolerance * k)
    (j = 0 counts as below). value(0) = 0 and value(n) = 1 are assumed, not evaluated (faithfulness of the
    empty and the full set).

    A safeguarded interpolation search: each count is placed where the straight line between the two
    bracketing values reaches `target`, with the count measured on `shares` [n + 1] (nondecreasing from 0
    to 1; default k / n), so that a score share that predicts faithfulness well gets the first count
    right; it is then moved by half the tolerance to the side that would close the bracket. Where two
    counts in a row did not halve the bracket, the next one bisects it (at most about 2 log2(n) counts).
    Where one count ends the search whatever its value, that count is taken (`_closing`).
    Where `value` is not monotone this is one crossing, which depends on the path."""
    x = torch.linspace(0, 1, n + 1, dtype=torch.float64) if shares is None else shares.to(torch.float64)
    if x.shape != (n + 1,):
        raise ValueError(f"shares must have n + 1 = {n + 1} entries, not {tuple(x.shape)}")
    lo, f_lo, hi, f_hi = 0, 0.0, n, 1.0
    widths = [n]

    def done() -> bool:
        return hi - lo <= max(1, int(tolerance * hi))

    def at(share: float) -> int:  # the first count whose share reaches `share`
        return int(torch.searchsorted(x, torch.tensor(share, dtype=torch.float64)))

    k, below, probes, counts = at(target), True, [], []
    while not done():
        k = _closing(lo, hi, tolerance, min(max(k, lo + 1), hi - 1))
        f = value(k)
        probes.append((float(x[k]), f))
        counts.append(k)
        below = not f >= target  # NaN counts as not reaching
        if below:
            lo, f_lo = k, f
        else:
            hi, f_hi = k, f
        widths.append(hi - lo)
        if 0 < lo and hi < n and len(widths) >= 3 and widths[-1] > widths[-3] / 2:  # two counts did not halve it
            k, widths = (lo + hi) // 2, [hi - lo]
            continue
        # the line through the bracket's ends; while one end is still assumed (0 or n), the line through the
        # last two counts instead (faithfulness is rarely linear out to the assumed ends), followed at most
        # twice their distance past the last
        (xa, fa), (xb, fb) = ((float(x[lo]), f_lo), (float(x[hi]), f_hi))
        reach = n
        if (lo == 0 or hi == n) and len(probes) >= 2 and probes[-1][0] != probes[-2][0]:
            (xa, fa), (xb, fb) = probes[-2], probes[-1]
            reach = 2 * max(1, abs(counts[-1] - counts[-2]))
        slope = (fb - fa) / (xb - xa) if xb != xa else 0.0
        if slope > 0:
            guess = at(min(max(xa + (target - fa) / slope, float(x[lo])), float(x[hi])))
            step = max(1, int(tolerance * guess / 2))
            k = min(max(guess + step if below else guess - step, k - reach), k + reach)
        else:  # no rising line: go on past the last count by `reach` (the bisection guard still applies)
            k = k + min(reach, max(1, k)) if below else k - min(reach, max(1, k // 2))
    return hi


def _closing(lo: int, hi: int, tolerance: float, k: int) -> int:
    """`k`, or, where the bracket (lo, hi) is narrow enough that one count j ends the search whatever its
    value (reaching: j - lo within tolerance of j; not reaching: hi - j within tolerance of hi), the
    nearest such j to k."""
    first = hi - max(1, int(tolerance * hi))
    ends = [j for j in range(max(first, lo + 1), hi) if j - lo <= max(1, int(tolerance * j))]
    return min(ends, key=lambda j: abs(j - k)) if ends else k


def prune(items: list[str], scores: dict[str, float], evaluate, clean: float, corrupt: float,
          target: float, tolerance: float = 0.0) -> tuple[list[str], float]:
    """Fewest top-|score| items whose faithfulness reaches `target`, to within `tolerance` (relative: the
    kept count is at most that share above a count that does not reach it; 0 = exact), by `crossing` on
    the items' |score| shares. `evaluate(kept)` returns the mean metric of the circuit run, or its
    per-pair values."""
    order = sorted(items, key=lambda x: -abs(scores[x]))

    def value(k: int) -> float:
        return _faith(_mean(evaluate(order[:k])), clean, corrupt)

    chosen = order[:crossing(len(order), value, target, score_shares(order, scores), tolerance)]
    return chosen, _faith(_mean(evaluate(chosen)), clean, corrupt)


def _no_signal_circuit(level: str, effects: dict[str, float], meta: dict[str, Any]) -> Circuit:
    """The override's result: raw metric changes, nothing pruned, no faithfulness to report."""
    meta = {**meta, "no_signal": True, "scores_unit": "raw metric change (no signal: not normalised)",
            "faithfulness": None, "completeness": None, "faithfulness_ci95": None, "completeness_ci95": None}
    return Circuit([], [], effects, meta)


def discover(subject: Any, contrast: Contrast, level: str = "node", method: str = "exact",
             direction: str = "noise", target: float = 0.8, batch_size: int = 32,
             allow_no_signal: bool = False, steps: int = 8, tolerance: float = 0.02) -> Circuit:
    """Score nodes or edges (`method` exact, atp or ig; `steps` integration points of ig), prune to
    `target` faithfulness (the fewest top-|score| items to within `tolerance`, relative: see `prune`;
    0 = exact), report faithfulness and completeness with paired bootstrap 95% intervals. The
    clean - corrupted gap is checked first (see interp.circuits): NoSignalError when it is not significant;
    `allow_no_signal=True` returns raw scores, unpruned."""
    if level not in ("node", "edge"):
        raise ValueError(f"level must be 'node' or 'edge', not {level!r}.")
    _check_arch(subject)
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance is a relative share of the circuit's size in [0, 1), not {tolerance!r}.")
    recorded = record_pairs(subject, contrast, batch_size) if level == "edge" else None
    if recorded is not None:  # the edge runs' recorded passes give the endpoints too  [n] each
        clean_v, corrupt_v = (torch.cat([side.metric for side in sides]) for sides in zip(*recorded))
    else:
        clean_v, corrupt_v = endpoint_values(subject, contrast, batch_size)  # [n] each; NaN-checked per layer
    sig = gap_signal(clean_v, corrupt_v, allow_no_signal=True)[0]
    ok = _require(sig, allow_no_signal)
    meta = {"level": level, "method": method, **({"steps": steps} if method == "ig" else {}), "direction": direction,
            "target": target, "tolerance": tolerance, "n_pairs": len(contrast),
            "model": subject.name, "fingerprint": subject.fingerprint, "n_layers": subject.n_layers,
            "n_heads": subject.n_heads, "metric": contrast.meta.get("metric", ""), "signal": sig.to_dict(),
            "no_signal": not ok}
    if level == "node":
        effects, clean, corrupt, _ = _node_effects(subject, contrast, method, direction, batch_size, steps)
        items = node_names(subject)
        run = node_runner(subject, contrast, batch_size)
    else:
        effects, clean, corrupt = _edge_effects(subject, contrast, method, direction, batch_size, steps=steps,
                                                recorded=recorded)
        items = all_edges(subject)
        run = edge_runner(subject, contrast, batch_size, recorded)
    meta.update({"n_candidates": len(items), "clean_metric": clean, "corrupt_metric": corrupt})
    if not ok:
        return _no_signal_circuit(level, effects, meta)
    scores = _normalised(effects, clean, corrupt, ok)
    seen: dict[int, torch.Tensor] = {}  # prefix length of the sorted list -> per-pair metric (each run once)
    # circuit runs: the search's (their number depends on where it starts), then the complement
    bar = progress_bar(total=None, desc=f"pruning {level} circuit {subject.name}", unit="run")

    def ev(keep: list[str]) -> torch.Tensor:
        if len(keep) not in seen:
            bar.set_postfix(size=len(keep))
            seen[len(keep)] = run(keep)
            bar.update()
        return seen[len(keep)]

    try:
        chosen, faith = prune(items, scores, ev, clean, corrupt, target, tolerance)
        bar.set_postfix(size=len(chosen), then="complement")
        cs = set(chosen)
        comp_v = run([x for x in items if x not in cs])  # the complement: 1 - its faithfulness = completeness
        bar.update()
    finally:
        bar.close()
    comp = 1.0 - _faith(_mean(comp_v), clean, corrupt)
    f_lo, f_hi = faithfulness_ci(clean_v, corrupt_v, seen[len(chosen)])
    c_lo, c_hi = faithfulness_ci(clean_v, corrupt_v, comp_v)
    if level == "node":
        nodes, edges = chosen, []
    else:
        edges = chosen
        nodes = sorted({p for e in edges for p in (e.split("->")[0], e.split("->")[1].split(".")[0])},
                       key=lambda n: (n != "input", n == "logits", n))
    meta.update({"faithfulness": faith, "faithfulness_ci95": [f_lo, f_hi], "completeness": comp,
                 "completeness_ci95": [1.0 - c_hi, 1.0 - c_lo], "scores_unit": "share of the clean - corrupted gap"})
    return Circuit(nodes, edges, scores, meta)


def auroc(scores: dict[str, float], positives: Iterable[str]) -> float:
    """Area under the ROC curve of |score| separating `positives` from the rest (ties count half)."""
    pos = set(positives)
    p = [abs(v) for k, v in scores.items() if k in pos]
    n = [abs(v) for k, v in scores.items() if k not in pos]
    if not p or not n:
        return math.nan
    wins = sum((a > b) + 0.5 * (a == b) for a in p for b in n)
    return wins / (len(p) * len(n))
