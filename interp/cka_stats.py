"""Moved to `interp.cka.stats`; this name stays importable."""
from __future__ import annotations

from interp.cka.stats import bootstrap_cka, cka_floor, condition_grids, permutation_null

__all__ = ["cka_floor", "bootstrap_cka", "permutation_null", "condition_grids"]
