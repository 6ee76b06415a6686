"""The step cache of a multi-step run (`interp.comparison_run`, `interp.study`): each step's value is
stored as `<root>/steps/<name>.json` when it finishes, with the config it was computed under.

A step is reused when its stored config equals the current one (so the config must hold everything
the value depends on: sizes, seeds, model fingerprints, a digest of the data) and the files it wrote
still exist; otherwise it is recomputed. Writes are atomic (temp file + rename), so a run killed
mid-step leaves the finished steps intact and no partial one: rerunning redoes only what is missing.
Each record also holds the library versions, the wall time and when it finished; every step run or
reused is appended to `<root>/steps.log` (JSON lines) so a rerun shows what it skipped.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from interp.provenance import atomic_write_json, versions


def digest(obj: Any) -> str:
    """sha256 (first 16 hex digits) of an object's canonical JSON: a short key for data in a step config."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class StepCache:
    """Cached steps under `root`; `on_event(name, status, seconds)` is called for each step (status
    "ran" or "cached"), e.g. to print progress."""

    def __init__(self, root: str | Path, on_event: Callable[[str, str, float], None] | None = None) -> None:
        self.root = Path(root)
        self.on_event = on_event

    def path(self, name: str) -> Path:
        return self.root / "steps" / f"{name}.json"

    def load(self, name: str, config: dict, outputs: Sequence[str | Path] = ()) -> dict | None:
        """The stored record of `name` if it was computed under `config` and its outputs exist, else None."""
        path = self.path(name)
        if not path.exists() or not all(Path(p).exists() for p in outputs):
            return None
        saved = json.loads(path.read_text())
        # stored through JSON: compare the config as it reads back (tuples -> lists, int keys -> str)
        return saved if saved.get("config") == json.loads(json.dumps(config, default=str)) else None

    def done(self, name: str, config: dict, outputs: Sequence[str | Path] = ()) -> bool:
        return self.load(name, config, outputs) is not None

    def run(self, name: str, config: dict, fn: Callable[[], Any], outputs: Sequence[str | Path] = ()) -> Any:
        """`fn()`'s value, stored; or the stored value when `name` was computed under `config` (and the
        `outputs` files exist)."""
        saved = self.load(name, config, outputs)
        if saved is not None:
            self._log(name, "cached", saved.get("seconds", 0.0))
            return saved["value"]
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        atomic_write_json(self.path(name), {"config": config, "value": value, "seconds": round(seconds, 3),
                                            "versions": versions(), "finished": _now()})
        self._log(name, "ran", seconds)
        # the value as later runs will read it back (JSON), so a fresh and a resumed run agree exactly
        return json.loads(self.path(name).read_text())["value"]

    def _log(self, name: str, status: str, seconds: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "steps.log", "a") as f:
            f.write(json.dumps({"step": name, "status": status, "seconds": round(seconds, 3), "time": _now()}) + "\n")
        if self.on_event is not None:
            self.on_event(name, status, seconds)


def read_log(root: str | Path) -> list[dict]:
    """The events of `<root>/steps.log`, oldest first."""
    path = Path(root) / "steps.log"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
