"""The default backend: plain PyTorch forward hooks on the HuggingFace modules (interp.engine).

Fastest of the three (no tracing). The hooks themselves, resuming from a layer and the exact shortcuts
live in `interp.engine`, which analyses call; this module is the backend interface (`run`) plus the old
names, kept as aliases of the engine's so that existing imports keep working.
"""
from __future__ import annotations

from interp.engine import (  # noqa: F401  (aliases: the engine is their one home)
    apply_write,
    expand_kwargs,
    installed,
    layer_inputs,
    run,
    run_from,
)
