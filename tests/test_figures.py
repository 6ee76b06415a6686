"""Figures check content: the plotted arrays are the results they come from (read back from the Axes),
axis labels are the layer / head / token names, teacher and student share colour limits, and a results
folder missing a part names the part and the command that computes it."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from interp.figures import FIGURES, MissingPart, Results, cka_layer_map, draw_figures, figure, matched_attention

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny pair's results folder with every part: compare, explore, cka (HANS conditions), exact and
    AtP head patching, per-position residual patching, and the demo's zoo_metrics.json one level up."""
    from interp.cli import main
    from interp.data.hans import write_hans
    from interp.data.hans_gen import generate_hans
    from interp.organisms import save_tiny_pair

    root = tmp_path_factory.mktemp("figures")
    t, s = save_tiny_pair(str(root / "models"))
    write_hans(generate_hans(2, seed=0), root / "hans.txt")
    res = root / "demo" / "pair"
    steps = [["compare", "--teacher", t, "--student", s, "--n", "12", "--out", str(res)],
             ["explore", str(res), "--teacher", t, "--student", s, "--n-examples", "4", "--n-pairs", "12"],
             ["cka", "--teacher", t, "--student", s, "--data", str(root / "hans.txt"), "--conditions", "hans",
              "--debiased", "--out", str(res / "cka")],
             ["patch", "--model", t, "--n", "12", "--allow-no-signal", "--out", str(res / "p_exact")],
             ["patch", "--model", t, "--n", "12", "--method", "atp", "--allow-no-signal", "--out", str(res / "p_atp")],
             ["patch", "--model", t, "--n", "12", "--component", "resid", "--allow-no-signal", "--out",
              str(res / "p_resid")]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for argv in steps:
            assert main(argv) == 0, argv
    m = {"hans_by_heuristic_label": {"lexical_overlap": {"entailment": 0.9, "non-entailment": 0.2}},
         "hans_by_subcase": {"ln_a": 0.2, "le_b": 0.9}}
    (root / "demo" / "zoo_metrics.json").write_text(json.dumps({"models": {"teacher": m, "student": m},
                                                                "hans_per_subcase": 50}))
    return res


def _images(fig):
    return [ax.images[0] for ax in fig.axes if ax.images]


def _grid(rows):
    return np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)


