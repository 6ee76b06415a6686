"""Multi-round KD in the born-again sense (Furlanello et al. 2018).

The student of round ``k`` is the teacher of round ``k + 1``; every round's student is built afresh by the
same ``build_student`` (same architecture and initialisation), only the teacher changes. (The "teacher
assistant" chain of shrinking sizes, Mirzadeh et al. 2020, is a different method and is not this.)
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from interp.train.checkpoints import train_and_save
from interp.train.config import TrainConfig


def iterative_kd(out_root: str | os.PathLike, teacher: str | os.PathLike, build_student: Callable[[], tuple[Any, Any]],
                 train_examples: Sequence[dict], config: TrainConfig, rounds: int, *, evaluate=None,
                 extra: dict | None = None, progress: bool | None = None, name: str = "round",
                 num_threads: int | None = None) -> list[Path]:
    """Born-again multi-round KD: round 1 distils ``teacher``; round ``k+1`` distils round ``k``'s student.

    Each round's student comes from ``build_student()`` (same architecture and init every round) and is
    saved to ``out_root/{name}{k}`` (cached like :func:`train_and_save`; the teacher is recorded relative
    to ``out_root``). Returns the round folders.
    """
    if config.loss != "kd":
        raise ValueError("iterative_kd needs config.loss == 'kd'")
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    out_root = Path(out_root)
    paths: list[Path] = []
    current = Path(teacher)
    for k in range(1, rounds + 1):
        # the teacher relative to out_root ("round1", "../teacher"): the cache survives moving the tree
        ref = os.path.relpath(current.resolve(), out_root.resolve())
        ex = {**(extra or {}), "teacher": ref, "round": k, "rounds_kind": "born_again"}
        p = train_and_save(out_root / f"{name}{k}", build_student, train_examples, config, teacher=current,
                           evaluate=evaluate, extra=ex, progress=progress, num_threads=num_threads)
        paths.append(p)
        current = p
    return paths
