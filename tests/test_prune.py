"""The pruning search (interp.circuits.discovery.crossing / prune) against exhaustive answers."""
from __future__ import annotations

import math
import random

import pytest
import torch

from interp.circuits.discovery import _closing, crossing, prune, score_shares


def _calls(value):
    seen: list[int] = []

    def f(k: int) -> float:
        seen.append(k)
        return value(k)
    return f, seen


def _shares_starting_at(n: int, start: int) -> torch.Tensor:
    """Shares whose first count reaching 0.5 is `start` (linear on each side)."""
    k = torch.arange(n + 1, dtype=torch.float64)
    return torch.where(k <= start, 0.5 * k / start, 0.5 + 0.5 * (k - start) / max(n - start, 1))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 7588])
def test_exact_crossing_of_a_step_is_the_threshold_from_any_first_guess(n):
    for threshold in sorted({t for t in (1, 2, n // 3 + 1, n // 2 + 1, n) if t <= n}):
        for start in sorted({1, 2, threshold, n // 4 + 1, n - 1, n}):
            f, seen = _calls(lambda k, t=threshold: float(k >= t))
            assert crossing(n, f, 0.5, _shares_starting_at(n, start)) == threshold
            assert n not in seen and 0 not in seen  # the full and the empty set are assumed, never run
            assert len(seen) == len(set(seen))      # no count twice
            # a step carries no slope: the search gallops from its first guess, then bisects with its guard
            off = abs(math.log2(max(threshold, 1) / max(min(start, n - 1), 1))) if n > 1 else 0
            assert len(seen) <= 2 * off + 2 * math.log2(n + 1) + 3


@pytest.mark.parametrize("tolerance", [0.01, 0.02, 0.1])
def test_tolerant_crossing_is_certified_by_a_nearby_count_that_does_not_reach(tolerance):
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 10000)
        # non-monotone: noise around a rising trend, as faithfulness curves are
        base = rng.randint(1, n)
        flips = {rng.randint(1, n) for _ in range(rng.randint(0, 20))}
        wobble = rng.random() * 0.3

        def value(k, base=base, flips=flips, wobble=wobble):
            reached = (k >= base) != (k in flips)
            return 0.5 + (0.5 if reached else -0.5) * (1 - wobble * math.sin(k))  # values, not just 0/1
        f, seen = _calls(value)
        shares = torch.cat([torch.zeros(1, dtype=torch.float64),
                            torch.rand(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64).cumsum(0)])
        k = crossing(n, f, 0.5, shares / shares[-1], tolerance)
        assert 1 <= k <= n
        assert k == n or value(k) >= 0.5
        below = [j for j in seen if j < k and not value(j) >= 0.5] + [0]
        assert k - max(below) <= max(1, int(tolerance * k))


def test_a_faithfulness_curve_the_shares_predict_takes_few_runs():
    # faithfulness a smooth concave function of the score share, the crossing far from the share's own guess
    n, target = 7588, 0.8
    w = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 1.1           # |scores| falling like a power law
    shares = torch.cat([torch.zeros(1, dtype=torch.float64), w.cumsum(0) / w.sum()])
    exact = int(torch.searchsorted(shares.sqrt() * 0.9 + 0.1 * shares, torch.tensor(target, dtype=torch.float64)))
    f, seen = _calls(lambda k: float(shares[k].sqrt() * 0.9 + 0.1 * shares[k]))
    k = crossing(n, f, target, shares, 0.02)
    assert exact <= k <= exact + max(1, int(0.02 * k)), (k, exact)
    g, uniform = _calls(lambda k: float(shares[k].sqrt() * 0.9 + 0.1 * shares[k]))
    j = crossing(n, g, target, None, 0.02)  # without the shares: the same certificate, more runs
    assert exact <= j <= exact + max(1, int(0.02 * j)), (j, exact)
    assert len(seen) <= 5, seen
    assert len(seen) < len(uniform), (seen, uniform)


def test_tolerance_saves_runs_on_a_large_candidate_set():
    n, threshold = 7588, 601
    exact, seen0 = _calls(lambda k: float(k >= threshold))
    tol, seen2 = _calls(lambda k: float(k >= threshold))
    shares = _shares_starting_at(n, 175)
    assert crossing(n, exact, 0.5, shares) == threshold
    k = crossing(n, tol, 0.5, shares, 0.02)
    assert threshold <= k <= threshold * 1.02 + 1
    assert len(seen2) < len(seen0)


def test_a_bracket_one_count_can_close_gets_that_count():
    """The teacher's search of `interp circuit` (target 0.8, tolerance 0.02) reached the bracket (594, 618):
    606 ends it whatever its value (606 - 594 <= 12, 618 - 606 <= 12); it had probed 608 and then needed 601."""
    assert _closing(594, 618, 0.02, 608) == 606
    for lo, hi, k in ((594, 618, 608), (10, 12, 11), (100, 103, 102), (5000, 5150, 5100)):
        j = _closing(lo, hi, 0.02, k)
        assert j - lo <= max(1, int(0.02 * j)) and hi - j <= max(1, int(0.02 * hi)), (lo, hi, j)
    assert _closing(592, 651, 0.02, 618) == 618  # too wide for one count: the search's own choice
    assert _closing(0, 7588, 0.02, 601) == 601
    # on a step whose threshold sits in such a bracket the search ends with that count
    f, seen = _calls(lambda k: float(k >= 600))
    assert crossing(7588, f, 0.5, _shares_starting_at(7588, 601), 0.02) - max(j for j in seen if j < 600) <= 12


def test_score_shares_are_the_cumulative_share_of_the_absolute_scores():
    order = ["a", "b", "c", "d"]
    scores = {"a": 0.5, "b": -0.3, "c": 0.15, "d": 0.05}
    assert torch.allclose(score_shares(order, scores), torch.tensor([0.0, 0.5, 0.8, 0.95, 1.0], dtype=torch.float64))
    assert torch.allclose(score_shares(order, {k: 0.0 for k in order}),  # no scores: uniform
                          torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))


def test_crossing_refuses_shares_of_the_wrong_length():
    with pytest.raises(ValueError, match="n \\+ 1 = 11 entries"):
        crossing(10, lambda k: 1.0, 0.5, torch.zeros(10))


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
