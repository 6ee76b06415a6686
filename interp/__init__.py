"""kd-interp: mechanistic interpretability of knowledge distillation.

One import is enough for a notebook; names load lazily (PEP 562), so `import interp` imports
neither torch nor transformers:

    import interp
    teacher = interp.load_subject("path/to/teacher")           # device="auto"
    logits, cache = teacher.run(("A man sleeps.", "A person sleeps."), read="blocks.*")
    grid = interp.cka_grid(interp.capture(teacher, data, "blocks.*.hook_resid_post"),
                           interp.capture(student, data, "blocks.*.hook_resid_post"))
    result = interp.patch(teacher, interp.make_contrast(teacher, *interp.hans_pairs(64)))

Submodules (`interp.organisms`, `interp.plot`, ...) are reachable as attributes too.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # models and running them
    "Subject": "interp.subject",
    "load_subject": "interp.subject",
    "ActivationCache": "interp.cache",
    # recording
    "capture": "interp.capture",
    "Capture": "interp.capture",
    "load_capture": "interp.capture",
    # CKA
    "cka_grid": "interp.cka",
    "CKAGrid": "interp.cka",
    "linear_cka": "interp.cka",
    "head_cka_grid": "interp.cka",
    "rbf_cka": "interp.cka",
    "rbf_cka_grid": "interp.cka",
    "minibatch_cka": "interp.cka",
    "bootstrap_cka": "interp.cka.stats",
    "cka_floor": "interp.cka.stats",
    # one model: contrasts, patching, attribution, circuits
    "make_contrast": "interp.contrast",
    "make_metric": "interp.contrast",
    "hans_pairs": "interp.contrast",
    "patch": "interp.patching",
    "attribute": "interp.attribution",
    "discover": "interp.circuits",
    # teacher vs student
    "make_pair": "interp.pair",
    "match_heads": "interp.pair",
    "weight_patch": "interp.weight_patching",
    "cross_patch": "interp.cross_patch",
    "compare_checkpoints": "interp.compare",
    "run_comparison": "interp.comparison_run",
    # the offline HTML explorer
    "explore": "interp.explore",
    "NoSignalError": "interp.signal",
}
_SUBMODULES = ("arch", "attribution", "bias_only", "cache", "capture", "circuits", "cka", "cka_stats", "compare",
               "comparison_run", "contrast", "cross_patch", "data", "inputs", "interventions", "metrics", "organisms", "pair", "patching", "plot",
               "report", "resume", "signal", "sites", "subject", "sweep", "weight_patching")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"interp.{name}")
    else:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from interp.attribution import attribute
    from interp.cache import ActivationCache
    from interp.capture import Capture, capture, load_capture
    from interp.circuits import discover
    from interp.cka import CKAGrid, cka_grid, head_cka_grid, linear_cka, minibatch_cka, rbf_cka, rbf_cka_grid
    from interp.cka.stats import bootstrap_cka, cka_floor
    from interp.compare import compare_checkpoints
    from interp.comparison_run import run_comparison
    from interp.contrast import hans_pairs, make_contrast, make_metric
    from interp.cross_patch import cross_patch
    from interp.explore import explore
    from interp.pair import make_pair, match_heads
    from interp.patching import patch
    from interp.signal import NoSignalError
    from interp.subject import Subject, load_subject
    from interp.weight_patching import weight_patch
