"""The notebook-grade API: one import, no side effects on import, the README's notebook block runs."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter (this checkout first on the path); its stdout."""
    env_path = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    out = subprocess.run([sys.executable, "-c", env_path + code], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _public_modules() -> list[str]:
    """Every module of the package (interp.train included), by file."""
    mods = []
    for path in sorted((ROOT / "interp").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return mods


def test_import_interp_is_cheap_and_exports_the_api():
    out = json.loads(_python(
        "import json, sys\n"
        "import interp\n"
        "heavy = [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules]\n"
        "names = {n: callable(getattr(interp, n)) for n in interp.__all__}\n"
        "print(json.dumps({'heavy': heavy, 'names': names}))\n"))
    assert out["heavy"] == []
    for name in ("load_subject", "capture", "cka_grid", "patch", "attribute", "discover", "make_pair", "match_heads",
                 "weight_patch", "run_comparison", "make_contrast", "hans_pairs", "ActivationCache", "explore"):
        assert out["names"].get(name) is True, name


def test_import_has_no_side_effects():
    """Importing every module leaves matplotlib's backend and os.environ as they were (after the dependencies
    themselves are imported: TransformerLens's bridge factories set TORCHINDUCTOR_CACHE_DIR on import)."""
    mods = _public_modules()
    out = json.loads(_python(
        "import importlib, json, os\n"
        "import matplotlib\n"
        "matplotlib.use('svg')  # a backend the user chose (e.g. inline in a notebook)\n"
        "import torch, transformers, transformer_lens, nnsight  # dependencies' own import-time settings\n"
        "import transformer_lens.factories.architecture_adapter_factory  # sets TORCHINDUCTOR_CACHE_DIR itself\n"
        "env = dict(os.environ)\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "print(json.dumps({'backend': matplotlib.get_backend(), 'env': changed}))\n"))
    assert out == {"backend": "svg", "env": []}


def test_capture_is_callable_after_its_module_is_imported(tokenizer, pairs):
    from conftest import make_bert

    import interp
    import interp.capture  # rebinds the package attribute to the module

    subject = interp.load_subject(make_bert(), tokenizer)
    cap = interp.capture(subject, pairs[:4], "blocks.*.hook_resid_post", progress=False)
    assert isinstance(cap, interp.Capture) and len(cap.acts) == 3


def _readme_notebook() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if b.startswith("import interp\norg ="))


def test_readme_notebook_block_runs():
    code = _readme_notebook()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 7 and sum(line.startswith(("import", "from")) for line in lines) == 1
    out = json.loads(_python(
        code + "\nimport json\n"
        "print(json.dumps({'fig': type(fig).__name__, 'grid': list(grid.grid.shape), 'rows': grid.x_labels,\n"
        "                  'heads': list(heads.scores.shape), 'no_signal': heads.no_signal}))\n"))
    assert out["fig"] == "Figure"
    assert out["grid"] == [6, 3] and out["rows"][0] == "blocks.0.hook_resid_post"
    assert out["heads"] == [6, 4] and out["no_signal"] is False


def test_figures_render_without_pyplot(tmp_path):
    """A figure from the library saves under any backend and is not registered with pyplot."""
    out = _python(
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import numpy as np\n"
        "import interp\n"
        "g = interp.CKAGrid({'xy': np.eye(3)}, ['a', 'b', 'c'], ['a', 'b', 'c'])\n"
        "fig = g.plot()\n"
        f"fig.savefig({str(tmp_path / 'g.png')!r})\n"
        "import matplotlib.pyplot as plt\n"
        "print(len(plt.get_fignums()), matplotlib.get_backend())\n")
    assert out.split() == ["0", "svg"]
    assert (tmp_path / "g.png").stat().st_size > 0


@pytest.mark.parametrize("argv", [["capture"], ["cka"], ["patch"], ["circuit"], ["compare"], ["demo"]])
def test_every_subcommand_takes_device(argv):
    from interp.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[argv[0]]  # type: ignore[union-attr]
    device = [a for a in sub._actions if "--device" in a.option_strings]
    assert len(device) == 1 and device[0].default == "auto"


def _interp_imports(path: Path, modules: set[str]) -> set[str]:
    """interp modules that `path` imports, at any level (function bodies included, TYPE_CHECKING blocks not)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names}
    return out & modules


def test_no_import_cycles():
    """No module imports (even lazily, inside a function) a module that imports it back."""
    paths = {m: ROOT / (m.replace(".", "/") + ".py") for m in _public_modules()}
    paths = {m: (p if p.exists() else p.with_suffix("") / "__init__.py") for m, p in paths.items()}
    graph = {m: _interp_imports(p, set(paths)) - {m} for m, p in paths.items()}
    cycles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append(" -> ".join([*path, nxt]))
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for m in sorted(graph):
        walk(m, m, [m])
    assert cycles == []