def _yticks(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


def _errorbars(ax):
    """Per bar series, the [cell] error-bar segments ([[x, lo], [x, hi]])."""
    from matplotlib.container import BarContainer

    return [c.errorbar.lines[2][0].get_segments() for c in ax.containers if isinstance(c, BarContainer)]


def _xticks(ax):
    return [t.get_text() for t in ax.get_xticklabels()]


# --- drawn from a results folder: the plotted arrays are the stored results -----------------------
def test_patching_heads_are_the_explorers_maps_with_shared_limits(folder):
    data = json.loads((folder / "explore" / "data.json").read_text())
    ims = _images(figure(folder, "patching_heads"))
    assert len(ims) == 2
    for im, role in zip(ims, ("teacher", "student")):
        want = _grid(data["patching"][role]["scores"])  # [layer, head]
        np.testing.assert_array_equal(np.ma.filled(im.get_array(), np.nan), want)
        assert im.origin == "upper" and _yticks(im.axes) == [f"L{l}" for l in range(want.shape[0])]
        assert _xticks(im.axes) == [str(h) for h in range(want.shape[1])] and im.axes.get_xlabel() == "head"
    lim = np.nanmax(np.abs(np.concatenate([_grid(data["patching"][r]["scores"]).ravel() for r in ("teacher", "student")])))
    assert [(im.norm.vmin, im.norm.vmax) for im in ims] == [(-lim, lim)] * 2  # shared, symmetric


def test_head_effects_put_each_matched_teacher_head_on_its_own_grid(folder):
    res = json.loads((folder / "results.json").read_text())["results"]
    t_im, s_im = _images(figure(folder, "head_effects"))
    t, s = np.ma.filled(t_im.get_array(), np.nan), np.ma.filled(s_im.get_array(), np.nan)
    assert t.shape == (6, 4) and s.shape == (3, 4)  # the tiny teacher [6 layers, 4 heads], student [3, 4]
    for row in res["head_by_head"]:
        sl, sh = map(int, row["student_head"].split("."))
        assert s[sl, sh] == pytest.approx(row["total_student"])
        if row["teacher_head"]:
            tl, th = map(int, row["teacher_head"].split("."))
            assert t[tl, th] == pytest.approx(row["total_teacher"])
    matched = {tuple(map(int, r["teacher_head"].split("."))) for r in res["head_by_head"] if r["teacher_head"]}
    assert all(np.isnan(t[l, h]) == ((l, h) not in matched) for l in range(6) for h in range(4))
    assert (t_im.norm.vmin, t_im.norm.vmax) == (s_im.norm.vmin, s_im.norm.vmax)


def test_attribution_heads_are_the_shares_per_student_head(folder):
    res = json.loads((folder / "results.json").read_text())["results"]["attribution"]
    ims = _images(figure(folder, "attribution_heads"))
    titles = [im.axes.get_title() for im in ims]
    assert titles == ["act. patching, total", "act. patching, direct", "weight patching"]
    key = "delta" if res["margin"][0]["no_signal"] else "restored"
    for im, rows in zip(ims, (res["margin"], res["margin_direct"], res["weight_teacher"]["margin"])):
        a = np.ma.filled(im.get_array(), np.nan)
        heads = [r for r in rows if r["component"].startswith("head ")]
        assert heads
        for r in heads:
            l, h = map(int, r["component"].split()[1].split("<-")[0].split("."))
            assert a[l, h] == pytest.approx(r[key], nan_ok=True)


def test_head_map_and_restoration_bars(folder):
    res = json.loads((folder / "results.json").read_text())["results"]
    im = _images(figure(folder, "head_map"))[0]
    np.testing.assert_allclose(im.get_array(), np.array(res["head_map"]["score"]))
    assert im.origin == "upper" and _yticks(im.axes)[:5] == ["0.0", "0.1", "0.2", "0.3", "1.0"]
    ax = figure(folder, "restoration").axes[0]
    rows = res["attribution"]["margin"][:15]
    key = "delta" if rows[0]["no_signal"] else "restored"
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx([r[key] for r in rows])
    at = dict(zip(ax.get_yticks(), _yticks(ax)))
    assert [at[y] for y in sorted(at, reverse=True)] == [r["component"] for r in rows]  # first row on top


def test_cka_conditions_fixed_scale_difference_and_layer_map(folder):
    c = json.loads((folder / "cka" / "cka.json").read_text())
    fig = figure(folder, "cka_conditions")
    ims = _images(fig)
    want = [c["conditions"]["aligned"], c["conditions"]["conflicting"], c["difference_aligned_minus_conflicting"]]
    for im, w in zip(ims, want):
        np.testing.assert_allclose(im.get_array(), np.array(w))
        assert _yticks(im.axes) == c["teacher_layers"] and _xticks(im.axes) == c["student_layers"]
    assert [im.get_clim() for im in ims[:2]] == [(0.0, 1.0)] * 2
    lo, hi = ims[2].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(np.array(want[2])).max())
    # the layer map boxed on every panel: student L{j} <- teacher L{layer_map[j]}
    boxes = {(j, c["teacher_layers"].index(f"L{t}")) for j, t in enumerate(c["layer_map"])}
    assert cka_layer_map(c) == {j: t for j, t in boxes}
    for im in ims:
        drawn = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in im.axes.patches}
        assert drawn == boxes


def test_attention_of_matched_heads(folder):
    from interp.explore.data import decode_attention

    data = json.loads((folder / "explore" / "data.json").read_text())
    m = matched_attention(data)
    ex = data["examples"][m["example"]]
    n = len(ex["tokens"])
    fig = figure(folder, "attention_matched")
    t_im, s_im = _images(fig)
    (tl, th), (sl, sh) = m["teacher_head"], m["student_head"]
    want_t = decode_attention(data["attention"]["teacher"][m["example"]], 6, 4, n)[tl, th]  # [q, k]
    want_s = decode_attention(data["attention"]["student"][m["example"]], 3, 4, n)[sl, sh]
    np.testing.assert_array_equal(t_im.get_array(), want_t)
    np.testing.assert_array_equal(s_im.get_array(), want_s)
    entry = [e for e in data["head_map"] if e["student"] == [sl, sh]][0]
    assert entry["teacher"] == [tl, th]  # the student head and the teacher head the head map matched to it
    assert entry["score"] == max(e["score"] for e in data["head_map"] if e["teacher"] and e["score"] is not None)
    for im in (t_im, s_im):
        assert _xticks(im.axes) == ex["tokens"] and _yticks(im.axes) == ex["tokens"]
        assert im.get_clim() == (0.0, 1.0)
        boundary = [ln.get_ydata()[0] for ln in im.axes.lines if ln.get_ydata()[0] == ln.get_ydata()[1]]
        assert boundary == [ex["sep"] + 0.5]
    assert t_im.axes.get_title() == f"teacher L{tl}H{th}" and s_im.axes.get_title() == f"student L{sl}H{sh}"


