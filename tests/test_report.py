"""`interp report`: a results folder as one self-contained HTML page."""
from __future__ import annotations

import re

import pytest
from _explore_tiny import build_results

from interp.report import markdown_to_html, render_report

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return build_results(tmp_path_factory.mktemp("report"))


def test_report_holds_tables_figures_and_provenance(results, tmp_path):
    from interp.cli import main

    out = tmp_path / "r.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    page = out.read_text()
    assert "<h1>kd-interp report: compare</h1>" in page and "<h2>Teacher -&gt; student, activation patching</h2>" in page
    assert "<th>student head</th>" in page and "<td>none (dead: constant output)</td>" in page
    pngs = sorted(p.name for p in results.glob("*.png"))
    assert pngs and page.count('src="data:image/png;base64,') == len(pngs)
    assert '"seed": 0' in page and '"versions"' in page
    # self-contained: no script, nothing fetched from anywhere
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and not re.search(r"url\(|@import", page)


def test_markdown_subset():
    md = "# T\n\nA **b** `c` <x>\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | **2** |\n"
    assert markdown_to_html(md) == ("<h1>T</h1>\n<p>A <strong>b</strong> <code>c</code> &lt;x&gt;</p>\n"
                                    "<ul><li>one</li><li>two</li></ul>\n"
                                    "<table><tr><th>a</th><th>b</th></tr>\n<tr><td>1</td><td><strong>2</strong></td></tr>\n</table>")


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tables"):
        render_report(tmp_path)
