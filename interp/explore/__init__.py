"""The offline teacher-vs-student explorer: one self-contained HTML file.

    import interp
    view = interp.explore("runs/teacher", "runs/student", out="explorer.html", results="runs/compare")
    view                      # in Jupyter: displayed inline (an iframe holding the page)

`data.py` gathers the data model (read from an `interp compare` results folder, computed from the
models where missing), `html.py` renders it with the vendored scripts, `explorer.js` is the page.
"""
from __future__ import annotations

import html as _html
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Explorer", "explore"]


@dataclass
class Explorer:
    """A rendered explorer: `.data` (the data model), `.html` (the page), `.path` (where it was written)."""

    data: dict
    html: str
    path: Path | None = None

    def save(self, path: str | Path) -> Path:
        from interp.provenance import atomic_write_bytes

        self.path = Path(path)
        atomic_write_bytes(self.path, self.html.encode("utf-8"))
        return self.path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{_html.escape(self.html, quote=True)}" style="width:100%;height:900px;border:0" '
                'sandbox="allow-scripts allow-downloads"></iframe>')


def explore(teacher: Any = None, student: Any = None, out: str | Path | None = None,
            results: str | Path | None = None, n_examples: int = 30, n_pairs: int = 32, seed: int = 0,
            device: str = "auto", circuits: bool = True, pairs: tuple | None = None,
            examples: list | None = None) -> Explorer:
    """Build the explorer of a teacher/student pair (Subjects or checkpoint folders) and/or an
    `interp compare` results folder; write it to `out` when given, and its data model to
    `results/explore/data.json` (read by `interp figures`). See `interp.explore.data.gather`."""
    from interp.explore.data import gather
    from interp.explore.html import render

    data = gather(teacher, student, results=results, n_examples=n_examples, n_pairs=n_pairs, seed=seed,
                  device=device, circuits=circuits, pairs=pairs, examples=examples)
    names = f"{data['teacher']['name']} vs {data['student']['name']}"
    view = Explorer(data, render(data, title=f"kd-interp explorer: {names}"))
    if out is not None:
        view.save(out)
    if results is not None:  # the data model, so `interp figures RESULTS` draws without the models
        from interp.provenance import atomic_write_json

        atomic_write_json(Path(results) / "explore" / "data.json", data)
    return view


class _CallableModule(types.ModuleType):
    """`interp.explore` is both this package and the function: importing a submodule
    (`interp.explore.data`) rebinds the package attribute to the module, so the module itself calls `explore`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Explorer:
        return explore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