def test_per_position_patching_with_token_labels(folder):
    d = json.loads((folder / "p_resid" / "patching.json").read_text())
    im = _images(figure(folder, "patching_positions"))[0]
    r = d["result"]
    want = _grid(r["raw"]) - r["corrupt_metric"] if r["no_signal"] else _grid(r["scores"])
    np.testing.assert_array_equal(np.ma.filled(im.get_array(), np.nan), want)
    assert d["tokens"][0] == "[CLS]" and len(d["tokens"]) == want.shape[1]
    assert _xticks(im.axes) == [f"{i}: {t}" for i, t in enumerate(d["tokens"])]
    assert _yticks(im.axes) == [f"L{l}" for l in range(want.shape[0])]


def test_attribution_vs_exact_scatter(folder):
    ex = json.loads((folder / "p_exact" / "patching.json").read_text())["result"]
    at = json.loads((folder / "p_atp" / "patching.json").read_text())["result"]
    ax = figure(folder, "attribution_vs_exact").axes[0]
    raw = ex["no_signal"] or at["no_signal"]
    x = (_grid(ex["raw"]) - ex["corrupt_metric"] if raw else _grid(ex["scores"])).ravel()
    y = (_grid(at["raw"]) - at["corrupt_metric"] if raw else _grid(at["scores"])).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), np.stack([x[ok], y[ok]], 1))
    line = ax.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), line.get_ydata())  # the y = x line
    assert "exact" in ax.get_xlabel() and "atp" in ax.get_ylabel()


def _points(ax, color):
    """Every marker drawn in `color` (one line artist per marker shape)."""
    return [(float(x), float(y)) for ln in ax.lines if ln.get_color() == color
            for x, y in zip(ln.get_xdata(), ln.get_ydata())]


def test_circuits_on_the_explorers_grid(folder):
    from interp.plot.circuit import _pos

    data = json.loads((folder / "explore" / "data.json").read_text())
    for role, (L, H) in (("teacher", (6, 4)), ("student", (3, 4))):
        ax = figure(folder, f"circuit_{role}").axes[0]
        grey = _points(ax, "0.85")
        assert sorted(grey) == sorted([(float(h), float(l)) for l in range(L) for h in range(H)]
                                      + [(H + 0.5, l + 0.5) for l in range(L)])  # the fixed layer x head grid
        c = data["circuits"][role]
        arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
        assert len(arrows) == min(len(c["edges"]), 40)
        kept = set(_points(ax, "tab:orange"))
        ends = {n for e, _ in c["edges"] for n in (e.split("->")[0], e.split("->")[1].rsplit(".", 1)[0])}
        assert kept == {_pos(n, L, H) for n in ends}
        assert _yticks(ax) == [str(l) for l in range(L)] and ax.get_ylabel() == "layer"


def test_hans_bars_from_the_demo_study(folder):
    from interp.plot.hans import wilson

    ax = figure(folder, "hans_heuristics").axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.9, 0.2, 0.9, 0.2])  # two models x two cells
    assert _xticks(ax) == ["lexical_overlap / entailment", "lexical_overlap / non-entailment"]
    lo, hi = wilson(0.2, 250)  # one seed: Wilson over 5 subcases x 50 examples
    seg = _errorbars(ax)[0][1]  # first model, error bar of the non-entailment cell
    assert seg[:, 1] == pytest.approx([lo, hi])
    ax = figure(folder, "hans_subcases").axes[0]
    assert _xticks(ax) == ["le_b", "ln_a"]


# --- the figure functions on hand-made inputs (independent references) ---------------------------
def test_hans_intervals_over_seeds_are_student_t_and_wilson_matches_the_formula():
    from interp.plot.hans import hans_accuracy_figure, wilson

    runs = [{"hans_by_heuristic_label": {"subsequence": {"entailment": a, "non-entailment": b}}}
            for a, b in ((0.9, 0.1), (0.8, 0.3), (1.0, 0.2))]
    ax = hans_accuracy_figure({"kd": runs}).axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.9, 0.2])
    seg = _errorbars(ax)[0]
    h = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n), sd = 0.1 for both cells
    assert seg[0][:, 1] == pytest.approx([0.9 - h, 0.9 + h]) and seg[1][:, 1] == pytest.approx([0.2 - h, 0.2 + h])
    assert wilson(0.5, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)  # textbook value


