"""Provenance and safe writes: library versions, config records, atomic file writes."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

_PACKAGES = ("kd-interp", "torch", "transformers", "transformer-lens", "nnsight", "numpy", "scipy")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour affects the numbers."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A provenance record: the config, versions, time, plus any extra fields (seed, fingerprints)."""
    return {"config": config, **extra, "versions": versions(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())
