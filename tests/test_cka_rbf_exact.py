"""Exact chunked RBF CKA (triangular passes, packed median) against a float64 numpy Gram-form reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import cka as C


def ref_rbf_cka(x: np.ndarray, y: np.ndarray, t: float = 0.5, debiased: bool = False) -> float:
    """Textbook float64: full distance matrix, np.median bandwidth, Grams centred with H = I - 11^T/n."""
    def gram(z):
        z = z - z.mean(0)
        sq = (z * z).sum(1)
        d = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
        np.fill_diagonal(d, 0)
        return np.exp(-d / (2 * t**2 * np.median(d)))

    k, l = gram(x), gram(y)
    n = k.shape[0]
    if debiased:
        def hsic(a, b):
            a, b = a.copy(), b.copy()
            np.fill_diagonal(a, 0)
            np.fill_diagonal(b, 0)
            one = np.ones(n)
            return ((a * b).sum() + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * (a @ one) @ (b @ one)) / (n * (n - 3))
    else:
        h = np.eye(n) - 1.0 / n

        def hsic(a, b):
            return ((h @ a @ h) * (h @ b @ h)).sum()
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, 5))
    x = z @ g.standard_normal((5, 30)) + 0.8 * g.standard_normal((n, 30)) + 50.0  # offset: centring matters
    y = np.tanh(z @ g.standard_normal((5, 12))) + 0.4 * g.standard_normal((n, 12))
    return x, y


@pytest.mark.parametrize("n, budget", [(601, 8 * 601 * 3 * 7), (600, 5e4), (257, 512e6)])
@pytest.mark.parametrize("debiased", [False, True])
def test_chunked_rbf_matches_float64_reference(n, budget, debiased):
    """Row chunks of 7 or 3 rows (n not a multiple), and one chunk: deviation < 1e-12."""
    x, y = data(n, seed=n)
    got = C.rbf_cka(x, y, 0.5, debiased=debiased, budget_bytes=budget)
    assert abs(got - ref_rbf_cka(x, y, 0.5, debiased)) < 1e-12


def test_rbf_grid_every_cell_matches_reference():
    xs = [data(333, seed=s)[0] for s in range(2)]
    ys = [data(333, seed=s)[1] for s in range(3)]
    grid = C.rbf_cka_grid(xs, ys, 0.7, budget_bytes=1e5)
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            assert abs(grid[i, j] - ref_rbf_cka(a, b, 0.7)) < 1e-12


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 400])
def test_median_packed_and_histogram_paths_are_exact(n):
    x = np.random.default_rng(n).standard_normal((n, 4))
    z = x - x.mean(0)
    sq = (z * z).sum(1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
    np.fill_diagonal(d, 0)
    ref = np.median(d)
    assert C.median_sq_distance(x) == pytest.approx(ref, rel=1e-13, abs=1e-300)  # packed upper triangle
    assert C.median_sq_distance(x, budget_bytes=64) == pytest.approx(ref, rel=1e-13, abs=1e-300)  # histogram


def test_median_with_duplicate_rows():
    """Off-diagonal zeros (duplicates) sort together with the diagonal's zeros."""
    x = np.repeat(np.random.default_rng(5).standard_normal((6, 3)), 5, axis=0)  # 30 rows, 6 distinct
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert C.median_sq_distance(x) == pytest.approx(np.median(d), rel=1e-12)


@pytest.mark.parametrize("how", ["partition", "sort"])
def test_order_statistics_of_both_selections_match_numpy(how):
    """The CPU selection (numpy partition) and the GPU one (a sort), both run here on CPU tensors."""
    from interp.cka.rbf import _order_statistics

    u = torch.from_numpy(np.random.default_rng(3).standard_normal(10_001))
    ref = np.sort(u.numpy())
    js = [0, 17, 5000, 10_000]
    assert _order_statistics(u.clone(), js, how) == {j: float(ref[j]) for j in js}
