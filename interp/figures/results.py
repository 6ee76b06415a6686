"""What a results folder holds (`Results`, read lazily), the `MissingPart` error a figure raises when a
part is absent, and the helpers every figure family shares."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import UserError


class MissingPart(UserError):
    """A figure needs a part the results folder lacks; the message names the part and its command."""

    def __init__(self, figure: str, part: str, why: str, command: str):
        self.figure, self.part, self.why, self.command = figure, part, why, command
        super().__init__(f"figure {figure!r} needs the {part!r} part: {why}; compute it with `{command}`")


def _commands(root: Path) -> dict[str, str]:
    r = str(root)
    return {
        "compare": f"interp compare --teacher T --student S --out {r}",
        "explore": f"interp explore {r} --teacher T --student S",
        "cka": f"interp data hans --n-per-subcase 20 --out hans.txt && interp cka --teacher T --student S "
               f"--data hans.txt --conditions hans --debiased --out {r}/cka",
        "patching_positions": f"interp patch --model T --component resid --out {r}/patch_resid",
        "patching_pair": f"interp patch --model T --out {r}/patch_exact && interp patch --model T --method atp "
                         f"--out {r}/patch_atp",
        "study": f"interp demo --out {r}  (or python analyses/kd_debias.py --out {r})",
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); recompute it or remove it.") from None


class Results:
    """What a results folder holds, read once and lazily (each part None when absent)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root} is not a folder: pass a results folder (e.g. of `interp compare`).")
        self.commands = _commands(self.root)
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def compare_dir(self) -> Path | None:
        """The folder holding `interp compare`'s results.json: RESULTS itself, else its one subfolder with one."""
        def find() -> Path | None:
            for d in [self.root, *sorted(p for p in self.root.iterdir() if p.is_dir())]:
                if (d / "results.json").is_file():
                    raw = _read_json(d / "results.json")
                    if isinstance(raw.get("results"), dict) and "head_map" in raw["results"]:
                        return d
            return None
        return self._once("compare_dir", find)

    @property
    def compare(self) -> Any:  # a dict, or None when absent
        """results.json's `results` (interp.explore.data.read_results)."""
        from interp.explore.data import read_results

        return self._once("compare", lambda: read_results(self.compare_dir) if self.compare_dir else None)

    @property
    def explore(self) -> Any:  # a dict, or None when absent
        """The explorer's data model (interp.explore.data schema): explore/data.json when present, else
        what `gather` reads from the compare results alone (head map, effects, attribution)."""
        def load() -> dict | None:
            for d in [self.root, self.compare_dir]:
                if d is not None and (d / "explore" / "data.json").is_file():
                    return _read_json(d / "explore" / "data.json")
            if self.compare_dir is None:
                return None
            from interp.explore.data import gather

            return gather(results=self.compare_dir)
        return self._once("explore", load)

    def explored(self, key: str) -> Any:
        """One part of the explorer data computed from the models (attention, patching, circuits, cka)."""
        data = self.explore
        return None if data is None else data.get(key)

    @property
    def cka(self) -> Any:  # a dict, or None when absent
        def load() -> dict | None:
            for d in [self.root, self.compare_dir]:
                for p in (d / "cka" / "cka.json", d / "cka.json") if d is not None else ():
                    if p.is_file():
                        return _read_json(p)
            return None
        return self._once("cka", load)

    @property
    def patching(self) -> list[tuple[Path, dict]]:
        """Every `interp patch` result (patching.json) up to two folders deep."""
        def load() -> list[tuple[Path, dict]]:
            files = sorted({*self.root.glob("*/patching.json"), *self.root.glob("*/*/patching.json"),
                            *self.root.glob("patching.json")})
            return [(p, _read_json(p)) for p in files]
        return self._once("patching", load)

    @property
    def study(self) -> tuple[dict[str, list[dict]], int | None] | None:
        """({model: [metrics of each seed]}, examples per HANS subcase or None) of the study, if any."""
        def load():
            for d in [self.root, self.root.parent]:
                if (d / "zoo_metrics.json").is_file():
                    z = _read_json(d / "zoo_metrics.json")
                    return {k: [v] for k, v in z["models"].items()}, z.get("hans_per_subcase")
            if (self.root / "results.json").is_file():
                raw = _read_json(self.root / "results.json")
                if isinstance(raw.get("runs"), dict):
                    models: dict[str, list[dict]] = {}
                    for key in sorted(raw["runs"]):
                        run = raw["runs"][key]
                        models.setdefault(run["condition"], []).append(run["metrics"])
                    order = raw.get("conditions") or list(models)
                    return {c: models[c] for c in order if c in models}, (raw.get("config") or {}).get("hans_per_subcase")
            return None
        return self._once("study", load)


# --- shared by the figure functions: (Results) -> Figure, raising MissingPart ----------------------
def _need(value: Any, fig: str, part: str, why: str, r: Results, command: str | None = None) -> Any:
    if value is None or value == [] or value == {}:
        raise MissingPart(fig, part, why, r.commands[command or part])
    return value


def _grid(rows: Any) -> np.ndarray:
    """A JSON grid with None (NaN stored as null) -> float array."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _names(r: Results) -> tuple[str, str]:
    data = r.explore or {}
    return ((data.get("teacher") or {}).get("name", "teacher"), (data.get("student") or {}).get("name", "student"))
