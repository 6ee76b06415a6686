"""Render the explorer's data model into one self-contained HTML page.

Everything is inlined: the CSS, the vendored d3 (with its licence note), the explorer script and the
data as JSON in `<script type="application/json">`, escaped so no `</script>` or comment can end it
early. The page makes no request other than `file:`.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _asset(name: str) -> str:
    return resources.files("interp.explore").joinpath(name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """JSON safe inside a <script> element (`<`, `>`, `&` and line separators escaped; parses to `data`)."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return "".join(_ESCAPES.get(c, c) for c in text)


def extract_json(page: str) -> Any:
    """The data embedded in a rendered page (inverse of `render`'s embedding)."""
    start = page.index('<script id="kd-data" type="application/json">') + len('<script id="kd-data" type="application/json">')
    return json.loads(page[start:page.index("</script>", start)])


def _inline_script(code: str) -> str:
    return code.replace("</script", "<\\/script")


_BODY = """<header id="bar">
  <h1>kd-interp · teacher vs student</h1>
  <label>|edge score| ≥ <input id="thr" type="range" min="0" value="0"> <span id="thr-value">0</span></label>
  <label>max edges <input id="cap" type="number" min="0" value="150"></label>
  <label><input id="kind-q" type="checkbox" checked>q</label>
  <label><input id="kind-k" type="checkbox" checked>k</label>
  <label><input id="kind-v" type="checkbox" checked>v</label>
  <label title="residual inputs of MLPs and the classifier"><input id="kind-in" type="checkbox" checked>resid</label>
  <label title="teacher edges preserved / lost in the student, student edges new (through the head map)"><input id="diff" type="checkbox">diff</label>
  <span id="diff-counts"></span>
  <span>edges shown: teacher <span id="edge-count-teacher"></span> · student <span id="edge-count-student"></span></span>
  <label>example <select id="example"></select></label><span id="example-note"></span>
  <button id="export-svg">SVG</button><button id="export-png">PNG</button><button id="export-json">JSON</button>
</header>
<main>
  <section class="panel"><h2>Circuits (edge attribution patching, {metric})</h2>
    <div id="graph-note"></div><div id="tooltip"></div>
    <svg id="graph"></svg>
    <div class="legend">Node fill: activation-patching score (red +, blue −, same limits for both models). Edges: red +,
      blue −; diff mode: grey preserved, orange lost, green new. Drag to pan, wheel to zoom.</div>
  </section>
  <div class="row">
    <section class="panel"><h2>Selected head: attention on the chosen example</h2><div id="attention"></div></section>
    <section class="panel"><h2>Selected head: scores</h2><div id="head-info"></div></section>
  </div>
  <div class="row">
    <section class="panel"><h2>CKA (teacher layer × student layer)</h2><div id="cka"></div></section>
    <section class="panel"><h2>Activation patching (layer × head)</h2><div class="row"><div id="patch-teacher"></div><div id="patch-student"></div></div></section>
    <section class="panel"><h2>Degradation ranking</h2><div id="ranking"></div></section>
  </div>
  <p class="licence">Includes d3 7.9.2, © 2010–2026 Mike Bostock, ISC licence (full text in this page's source and in
    interp/explore/vendor/LICENSE-d3).</p>
</main>
"""


def render(data: dict, title: str = "kd-interp explorer") -> str:
    """The whole page as a string."""
    licence = _asset("vendor/LICENSE-d3").replace("*/", "* /")
    body = _BODY.replace("{metric}", html.escape(str(data.get("metric") or "")))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        f"<title>{html.escape(title)}</title>",
        f'<style id="kd-style">{_asset("explorer.css")}</style>',
        "</head><body>", body,
        f'<script id="kd-data" type="application/json">{embed_json(data)}</script>',
        f"<script>/* d3 7.9.2 (vendored, unmodified). Licence:\n{licence}*/\n"
        f"{_inline_script(_asset('vendor/d3.min.js'))}</script>",
        f"<script>{_inline_script(_asset('explorer.js'))}</script>",
        "</body></html>", ""])
