"""The explorer's data model and page, without a browser (see test_explore_browser.py for the page itself)."""
from __future__ import annotations

import json
import re
from importlib.resources import files

import numpy as np
import pytest
from _explore_tiny import build_explorer

from interp.explore.data import decode_attention, edge_diff, edge_to_teacher, encode_attention, gather
from interp.explore.html import embed_json, extract_json, render

pytestmark = pytest.mark.usefixtures("one_thread")

# URLs that appear in the page but are never fetched: XML namespace names (d3, SVG export) and d3's banner comment.
NOT_FETCHED = re.compile(r"^https?://(www\.w3\.org/|d3js\.org$)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_explorer(tmp_path_factory.mktemp("explore"))


def test_page_is_self_contained(built):
    view, _ = built
    page = view.html
    urls = re.findall(r"https?://[^\s\"'<>)`]*", page)
    assert [u for u in urls if not NOT_FETCHED.match(u)] == []
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"(?!data:)|@import|url\(", page)
    own = page.replace(files("interp.explore").joinpath("vendor/d3.min.js").read_text(), "")  # d3 defines d3.json, unused
    assert not re.search(r"\bfetch\(|XMLHttpRequest|import\(|\.src\s*=\s*[\"'`]http", own)
    assert page.count("<script") == 3 and page.count("</script>") == 3 and "ISC" in page and "Mike Bostock" in page  # licence note of d3


def test_embedded_json_round_trips(built):
    view, _ = built
    assert extract_json(view.html) == view.data
    assert extract_json(view.path.read_text()) == view.data
    assert json.loads(json.dumps(view.data)) == view.data  # JSON-ready: no NaN, no tuples


def test_embedding_cannot_close_the_script():
    data = {"premise": "a </script><script>alert(1)</script> <!-- & \u2028 b"}
    text = embed_json(data)
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text) == data


def test_data_model_holds_every_part(built):
    view, results = built
    d = view.data
    assert d["missing"] == {} and d["schema"] == 1
    assert d["layer_map"] == {"0": 0, "1": 2}
    assert {tuple(m["student"]) for m in d["head_map"]} == {(l, h) for l in range(2) for h in range(4)}
    dead = next(m for m in d["head_map"] if m["student"] == [1, 1])
    assert dead["dead"] and dead["teacher"] is None  # the killed head has no counterpart
    ex = d["examples"][0]
    assert ex["tokens"][0] == "[CLS]" and ex["tokens"][ex["sep"]] == "[SEP]" and ex["tokens"][-1] == "[SEP]"
    assert set(ex["metric"]) == {"teacher", "student"}
    n = len(ex["tokens"])
    p = decode_attention(d["attention"]["teacher"][0], 4, 4, n)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=n / 255)  # rows are distributions (to the 1/255 quantisation)
    assert np.array(d["cka"]["grid"]).shape == (4, 2)
    assert np.array(d["patching"]["student"]["scores"]).shape == (2, 4)
    for role in ("teacher", "student"):
        c = d["circuits"][role]
        assert not c["no_signal"] and c["edges"] and c["faithfulness"] is not None
    assert d["head_by_head"] and d["attribution"]["cross"]["0.0"]["share"] is not None
    assert (results / "explore" / "circuit_teacher.json").exists()  # cached for the next run


def test_attention_encoding_is_exact_to_a_quantum():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=(2, 3, 5))
    np.testing.assert_allclose(decode_attention(encode_attention(p), 2, 3, 5), p, atol=0.5 / 255 + 1e-12)


def test_edge_diff_maps_student_edges_through_the_head_map(built):
    d = built[0].data
    diff = edge_diff(d)
    t = {e for e, _ in d["circuits"]["teacher"]["edges"]}
    s = [e for e, _ in d["circuits"]["student"]["edges"]]
    assert set(diff["preserved"]) | set(diff["lost"]) == t and not set(diff["preserved"]) & set(diff["lost"])
    assert len(diff["new"]) + sum(edge_to_teacher(e, d) in t for e in s) == len(s)
    assert edge_to_teacher("input->L1H0.q", d) == f"input->L{next(m['teacher'][0] for m in d['head_map'] if m['student'] == [1, 0])}H" \
        f"{next(m['teacher'][1] for m in d['head_map'] if m['student'] == [1, 0])}.q"
    assert edge_to_teacher("L0M->L1M.in", d) == "L0M->L2M.in"
    assert edge_to_teacher("L1H1->logits.in", d) is None  # dead head: no counterpart


def test_results_only_page_names_what_is_missing(built, tmp_path):
    _, results = built
    d = gather(results=results)
    assert set(d["missing"]) == {"examples", "attention", "cka", "patching", "circuits"}
    assert d["missing"]["circuits"]["command"].startswith(f"interp explore {results}")
    assert d["head_by_head"] and d["teacher"]["n_layers"] == 4 and d["student"]["n_heads"] == 4
    page = render(d)
    assert extract_json(page) == d
    with pytest.raises(ValueError, match="Nothing to show"):
        gather(results=tmp_path)


def test_cli_writes_the_page(built, tmp_path, capsys):
    from interp.cli import main

    _, results = built
    out = tmp_path / "x.html"
    assert main(["explore", str(results), "--out", str(out)]) == 0
    assert out.exists() and "missing parts: examples" in capsys.readouterr().out


def test_public_api_and_jupyter_repr(built):
    import interp
    import interp.explore.data  # noqa: F401  (importing a submodule must not shadow the function)

    assert callable(interp.explore)
    html = built[0]._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "&lt;script" in html


def test_cli_from_checkpoint_folders(tmp_path, capsys):
    import warnings

    from _explore_tiny import tiny_hans_pair

    from interp.cli import main

    t, s, tok = tiny_hans_pair()
    for name, model in (("teacher", t), ("student", s)):
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    out = tmp_path / "view.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["explore", "--teacher", str(tmp_path / "teacher"), "--student", str(tmp_path / "student"),
                     "--out", str(out), "--n-examples", "4", "--n-pairs", "8", "--no-circuits", "--device", "cpu"]) == 0
    d = extract_json(out.read_text())
    assert len(d["examples"]) == 4 and d["layer_map"] == {"0": 0, "1": 2}  # from the student's recorded init
    assert set(d["missing"]) == {"head_by_head", "attribution", "circuits"}
    assert (tmp_path / "view_patching_maps.png").exists() and (tmp_path / "view_patching_maps.svg").exists()
    assert "figures ->" in capsys.readouterr().out


def test_results_of_other_models_are_refused(built):
    from _explore_tiny import tiny_hans_pair

    from interp.subject import load_subject

    _, results = built
    t, s, tok = tiny_hans_pair(seed=1)
    with pytest.raises(ValueError, match="different teacher and student"):
        gather(load_subject(t, tokenizer=tok), load_subject(s, tokenizer=tok), results=results)
