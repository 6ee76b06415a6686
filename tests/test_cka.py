"""interp.cka against an independent float64 textbook (Gram-form) implementation written here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import cka as C


# ---- textbook reference: Gram form, explicit centring matrix H, Song et al. HSIC_1 ------------
def gram_linear(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def gram_rbf(x: np.ndarray, t: float) -> np.ndarray:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # explicit pairwise differences
    return np.exp(-d / (2 * t**2 * np.median(d)))


def hsic0(k: np.ndarray, l: np.ndarray) -> float:
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def hsic1(k: np.ndarray, l: np.ndarray) -> float:
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def ref_cka(k: np.ndarray, l: np.ndarray, debiased: bool = False) -> float:
    f = hsic1 if debiased else hsic0
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


def kornblith_data() -> tuple[np.ndarray, np.ndarray]:
    np.random.seed(1337)  # the demo notebook draws X first, then the noise
    x = np.random.randn(100, 10)
    y = x + np.random.randn(100, 10)
    return x, y


def related(n: int, d1: int, d2: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, 8))
    x = z @ g.standard_normal((8, d1)) + 0.7 * g.standard_normal((n, d1))
    y = np.tanh(z @ g.standard_normal((8, d2))) + 0.5 * g.standard_normal((n, d2))
    return x, y


# ---- reference values ---------------------------------------------------------------------------
def test_published_reference_values():
    x, y = kornblith_data()
    assert C.linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert C.rbf_cka(x, y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert C.linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


SHAPES = [(50, 768, 312), (40, 5, 90), (300, 20, 7), (700, 64, 32)]


@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_against_textbook(n, d1, d2):
    x, y = related(n, d1, d2, seed=n + d1)
    x = x + 3.0  # not centred on input
    kx, ky = gram_linear(x), gram_linear(y)
    assert abs(C.linear_cka(x, y) - ref_cka(kx, ky)) < 1e-8
    assert abs(C.linear_cka(x, y, debiased=True) - ref_cka(kx, ky, True)) < 1e-8
    if n <= 300:
        rx, ry = gram_rbf(x, 0.5), gram_rbf(y, 0.5)
        assert abs(C.rbf_cka(x, y, 0.5) - ref_cka(rx, ry)) < 1e-8
        assert abs(C.rbf_cka(x, y, 0.5, debiased=True) - ref_cka(rx, ry, True)) < 1e-8
        rx2, ry2 = gram_rbf(x, 2.0), gram_rbf(y, 2.0)
        assert abs(C.rbf_cka(x, y, 2.0, budget_bytes=2e4) - ref_cka(rx2, ry2)) < 1e-8  # many chunks


def test_one_dimensional_is_pearson_r_squared():
    g = np.random.default_rng(0)
    a = g.standard_normal(200)
    b = 0.3 * a + g.standard_normal(200)
    assert C.linear_cka(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1] ** 2, abs=1e-12)


# ---- invariances ------------------------------------------------------------------------------
@pytest.mark.parametrize("debiased", [False, True])
def test_invariances(debiased):
    x, y = related(120, 30, 12, seed=3)
    base = C.linear_cka(x, y, debiased)
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((30, 30)))
    assert C.linear_cka(x @ q, y, debiased) == pytest.approx(base, abs=1e-10)
    assert C.linear_cka(7.5 * x, 0.01 * y, debiased) == pytest.approx(base, abs=1e-10)
    assert C.linear_cka(x + 40.0, y - np.arange(12), debiased) == pytest.approx(base, abs=1e-10)
    a = np.random.default_rng(2).standard_normal((30, 30))  # generic invertible, not orthogonal
    assert abs(C.linear_cka(x @ a, y, debiased) - base) > 1e-3
    # RBF: orthogonal / scaling / translation invariant (median bandwidth rescales with the data)
    r = C.rbf_cka(x, y, 0.5, debiased)
    assert C.rbf_cka(3 * (x @ q) + 5, y, 0.5, debiased) == pytest.approx(r, abs=1e-10)


def test_rbf_tends_to_linear():
    x, y = related(150, 10, 6, seed=4)
    lin = C.linear_cka(x, y)
    gaps = [abs(C.rbf_cka(x, y, t) - lin) for t in (1.0, 10.0, 100.0)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4


def test_identical_inputs_give_one():
    x, _ = related(80, 16, 4, seed=5)
    assert C.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert C.linear_cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert C.rbf_cka(x, x, 0.5) == pytest.approx(1.0, abs=1e-12)


# ---- numerically hard inputs ----------------------------------------------------------------
def test_large_common_offset_and_constant_column():
    x, y = related(500, 24, 10, seed=6)
    base = C.linear_cka(x, y)
    base_d = C.linear_cka(x, y, debiased=True)
    # float64 representable offset: the answer must not move (a float32 uncentred sum gives NaN / junk)
    assert C.linear_cka(x + 1e6, y - 1e6) == pytest.approx(base, abs=1e-8)
    assert C.linear_cka(x + 1e6, y - 1e6, debiased=True) == pytest.approx(base_d, abs=1e-6)
    # streaming with the offset: shift by the first batch's mean keeps it exact
    acc = C.CKAAccumulator()
    for s in range(0, 500, 37):
        acc.update(x[s : s + 37] + 1e6, y[s : s + 37] - 1e6)
    assert acc.result()[0, 0] == pytest.approx(base, abs=1e-8)
    # a constant column carries no variance: same value as without it
    xc = np.concatenate([x, np.full((500, 1), 3.25)], 1)
    assert C.linear_cka(xc, y) == pytest.approx(base, abs=1e-12)
    # float32 input with a large offset also works (values are what float32 holds)
    x32 = torch.tensor(x, dtype=torch.float32) + 1e4
    assert np.isfinite(C.linear_cka(x32, y))


def test_constant_representation_raises():
    x, y = related(50, 5, 5, seed=7)
    with pytest.raises(ValueError, match="constant"):
        C.linear_cka(np.full((50, 5), 0.1), y)
    with pytest.raises(ValueError, match="constant"):
        C.linear_cka(x, np.full((50, 3), 1e6 + 0.1), debiased=True)
    with pytest.raises(ValueError, match="median squared distance"):
        C.rbf_cka(x, np.ones((50, 3)))


# ---- streaming == in-memory -------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_in_memory_any_split(seed):
    g = np.random.default_rng(seed)
    x, y = related(400, 48, 20, seed=10 + seed)
    x = x + 50.0
    cuts = np.sort(g.choice(np.arange(1, 400), size=g.integers(1, 12), replace=False))
    acc = C.CKAAccumulator()
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, 400]):
        acc.update(x[a:b], y[a:b])
    for deb in (False, True):
        assert abs(acc.result(deb)[0, 0] - C.linear_cka(x, y, deb)) < 1e-10
        assert abs(acc.result(deb)[0, 0] - ref_cka(gram_linear(x), gram_linear(y), deb)) < 1e-9
    # batches of a single row also work
    acc1 = C.CKAAccumulator()
    for i in range(400):
        acc1.update(x[i : i + 1], y[i : i + 1])
    assert abs(acc1.result()[0, 0] - C.linear_cka(x, y)) < 1e-10


def test_weights_are_duplication():
    x, y = related(60, 8, 5, seed=11)
    w = np.random.default_rng(0).integers(0, 4, size=60).astype(float)
    rows = np.repeat(np.arange(60), w.astype(int))
    acc = C.CKAAccumulator().update(x, y, weights=w)
    for deb in (False, True):
        assert acc.result(deb)[0, 0] == pytest.approx(C.linear_cka(x[rows], y[rows], deb), abs=1e-10)


# ---- grids ----------------------------------------------------------------------------------------
def test_grid_one_pass_matches_pairs_and_self_grids():
    g = np.random.default_rng(12)
    z = g.standard_normal((300, 6))
    xs = {f"t{l}": z @ g.standard_normal((6, 32)) + g.standard_normal((300, 32)) * (l + 1) for l in range(4)}
    ys = {f"s{l}": z @ g.standard_normal((6, 12)) + g.standard_normal((300, 12)) for l in range(3)}
    for deb in (False, True):
        out = C.cka_grid(xs, ys, debiased=deb, self_grids=True, batch_size=70)
        assert out["xy"].shape == (4, 3)
        for i, a in enumerate(xs.values()):
            for j, b in enumerate(ys.values()):
                assert out["xy"][i, j] == pytest.approx(ref_cka(gram_linear(a), gram_linear(b), deb), abs=1e-9)
            for j, b in enumerate(xs.values()):
                assert out["xx"][i, j] == pytest.approx(C.linear_cka(a, b, deb), abs=1e-10)
        for i, a in enumerate(ys.values()):
            for j, b in enumerate(ys.values()):
                assert out["yy"][i, j] == pytest.approx(C.linear_cka(a, b, deb), abs=1e-10)
        assert np.allclose(np.diag(out["xx"]), 1.0, atol=1e-12)
    sym = C.cka_grid(list(xs.values()))["xx"]  # symmetric accumulator, X only
    assert np.allclose(sym, C.cka_grid(xs, ys, self_grids=True)["xx"], atol=1e-12)


def test_head_grid():
    g = np.random.default_rng(13)
    zt = g.standard_normal((200, 4, 16))
    q, _ = np.linalg.qr(g.standard_normal((16, 16)))
    zs = np.stack([zt[:, 2] @ q, g.standard_normal((200, 16))], 1)  # [200, 2, 16], head 0 = rotated teacher head 2
    grid = C.head_cka_grid(zt, zs)
    assert grid.shape == (4, 2)
    for h in range(4):
        for k in range(2):
            assert grid[h, k] == pytest.approx(ref_cka(gram_linear(zt[:, h]), gram_linear(zs[:, k])), abs=1e-9)
    assert grid[2, 0] == pytest.approx(1.0, abs=1e-12) and np.argmax(grid[:, 0]) == 2
    assert np.allclose(np.diag(C.head_cka_grid(zt)), 1.0)


def test_head_grid_with_a_constant_head():
    g = np.random.default_rng(14)
    zt = g.standard_normal((120, 3, 8))
    zs = np.stack([zt[:, 0] + 0.5 * g.standard_normal((120, 8)), np.zeros((120, 8)), np.full((120, 8), 2.5)], 1)
    assert C.constant_heads(zs) == [1, 2] and C.constant_heads(zt) == []
    with pytest.raises(ValueError, match=r"zy: head 1 is constant across examples"):
        C.head_cka_grid(zt, zs)
    grid = C.head_cka_grid(zt, zs, constant="nan")
    assert grid.shape == (3, 3) and np.isnan(grid[:, 1:]).all()
    for h in range(3):
        assert grid[h, 0] == pytest.approx(ref_cka(gram_linear(zt[:, h]), gram_linear(zs[:, 0])), abs=1e-9)
    self_grid = C.head_cka_grid(zs, constant="nan")
    assert self_grid[0, 0] == pytest.approx(1.0, abs=1e-12) and np.isnan(self_grid[1:]).all()
    assert np.isnan(self_grid[:, 1:]).all()


def test_rbf_grid_matches_pairs():
    xs = [related(90, 6, 5, seed=s)[0] for s in range(3)]
    ys = [related(90, 6, 5, seed=s)[1] for s in range(2)]
    grid = C.rbf_cka_grid(xs, ys, 0.5, budget_bytes=5e4)
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            assert grid[i, j] == pytest.approx(ref_cka(gram_rbf(a, 0.5), gram_rbf(b, 0.5)), abs=1e-9)


def test_median_exact_including_histogram_path():
    x = np.random.default_rng(14).standard_normal((2100, 3))  # 4.41M entries > the sort limit
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    assert C.median_sq_distance(x) == pytest.approx(np.median(d), rel=1e-12)
    x5 = x[:5]
    d5 = ((x5[:, None, :] - x5[None, :, :]) ** 2).sum(-1)
    assert C.median_sq_distance(x5) == pytest.approx(np.median(d5), rel=1e-12)  # odd n^2


def test_nystrom_error_is_small():
    x, y = related(1500, 20, 10, seed=15)
    exact = C.rbf_cka(x, y, 0.5)
    approx = C.rbf_cka_nystrom(x, y, 0.5, n_landmarks=500)
    assert abs(approx - exact) < 0.02
    # error shrinks as landmarks grow, and m = n with the exact bandwidth is exact
    big = C.rbf_cka_nystrom(x[:300], y[:300], 0.5, n_landmarks=300)
    assert abs(big - C.rbf_cka(x[:300], y[:300], 0.5)) < 1e-6


# ---- minibatch CKA --------------------------------------------------------------------------------
def test_minibatch_cka_sums_hsic1():
    x, y = related(400, 12, 9, seed=16)
    batches = [(x[i : i + 100], y[i : i + 100]) for i in range(0, 400, 100)]
    num = sum(hsic1(gram_linear(a - a.mean(0)), gram_linear(b - b.mean(0))) for a, b in batches)
    kk = sum(hsic1(gram_linear(a - a.mean(0)), gram_linear(a - a.mean(0))) for a, _ in batches)
    ll = sum(hsic1(gram_linear(b - b.mean(0)), gram_linear(b - b.mean(0))) for _, b in batches)
    assert C.minibatch_cka(batches) == pytest.approx(num / np.sqrt(kk * ll), abs=1e-10)
    # one batch = debiased CKA; unrelated data reads near 0, not ~0.6 like averaged per-batch CKA
    assert C.minibatch_cka([(x, y)]) == pytest.approx(C.linear_cka(x, y, debiased=True), abs=1e-10)
    g = np.random.default_rng(0)
    u = [(g.standard_normal((64, 256)), g.standard_normal((64, 256))) for _ in range(8)]
    assert abs(C.minibatch_cka(u)) < 0.05
    assert np.mean([C.linear_cka(a, b) for a, b in u]) > 0.5
    r = C.minibatch_cka(batches, kernel="rbf", threshold=0.5)
    ref = [(gram_rbf(a, 0.5), gram_rbf(b, 0.5)) for a, b in batches]
    num = sum(hsic1(k, l) for k, l in ref)
    den = np.sqrt(sum(hsic1(k, k) for k, _ in ref) * sum(hsic1(l, l) for _, l in ref))
    assert r == pytest.approx(num / den, abs=1e-10)


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    x, y = related(30, 4, 4, seed=17)
    with pytest.raises(ValueError, match="mismatched n"):
        C.linear_cka(x, y[:29])
    with pytest.raises(ValueError, match="mismatched n"):
        C.CKAAccumulator().update(x, y[:20])
    with pytest.raises(ValueError, match="3-D.*pooling"):
        C.linear_cka(np.zeros((30, 5, 4)), y)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        C.linear_cka(bad, y)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        C.cka_grid([x], [bad])
    ids = [f"ex{i}" for i in range(30)]
    acc = C.CKAAccumulator()
    acc.update(x, y, ids_x=ids, ids_y=ids)  # aligned: fine
    with pytest.raises(ValueError, match="misaligned examples: row 30"):
        C.CKAAccumulator().update(x, y, ids_x=ids, ids_y=ids).update(x, y, ids_x=ids, ids_y=ids[1:] + ids[:1])
    with pytest.raises(ValueError, match="at least 4"):
        C.minibatch_cka([(x[:3], y[:3])])
    with pytest.raises(ValueError, match="n >= 4"):
        C.linear_cka(x[:3], y[:3], debiased=True)


# ---- CLI end to end (tiny random BERTs saved to folders) ----------------------------------------
def test_cli_end_to_end(tmp_path, tokenizer):
    import json

    from conftest import make_bert, make_pairs

    from interp.cli import main

    for name, layers, seed in (("teacher", 4, 0), ("student", 2, 1)):
        make_bert(n_layers=layers, seed=seed).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    exs = make_pairs(60)
    for i, ex in enumerate(exs):
        ex["label"] = "entailment" if i % 2 else "non-entailment"
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(e) for e in exs))
    out = tmp_path / "out"
    rc = main(["cka", "--teacher", str(tmp_path / "teacher"), "--student", str(tmp_path / "student"),
               "--data", str(data), "--out", str(out), "--references", "--heads", "--conditions", "hans",
               "--n-boot", "5", "--n-perm", "9", "--debiased"])
    assert rc == 0
    res = json.loads((out / "cka.json").read_text())
    grid = np.array(res["grid"])
    # CLS-pooled embeddings are identical for every example (zero variance): dropped, with a note
    assert res["dropped_constant"] == ["teacher:embed", "student:embed"]
    assert grid.shape == (4, 2) and res["layer_map"] == [0, 3]
    assert np.allclose(np.diag(np.array(res["teacher_teacher"])), 1.0)
    assert np.array(res["heads"]["teacher L3 x student L1"]).shape == (4, 4)
    assert res["conditions_n"] == {"aligned": 30, "conflicting": 30}
    diff = np.array(res["difference_aligned_minus_conflicting"])
    assert np.allclose(diff, np.array(res["conditions"]["aligned"]) - np.array(res["conditions"]["conflicting"]))
    for f in ("cka_grid.png", "cka_references.png", "cka_conditions.png"):
        assert (out / f).stat().st_size > 1000
    # another site, mean pooling, RBF kernel
    rc = main(["cka", "--teacher", str(tmp_path / "teacher"), "--student", str(tmp_path / "student"),
               "--data", str(data), "--out", str(out / "mlp"), "--site", "mlp_out", "--pool", "mean",
               "--kernel", "rbf"])
    res = json.loads((out / "mlp" / "cka.json").read_text())
    assert rc == 0 and res["teacher_layers"] == ["L0", "L1", "L2", "L3"] and res["student_layers"] == ["L0", "L1"]
    assert np.all(np.isfinite(np.array(res["grid"])))