def test_head_maps_share_limits_and_put_layer_zero_on_top():
    from interp.plot.heads import head_maps_figure

    t, s = np.array([[0.5, -3.0], [0.1, 0.0]]), np.array([[1.0, 2.0]])
    ims = _images(head_maps_figure({"teacher": t, "student": s}))
    for im, want in zip(ims, (t, s)):
        np.testing.assert_array_equal(im.get_array(), want)
        assert (im.norm.vmin, im.norm.vmax) == (-3.0, 3.0)
        bottom, top = im.axes.get_ylim()
        assert top < bottom


def test_cka_grid_uses_the_fixed_0_1_scale_even_with_negative_debiased_values():
    from interp.plot.cka import cka_conditions_figure, cka_figure

    g = np.array([[0.9, -0.1], [0.2, 0.5]])
    im = _images(cka_figure(g, ["L0", "L1"], ["L0", "L1"], {0: 0, 1: 1}))[0]
    assert im.get_clim() == (0.0, 1.0)
    ims = _images(cka_conditions_figure(g, g / 2, g / 2, ["L0", "L1"], ["L0", "L1"]))
    assert [im.get_clim() for im in ims] == [(0.0, 1.0), (0.0, 1.0), (-0.45, 0.45)]


def test_positions_and_scatter_reject_mismatched_inputs():
    from interp.plot.attribution import attribution_scatter_figure
    from interp.plot.patching import positions_figure

    with pytest.raises(ValueError, match="3 tokens for 2 positions"):
        positions_figure(np.zeros((2, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="same component kind"):
        attribution_scatter_figure(np.zeros(4), np.zeros(3))


def test_save_writes_png_and_svg(tmp_path):
    from interp.plot import new_figure, save

    fig, ax = new_figure()
    ax.plot([0, 1])
    png = save(fig, tmp_path / "sub" / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in (tmp_path / "sub" / "f.svg").read_text()[:600]


# --- missing parts, the command, the report ------------------------------------------------------
def test_a_missing_part_names_the_part_and_its_command(folder, tmp_path):
    import shutil

    only_compare = tmp_path / "only_compare"
    shutil.copytree(folder, only_compare, ignore=shutil.ignore_patterns("explore", "cka", "p_*", "figures"))
    with pytest.raises(MissingPart, match=r"'cka' part: .*`interp data hans .* interp cka .*--conditions hans"):
        figure(only_compare, "cka_conditions")
    with pytest.raises(MissingPart, match=rf"'explore' part: .*`interp explore {only_compare} --teacher T"):
        figure(only_compare, "attention_matched")
    with pytest.raises(MissingPart, match=r"'patching' part: .*`interp patch --model T --component resid"):
        figure(only_compare, "patching_positions")
    assert figure(only_compare, "head_effects")  # what results.json holds is still drawn
    with pytest.raises(MissingPart, match=r"'compare' part: .*`interp compare --teacher T --student S --out"):
        figure(only_compare / "steps", "head_map")


def test_interp_figures_draws_everything_and_report_includes_it(folder, tmp_path, capsys):
    from interp.cli import main
    from interp.report import render_report

    assert main(["figures", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{len(FIGURES)} figures drawn, 0 skipped" in out
    for name in FIGURES:
        assert (folder / "figures" / f"{name}.png").stat().st_size > 1000
        assert (folder / "figures" / f"{name}.svg").exists()
    page = render_report(folder)
    assert "attention matched (attention_matched.png)" in page and "cka conditions (cka_conditions.png)" in page

    (tmp_path / "empty").mkdir()
    assert main(["figures", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr()
    assert "skipped head_map: needs the 'compare' part" in err.out and "no figure could be drawn" in err.err
    assert main(["figures", str(folder), "--only", "nope"]) == 2


def test_results_reader_finds_the_compare_subfolder(folder):
    r = Results(folder.parent)  # runs/demo: the compare results live in its subfolder
    assert r.compare_dir == folder and r.study is not None
    drawn = draw_figures(folder.parent, folder.parent / "gallery", prefix="demo_", names=["head_map", "hans_heuristics"],
                         progress=False)
    assert sorted(p.name for ps in drawn.written.values() for p in ps) == [
        "demo_hans_heuristics.png", "demo_hans_heuristics.svg", "demo_head_map.png", "demo_head_map.svg"]


def test_gallery_script_draws_the_folder_into_the_gallery(folder, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_gallery", Path(__file__).resolve().parents[1] / "analyses" / "gallery.py")
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    assert gallery.main(["--results", str(folder.parent), "--out", str(tmp_path / "g")]) == 0
    assert sorted(p.name for p in (tmp_path / "g").glob("*.png")) == sorted(f"gallery_{n}.png" for n in FIGURES)
