"""The explorer page in headless Chromium (Debian's `chromium`, driven by Playwright from pip).

Every test runs behind a route guard: any request whose URL is not `file:` fails the test. Skipped
only when chromium or playwright is absent (`.ci/run` installs both). Screenshots are saved under
pytest's tmp dir; their paths are printed (`pytest -s` shows them).
"""
from __future__ import annotations

import shutil

import pytest
from _explore_tiny import build_explorer

from interp.explore.data import edge_diff, visible_edges

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("system chromium not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explore_browser")
    view, results = build_explorer(tmp)
    return view, results, tmp


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page whose every non-file: request is aborted and recorded; console errors are recorded too."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = ctx.new_page()
    pg.blocked, pg.errors = [], []

    def guard(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            pg.blocked.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    assert pg.blocked == [], f"the page requested non-file URLs: {pg.blocked}"
    assert pg.errors == [], f"console errors: {pg.errors}"
    ctx.close()


def _open(pg, path, hash_: str = ""):
    pg.goto(path.as_uri() + hash_)
    pg.wait_for_function("window.kdExplorerReady !== undefined")


def _shot(pg, tmp, name: str) -> None:
    path = tmp / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _node(role: str, node: str) -> str:
    return f'circle.node[data-role="{role}"][data-node="{node}"]'


def test_explorer_interactions(page, built):
    view, _, tmp = built
    d = view.data
    _open(page, view.path)
    # a student head with a teacher counterpart
    m = next(m for m in d["head_map"] if m["teacher"] and m["student"][0] == 1)
    s_node, t_node = f"L{m['student'][0]}H{m['student'][1]}", f"L{m['teacher'][0]}H{m['teacher'][1]}"
    page.hover(_node("student", s_node))
    assert page.get_attribute(_node("teacher", t_node), "class").split().count("hl") == 1
    assert page.locator("circle.node.hl").count() == 1 and page.locator("line.match-link").count() == 1
    page.click(_node("student", s_node))
    page.mouse.move(5, 5)  # leaving the node keeps a locked selection
    assert "sel" in page.get_attribute(_node("student", s_node), "class")
    tokens = d["examples"][0]["tokens"]
    for role, node in (("student", s_node), ("teacher", t_node)):
        box = page.locator(f"#attn-{role}")
        assert box.locator(".matrix-title").inner_text() == f"{role} {node}"
        assert box.locator("text.tok-row").all_text_contents() == tokens
        assert box.locator("text.tok-col").all_text_contents() == tokens
        assert box.locator("rect.cell").count() == len(tokens) ** 2
        assert box.locator("line.boundary").count() == 2
    assert "match score" in page.inner_text("#head-info") and "weight-patching share" in page.inner_text("#head-info")
    _shot(page, tmp, "selected")

    n_all = page.locator("path.edge").count()
    assert n_all == len(d["circuits"]["teacher"]["edges"]) + len(d["circuits"]["student"]["edges"])
    scores = sorted(abs(s) for r in ("teacher", "student") for _, s in d["circuits"][r]["edges"])
    thr = scores[len(scores) // 2]
    page.eval_on_selector("#thr", f"(el) => {{ el.value = {thr}; el.dispatchEvent(new Event('input')); }}")
    thr_set = float(page.input_value("#thr"))
    n_thr = page.locator("path.edge").count()
    assert 0 < n_thr < n_all
    assert n_thr == sum(len(visible_edges(d["circuits"][r], thr_set, 150)) for r in ("teacher", "student"))

    page.eval_on_selector("#thr", "(el) => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    page.check("#diff")
    want = edge_diff(d, 0.0, 150)
    dc = page.locator("#diff-counts")
    got = {k: int(dc.get_attribute(f"data-{k}")) for k in ("preserved", "lost", "new")}
    assert got == {k: len(v) for k, v in want.items()}
    assert got["lost"] > 0 and got["new"] > 0
    assert f"lost {got['lost']}" in dc.inner_text() and f"new {got['new']}" in dc.inner_text()
    assert page.locator('path.edge.lost[data-role="teacher"]').count() == got["lost"]
    assert page.locator('path.edge.new[data-role="student"]').count() == got["new"]
    _shot(page, tmp, "diff")

    other = next(i for i, ex in enumerate(d["examples"]) if ex["tokens"] != tokens)
    page.select_option("#example", str(other))
    new_tokens = page.locator("#attn-student text.tok-row").all_text_contents()
    assert new_tokens == d["examples"][other]["tokens"] != tokens

    url = page.url
    assert "sel=student%3A" + s_node in url or "sel=student:" + s_node in url
    page.goto("about:blank")
    _open(page, view.path, "#" + url.split("#", 1)[1])
    assert "sel" in page.get_attribute(_node("student", s_node), "class")
    assert page.is_checked("#diff") and page.input_value("#example") == str(other)
    assert page.locator("#attn-teacher .matrix-title").inner_text() == f"teacher {t_node}"
    assert page.locator("#attn-student text.tok-row").all_text_contents() == d["examples"][other]["tokens"]
    _shot(page, tmp, "reloaded")


def test_maps_and_ranking_select_heads(page, built):
    view, _, tmp = built
    _open(page, view.path)
    page.click('#patch-teacher rect.cell[data-node="L3H2"]')
    assert "sel" in page.get_attribute(_node("teacher", "L3H2"), "class")
    bar = page.locator("#ranking rect.bar").first
    node = bar.get_attribute("data-node")
    bar.click()
    assert "sel" in page.get_attribute(_node("student", node), "class")
    assert page.locator("#cka rect.cell.mapped").count() == 2
    with page.expect_download() as dl:
        page.click("#export-svg")
    assert dl.value.suggested_filename == "explorer.svg"
    assert "<svg" in open(dl.value.path()).read()


def test_missing_parts_say_what_to_run(page, built, tmp_path):
    from interp.explore import explore

    _, results, tmp = built
    view = explore(results=results, out=tmp_path / "results_only.html")
    _open(page, view.path)
    notes = page.locator(".missing")
    parts = set(notes.evaluate_all("els => els.map(e => e.dataset.part)"))
    assert {"circuits", "attention", "cka", "patching", "examples"} <= parts
    assert f"interp explore {results}" in page.inner_text("#attention")
    page.click(_node("student", "L0H0"))  # selecting still works without the computed parts
    assert "match score" in page.inner_text("#head-info")
    _shot(page, tmp, "results_only")


def test_jupyter_repr_runs_in_its_iframe(page, built, tmp_path):
    view, _, tmp = built
    wrapper = tmp_path / "notebook_cell.html"
    wrapper.write_text(f"<!DOCTYPE html><html><body>{view._repr_html_()}</body></html>")
    page.goto(wrapper.as_uri())
    frame = page.frame_locator("iframe")
    frame.locator("#diff-counts").wait_for(state="attached")
    inner = next(f for f in page.frames if f != page.main_frame)
    inner.wait_for_function("window.kdExplorerReady !== undefined")
    frame.locator(_node("student", "L0H0")).click()
    assert "sel" in frame.locator(_node("student", "L0H0")).get_attribute("class")
