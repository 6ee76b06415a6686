"""`interp report RESULTS_DIR`: one self-contained HTML page of a study's tables and figures.

The page holds the folder's `tables.md` (or every `*.md`) rendered to HTML, every figure in it and in
its `figures/` subfolder (`interp figures`; PNG embedded as data URIs, SVG inline when there is no PNG) and the provenance of `results.json` (config, seed, versions,
time). No script and no request other than the page itself; an `explorer.html` next to it is linked.
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from interp.provenance import atomic_write_bytes

_CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:20px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f4f4f4}figure{margin:14px 0}figcaption{font-size:12px;color:#555}img,svg{max-width:100%;height:auto}
code{background:#f4f4f4;padding:0 3px}pre{background:#f8f8f8;padding:8px;overflow:auto;font-size:12px}"""


def _inline(text: str) -> str:
    """Escaped text with **bold** and `code`."""
    t = html.escape(text, quote=False)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", t)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(md: str) -> str:
    """The Markdown subset our tables use: headings, paragraphs, `- ` lists, pipe tables, bold, code."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            head, body = rows[0], [r for r in rows[1:] if not re.fullmatch(r"[\s|:-]+", r)]
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in _cells(head)) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in body]
            out.append("</table>")
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"#|\||- ", lines[i].lstrip()):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _figure(path: Path) -> str:
    caption = html.escape(path.stem.replace("_", " "))
    if path.suffix == ".svg":
        svg = path.read_text(encoding="utf-8")
        svg = svg[svg.index("<svg"):]  # drop the XML declaration and doctype
        body = re.sub(r"<script.*?</script>", "", svg, flags=re.S)
    else:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body = f'<img alt="{caption}" src="data:image/png;base64,{data}">'
    return f"<figure>{body}<figcaption>{caption} ({path.name})</figcaption></figure>"


def render_report(results_dir: str | Path, title: str | None = None) -> str:
    """The report page of a results folder, as a string."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a results folder.")
    mds = [root / "tables.md"] if (root / "tables.md").exists() else sorted(root.glob("*.md"))
    figs = sorted(p for p in root.iterdir() if p.suffix in (".png", ".svg"))
    if (root / "figures").is_dir():  # `interp figures RESULTS` writes there
        figs += sorted(p for p in (root / "figures").iterdir() if p.suffix in (".png", ".svg"))
    png_stems = {p.with_suffix("") for p in figs if p.suffix == ".png"}
    figs = [p for p in figs if p.suffix == ".png" or p.with_suffix("") not in png_stems]  # one per figure: PNG
    if not mds and not figs:
        raise FileNotFoundError(f"{root} has no tables (*.md) and no figures (*.png, *.svg) to report.")
    parts = [markdown_to_html(p.read_text(encoding="utf-8")) for p in mds]
    if (root / "explorer.html").exists():
        parts.append('<p>Interactive explorer: <a href="explorer.html">explorer.html</a> (same folder).</p>')
    if figs:
        parts += ["<h2>Figures</h2>", *(_figure(p) for p in figs)]
    prov = root / "results.json"
    if prov.exists():
        meta = {k: v for k, v in json.loads(prov.read_text()).items() if k != "results"}
        parts += ["<h2>Provenance</h2>", f"<pre>{html.escape(json.dumps(meta, indent=2, sort_keys=True), quote=False)}</pre>"]
    title = title or f"kd-interp report: {root.name}"
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      '<link rel="icon" href="data:,">', f"<title>{html.escape(title)}</title>",
                      f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>", *parts,
                      "</body></html>", ""])


def report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of `results_dir` to `out` (default `results_dir/report.html`); returns the path."""
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    atomic_write_bytes(path, render_report(results_dir).encode("utf-8"))
    return path
