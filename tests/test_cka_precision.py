"""Mixed-precision linear CKA (float32 products in row blocks, float64 accumulation): its measured error
bound against the float64 path, the interval arithmetic behind it, and precision='auto'."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import cka as C
from interp.cka.precision import cka_bound


def layers(n: int, seed: int, offset: float = 0.0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Related float32 layers with different widths and scales, a shared latent, and a large common offset."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 12, generator=g)
    xs = [z @ torch.randn(12, d, generator=g) * s + torch.randn(n, d, generator=g) + offset
          for d, s in ((48, 1.0), (32, 10.0), (40, 0.1))]
    ys = [torch.tanh(z @ torch.randn(12, d, generator=g)) + 0.5 * torch.randn(n, d, generator=g) + offset
          for d in (24, 36)]
    return xs, ys


@pytest.mark.parametrize("debiased", [False, True])
def test_mixed_error_within_measured_bound(debiased):
    xs, ys = layers(3000, seed=0, offset=300.0)
    acc64 = C.CKAAccumulator(self_grids=True)
    accm = C.CKAAccumulator(self_grids=True, precision="mixed", block_rows=1024)  # 3 blocks, one partial
    for i in range(0, 3000, 1100):  # batches that straddle the float32 blocks
        acc64.update([x[i : i + 1100] for x in xs], [y[i : i + 1100] for y in ys])
        accm.update([x[i : i + 1100] for x in xs], [y[i : i + 1100] for y in ys])
    for which, ref, got in (("xy", acc64.result(debiased), accm.result(debiased)),
                            ("x", acc64.self_grid("x", debiased), accm.self_grid("x", debiased)),
                            ("y", acc64.self_grid("y", debiased), accm.self_grid("y", debiased))):
        bound = accm.error_bound(debiased, which)
        dev = np.abs(got - ref)
        assert np.all(dev <= bound), (which, dev.max(), bound.min())
        assert dev.max() > 0  # float32 products really were used
        assert bound.max() < 1e-4  # and the bound is useful, not vacuous


def test_bound_catches_an_injected_product_error():
    """The probes measure the accumulated product, whatever put the error there: a planted error in
    X^T Y moves CKA by far more than rounding, and the bound grows to cover it."""
    xs, ys = layers(2000, seed=1)
    ref = C.CKAAccumulator().update(xs, ys).result()
    acc = C.CKAAccumulator(precision="mixed").update(xs, ys)
    b0 = acc.error_bound()
    g = torch.Generator().manual_seed(9)
    acc.c.add_(1e-3 * float(acc.c.abs().mean()) * torch.randn(acc.c.shape, generator=g, dtype=torch.float64))
    dev = np.abs(acc.result() - ref)
    b1 = acc.error_bound()
    assert dev.max() > 100 * b0.max()
    assert np.all(dev <= b1)


def test_interval_bound_brute_force():
    """cka_bound is the exact range of h / sqrt(hx hy) over the box: random points inside never exceed it."""
    rng = np.random.default_rng(2)
    h, hx, hy = 0.3, 1.2, 0.8
    dh, dhx, dhy = 0.01, 0.05, 0.02
    b = float(cka_bound(np.array(h), np.array(dh), np.array(hx), np.array(dhx), np.array(hy), np.array(dhy)))
    u = rng.uniform(-1, 1, size=(3, 100_000))
    vals = (h + dh * u[0]) / np.sqrt((hx + dhx * u[1]) * (hy + dhy * u[2]))
    worst = np.abs(vals - h / np.sqrt(hx * hy)).max()
    assert worst <= b and worst > 0.95 * b  # tight: the corners are attained
    assert np.isinf(cka_bound(np.array(h), np.array(dh), np.array(hx), np.array(2 * hx), np.array(hy), np.array(dhy)))


def test_auto_keeps_mixed_under_tol_and_falls_back_otherwise():
    xs, ys = layers(1500, seed=3)
    exact = C.cka_grid(xs, ys)
    assert exact.precision == "float64" and exact.error_bound == {}
    auto = C.cka_grid(xs, ys, precision="auto")
    assert auto.precision == "mixed"
    assert np.all(np.abs(auto.grid - exact.grid) <= auto.error_bound["xy"])
    strict = C.cka_grid(xs, ys, precision="auto", tol=1e-15)  # no float32 result can promise this
    assert strict.precision == "float64" and strict.error_bound == {}
    np.testing.assert_array_equal(strict.grid, exact.grid)
    sym = C.cka_grid(xs, None, precision="mixed", debiased=True)
    assert np.all(np.abs(sym.grid - C.cka_grid(xs, None, debiased=True).grid) <= sym.error_bound["xx"])
    assert C.linear_cka(xs[0], ys[0], precision="auto") == pytest.approx(exact.grid[0, 0], abs=1e-5)


def test_precision_is_validated():
    xs, ys = layers(100, seed=4)
    with pytest.raises(ValueError, match="precision must be"):
        C.cka_grid(xs, ys, precision="float32")
    with pytest.raises(ValueError, match="precision must be"):
        C.CKAAccumulator(precision="auto")
    with pytest.raises(ValueError, match="mixed' only"):
        C.CKAAccumulator().update(xs, ys).error_bound()


def numpy_cka(xs: list[torch.Tensor], ys: list[torch.Tensor], debiased: bool) -> np.ndarray:
    """Independent float64 reference: exact centring in numpy, then (biased) ||Xc^T Yc||^2 or HSIC_1 of
    the centred Gram matrices, normalised per pair."""
    def h(a: np.ndarray, b: np.ndarray) -> float:
        if not debiased:
            return float(((a.T @ b) ** 2).sum())
        n = a.shape[0]
        k, l = a @ a.T, b @ b.T
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(l, 0.0)
        one = np.ones(n)
        return float(((k * l).sum() + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
                      - 2.0 / (n - 2) * (k @ one) @ (l @ one)) / (n * (n - 3)))

    cx = [x.double().numpy() - x.double().numpy().mean(0) for x in xs]
    cy = [y.double().numpy() - y.double().numpy().mean(0) for y in ys]
    return np.array([[h(a, b) / np.sqrt(h(a, a) * h(b, b)) for b in cy] for a in cx])


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kind", ["random", "ill"])
def test_fast_mixed_path_against_numpy(kind, debiased):
    """The chunked mixed update (cross grids, no weights: what cka_grid uses) against an independent numpy
    float64 formula, on plain data and on ill-conditioned data (offset 1e4 times the spread, scales 1e-3
    to 1e3, a nearly collinear layer); streamed in batches that straddle the float32 blocks and chunks.
    Its float64 statistics equal the float64 path's to rounding."""
    n = 1500
    xs, ys = layers(n, seed=5)
    if kind == "ill":
        g = torch.Generator().manual_seed(6)
        xs = [xs[0] * 1e-3 + 1e1, xs[1] * 1e3 - 3e5, xs[2] + 1e4]
        ys = [ys[0] + 2e3, torch.cat([ys[0][:, :1] + 1e-4 * torch.randn(n, 1, generator=g), ys[1]], 1)]
    ref = numpy_cka(xs, ys, debiased)
    acc64 = C.CKAAccumulator()
    accm = C.CKAAccumulator(precision="mixed", block_rows=700)
    for i in range(0, n, 550):
        acc64.update([x[i : i + 550] for x in xs], [y[i : i + 550] for y in ys])
        accm.update([x[i : i + 550] for x in xs], [y[i : i + 550] for y in ys])
    got, bound = accm.result(debiased), accm.error_bound(debiased)
    dev = np.abs(got - ref)
    assert np.all(dev <= bound + 1e-12), (dev.max(), bound.min())
    assert bound.max() < 1e-3 and dev.max() > 0
    assert np.abs(acc64.result(debiased) - ref).max() < 1e-10
    # both shift by the first batch's mean: the O(n d) statistics are float64 in both paths
    for a, b in ((accm.x.s, acc64.x.s), (accm.y.xr, acc64.y.xr), (accm.xq, acc64.xq), (accm.yr, acc64.yr),
                 (accm.rq, acc64.rq), (accm.x.rr, acc64.x.rr), (accm.y.rsum, acc64.y.rsum)):
        assert float((a - b).abs().max()) <= 1e-9 * max(float(b.abs().max()), 1.0)
    auto = C.cka_grid(xs, ys, debiased=debiased, precision="auto", tol=1.0)
    assert auto.precision == "mixed"
    assert np.all(np.abs(auto.grid - ref) <= auto.error_bound["xy"] + 1e-12)


