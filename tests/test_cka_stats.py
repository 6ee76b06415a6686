"""interp.cka_stats: floor, bootstrap, permutation null, condition grids."""
from __future__ import annotations

import numpy as np
import pytest

from interp import cka as C
from interp import cka_stats as S


def test_floor_matches_unrelated_data():
    g = np.random.default_rng(0)
    for n, d1, d2 in [(100, 50, 20), (500, 100, 100)]:
        vals = [C.linear_cka(g.standard_normal((n, d1)), g.standard_normal((n, d2))) for _ in range(20)]
        assert np.mean(vals) == pytest.approx(S.cka_floor(n, d1, d2), rel=0.1)
        # debiased CKA of unrelated data is centred on 0
        deb = [C.linear_cka(g.standard_normal((n, d1)), g.standard_normal((n, d2)), True) for _ in range(20)]
        assert abs(np.mean(deb)) < 0.02


def test_bootstrap_ci():
    g = np.random.default_rng(1)
    z = g.standard_normal((300, 4))
    x = z @ g.standard_normal((4, 10)) + g.standard_normal((300, 10))
    ys = [z @ g.standard_normal((4, 6)) + s * g.standard_normal((300, 6)) for s in (0.5, 3.0)]
    out = S.bootstrap_cka([x], ys, n_boot=60, seed=0)
    est = out["estimate"]
    assert est.shape == (1, 2)
    assert np.allclose(est, C.cka_grid([x], ys)["xy"])
    assert np.all(out["lo"] < est) and np.all(est < out["hi"])
    assert np.all(out["se"] > 0) and np.all(out["se"] < 0.1)
    # replicate 0 equals resampling the rows explicitly
    rng = np.random.default_rng(0)
    counts = rng.multinomial(300, np.full(300, 1 / 300))
    rows = np.repeat(np.arange(300), counts)
    assert out["samples"][0, 0, 0] == pytest.approx(C.linear_cka(x[rows], ys[0][rows]), abs=1e-10)


def test_permutation_null():
    g = np.random.default_rng(2)
    x = g.standard_normal((200, 30))
    y_rel = x[:, :10] + g.standard_normal((200, 10))
    y_unrel = g.standard_normal((200, 10))
    rel = S.permutation_null(x, y_rel, n_perm=99)
    assert rel["observed"] == pytest.approx(C.linear_cka(x, y_rel), abs=1e-12)
    assert rel["p_value"] == pytest.approx(0.01)
    unrel = S.permutation_null(x, y_unrel, n_perm=99)
    assert unrel["p_value"] > 0.01
    # the null sits at the analytic floor
    assert np.mean(rel["null"]) == pytest.approx(S.cka_floor(200, 30, 10), rel=0.15)
    deb = S.permutation_null(x, y_rel, n_perm=30, debiased=True)
    assert abs(np.mean(deb["null"])) < 0.03 and deb["p_value"] == pytest.approx(1 / 31)


def test_condition_grids_and_difference():
    g = np.random.default_rng(3)
    n = 400
    aligned = np.arange(n) % 2 == 0
    z = g.standard_normal((n, 3))
    x = [z @ g.standard_normal((3, 12)) + g.standard_normal((n, 12)) for _ in range(2)]
    y = z @ g.standard_normal((3, 8)) + g.standard_normal((n, 8))
    y[~aligned] = g.standard_normal(((~aligned).sum(), 8))  # student unrelated on conflicting examples
    out = S.condition_grids(x, [y], {"aligned": aligned, "conflicting": ~aligned}, n_boot=30)
    ga, gc = out["grids"]["aligned"], out["grids"]["conflicting"]
    assert ga[0, 0] == pytest.approx(C.linear_cka(x[0][aligned], y[aligned]), abs=1e-12)
    assert gc[1, 0] == pytest.approx(C.linear_cka(x[1][~aligned], y[~aligned]), abs=1e-12)
    assert np.allclose(out["difference"], ga - gc)
    assert np.all(out["difference_lo"] > 0)
    assert out["n"] == {"aligned": 200, "conflicting": 200}
    with pytest.raises(ValueError, match="mask has"):
        S.condition_grids(x, [y], {"a": aligned[:10]})
