"""Centred kernel alignment (CKA) between representations: one estimator per module.

Everything works on plain `[n, d]` tensors / arrays or on iterables of batches; nothing here knows
about models. Grids also take anything with `.acts` (site -> [n, d]) and `.ids`, i.e. a
`interp.capture.Capture`, and return a labelled `CKAGrid`: `cka_grid(capture_a, capture_b)`.

* Linear CKA (Kornblith et al. 2019), feature form, accumulated exactly in float64 over any number
  of batches (`CKAAccumulator`): memory is O(d^2) per pair, independent of n. Biased and debiased
  (unbiased HSIC_1, Song et al. 2012) come out of the same accumulated statistics.
* Grids: every X layer x every Y layer in one pass (one cross-product matmul per batch on the
  concatenated layers), optionally with the X-vs-X and Y-vs-Y reference grids.
* Mixed precision (`precision="mixed"` / `"auto"`): float32 products in row blocks, float64
  accumulation, with a measured per-cell bound on the difference from float64 (`precision`).
  Everything runs on the inputs' device (CUDA tensors stay on their GPU); results are numpy.
* RBF CKA with the median-distance bandwidth, exact, over row chunks of the upper triangle (at most
  half an n x n matrix of distances at a time); `rbf_cka_nystrom` is the approximation for larger n.
* Minibatch CKA (Nguyen et al. 2021): per-batch HSIC_1 summed before normalising.

Numerical conventions (documented behaviour, tested):
* All accumulation is float64 (mixed precision rounds only the big products to float32). Each side is shifted by the mean of its first batch before
  accumulating (CKA is translation invariant, so the shift is exact); this keeps inputs with a large
  common offset (e.g. 1e6) from cancelling catastrophically.
* A constant column is fine: it carries no variance and contributes nothing after centring (CKA is
  the same as with the column dropped). An all-constant representation has zero variance and CKA
  is undefined: `ValueError`.
* NaN / inf inputs, mismatched n, misaligned example ids and 3-D input without pooling: `ValueError`.
* Results are never clamped; debiased CKA can be slightly negative for unrelated data.

Modules: `inputs` (validation, batching), `linear_stats` + `accumulator` (streaming linear CKA),
`precision` (the mixed-precision error bound), `grid` (`linear_cka`, `cka_grid`, `CKAGrid`), `heads`
(per-head grids), `rbf` (exact RBF), `nystrom` (approximate RBF), `minibatch`, `stats` (floor,
bootstrap, permutation null, condition grids).
"""
from __future__ import annotations

from interp.cka.accumulator import CKAAccumulator
from interp.cka.grid import CKAGrid, cka_grid, linear_cka
from interp.cka.heads import constant_heads, head_cka_grid
from interp.cka.inputs import (
    _CONST_RTOL,
    ArrayLike,
    Kernel,
    _acts,
    _batched,
    _check_ids,
    _names_and_mats,
    _rows_per_batch,
    as_matrix,
)
from interp.cka.minibatch import MinibatchCKA, hsic1_grams, minibatch_cka
from interp.cka.nystrom import nystrom_features, rbf_cka_nystrom
from interp.cka.rbf import median_sq_distance, rbf_cka, rbf_cka_grid
from interp.cka.stats import bootstrap_cka, cka_floor, condition_grids, permutation_null

__all__ = [
    "ArrayLike",
    "Kernel",
    "as_matrix",
    "CKAAccumulator",
    "linear_cka",
    "cka_grid",
    "CKAGrid",
    "head_cka_grid",
    "constant_heads",
    "median_sq_distance",
    "rbf_cka",
    "rbf_cka_grid",
    "nystrom_features",
    "rbf_cka_nystrom",
    "hsic1_grams",
    "MinibatchCKA",
    "minibatch_cka",
    "cka_floor",
    "bootstrap_cka",
    "permutation_null",
    "condition_grids",
]
# private helpers other modules import (interp.cka_stats did): kept importable from the package
_private = (_CONST_RTOL, _acts, _batched, _check_ids, _names_and_mats, _rows_per_batch)