def test_fast_mixed_path_rejects_nan():
    xs, ys = layers(300, seed=7)
    ys[1][200, 3] = float("nan")
    with pytest.raises(ValueError, match=r"y\['1'\].*NaN/inf"):
        C.cka_grid(xs, ys, precision="mixed")


@pytest.mark.parametrize("kind", ["random", "ill"])
def test_biased_only_pass_against_numpy(kind):
    """The layer-by-layer biased-only pass (what cka_grid builds for biased CKA) against the independent numpy
    float64 formula, streamed in batches that straddle the float32 blocks and chunks; its column sums equal
    the float64 path's; result_with_bound matches result + error_bound; debiased results are refused."""
    n = 1500
    xs, ys = layers(n, seed=8)
    if kind == "ill":
        xs = [xs[0] * 1e-3 + 1e1, xs[1] * 1e3 - 3e5, xs[2] + 1e4]
        ys = [ys[0] + 2e3, ys[1] * 1e2]
    ref = numpy_cka(xs, ys, debiased=False)
    acc64 = C.CKAAccumulator()
    acc = C.CKAAccumulator(precision="mixed", block_rows=700, biased_only=True)
    for i in range(0, n, 550):
        acc64.update([x[i : i + 550] for x in xs], [y[i : i + 550] for y in ys])
        acc.update([x[i : i + 550] for x in xs], [y[i : i + 550] for y in ys])
    got, bound = acc.result_with_bound()
    assert np.all(np.abs(got - ref) <= bound + 1e-12) and bound.max() < 1e-3 and np.abs(got - ref).max() > 0
    np.testing.assert_array_equal(got, acc.result())
    np.testing.assert_allclose(bound, acc.error_bound(), rtol=1e-12)
    for a, b in ((acc.x.s, acc64.x.s), (acc.y.s, acc64.y.s)):
        assert float((a - b).abs().max()) <= 1e-9 * max(float(b.abs().max()), 1.0)
    with pytest.raises(ValueError, match="biased_only"):
        acc.result(debiased=True)
    grid = C.cka_grid(xs, ys, precision="mixed")
    assert np.all(np.abs(grid.grid - ref) <= grid.error_bound["xy"] + 1e-12)


def test_biased_only_pass_rejects_nan_and_constant_layers():
    xs, ys = layers(300, seed=9)
    bad = [x.clone() for x in xs]
    bad[2][250, 5] = float("inf")
    with pytest.raises(ValueError, match=r"x\['2'\].*NaN/inf"):
        C.CKAAccumulator(precision="mixed", biased_only=True).update(bad, ys)
    const = [y.clone() for y in ys]
    const[0][:] = 7.25
    with pytest.raises(ValueError, match=r"y\['0'\].*constant"):
        C.cka_grid(xs, const, precision="mixed")


def test_auto_is_mixed_on_a_cpu_and_float64_on_a_gpu():
    # the choice only (no GPU needed): on a GPU float64 products are not slower than float32 ones
    from interp.cka.grid import _arithmetic

    assert _arithmetic("auto", torch.device("cpu")) == "mixed"
    assert _arithmetic("auto", torch.device("cuda", 0)) == "float64"
    assert _arithmetic("mixed", torch.device("cuda")) == "mixed"  # asked for explicitly: kept
    assert _arithmetic("float64", torch.device("cpu")) == "float64"
