"""Fused chunk kernels: the E-step and the statistics of a whole chunk in one
compiled function that holds no GIL (numba, ``nogil=True``).

Why compiled: the NumPy kernels made a score of calls per sub-block, each a
hand-over of the GIL, and two threads ran them 1.0-1.6x faster than one. Here
a chunk is one call: the threads of a process run their chunks in parallel
(measured 1.9-2.0x), and the elementwise work between the products runs in
cache, in one sweep, without temporaries.

Layers, each importing only those above it:

* :mod:`~daskgmm.fused.base`: numba's options and the work arrays of a sub-block;
* :mod:`~daskgmm.fused.logsumexp`: log-probabilities into responsibilities
  (a vectorised ``exp`` and ``log``);
* :mod:`~daskgmm.fused.chunks`: the EM pass's kernel of each expansion of a
  covariance type, and the sweeps over a chunk's scores;
* :mod:`~daskgmm.fused.marginal`: rows with missing features, integrated out;
* :mod:`~daskgmm.fused.nearest`: the k-means' nearest centres.
"""

from .base import NO_WEIGHT
from .chunks import (
    diagonal_chunk,
    finite_sum,
    full_chunk,
    full_quadratic_chunk,
    lowest_rows,
    tied_chunk,
)
from .marginal import (
    dense_marginal_rows,
    diagonal_marginal_rows,
    nan_patterns,
    pattern_factors,
    pattern_moments,
    shared_marginal_rows,
)
from .nearest import assignment_diagonal_sums, nearest

__all__ = [
    "NO_WEIGHT",
    "assignment_diagonal_sums",
    "dense_marginal_rows",
    "diagonal_chunk",
    "diagonal_marginal_rows",
    "finite_sum",
    "full_chunk",
    "full_quadratic_chunk",
    "lowest_rows",
    "nan_patterns",
    "nearest",
    "pattern_factors",
    "pattern_moments",
    "shared_marginal_rows",
    "tied_chunk",
]
