"""The pruning search (interp.circuits.discovery.crossing / prune) against exhaustive answers."""
from __future__ import annotations

import math
import random

import pytest

from interp.circuits.discovery import crossing, prune, start_count


def _calls(reaches):
    seen: list[int] = []

    def f(k: int) -> bool:
        seen.append(k)
        return reaches(k)
    return f, seen


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 7588])
def test_exact_crossing_of_a_step_is_the_threshold_from_any_start(n):
    for threshold in sorted({t for t in (1, 2, n // 3 + 1, n // 2 + 1, n) if t <= n}):
        for start in sorted({1, 2, threshold, n // 4 + 1, n - 1, n}):
            f, seen = _calls(lambda k, t=threshold: k >= t)
            assert crossing(n, f, start) == threshold
            assert n not in seen  # the full set is assumed to reach the target, never run
            # galloping from start costs at most about log2 of how far off it was, plus the bisection
            off = abs(math.log2(max(threshold, 1) / max(min(start, n - 1), 1))) if n > 1 else 0
            assert len(seen) <= off + 2 * math.log2(n + 1) + 2


@pytest.mark.parametrize("tolerance", [0.01, 0.02, 0.1])
def test_tolerant_crossing_is_certified_by_a_nearby_count_that_does_not_reach(tolerance):
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 10000)
        # non-monotone: noise around a rising trend, as faithfulness curves are
        base = rng.randint(1, n)
        flips = {rng.randint(1, n) for _ in range(rng.randint(0, 20))}
        def reach(k, base=base, flips=flips):
            return (k >= base) != (k in flips)
        f, seen = _calls(reach)
        k = crossing(n, f, rng.randint(1, n), tolerance)
        assert 1 <= k <= n
        assert k == n or reach(k)
        below = [j for j in seen if j < k and not reach(j)] + [0]
        assert k - max(below) <= max(1, int(tolerance * k))


def test_tolerance_saves_runs_on_a_large_candidate_set():
    n, threshold = 7588, 601
    exact, seen0 = _calls(lambda k: k >= threshold)
    tol, seen2 = _calls(lambda k: k >= threshold)
    assert crossing(n, exact, 175) == threshold
    k = crossing(n, tol, 175, 0.02)
    assert threshold <= k <= threshold * 1.02 + 1
    assert len(seen2) < len(seen0)


def test_start_count_is_the_share_of_the_absolute_scores():
    order = ["a", "b", "c", "d"]
    scores = {"a": 0.5, "b": -0.3, "c": 0.15, "d": 0.05}  # |share| cumulative: 0.5, 0.8, 0.95, 1.0
    assert start_count(order, scores, 0.5) == 1
    assert start_count(order, scores, 0.8) == 2
    assert start_count(order, scores, 0.9) == 3
    assert start_count(order, {k: 0.0 for k in order}, 0.8) == 2  # no scores: the middle


def test_prune_returns_the_fewest_top_items_reaching_the_target():
    items = [f"e{i}" for i in range(50)]
    scores = {x: 1.0 / (i + 1) for i, x in enumerate(items)}
    rng = random.Random(1)
    shuffled = items[:]
    rng.shuffle(shuffled)
    # faithfulness of a kept set: the share of the top-|score| items it holds (clean 1, corrupted 0)

    def evaluate(kept):
        return len(kept) / 50.0

    kept, faith = prune(shuffled, scores, evaluate, clean=1.0, corrupt=0.0, target=0.5)
    assert kept == items[:25] and faith == 0.5
