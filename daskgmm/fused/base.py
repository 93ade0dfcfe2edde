"""What every compiled kernel shares: numba's options, the weight argument of
rows without sample weights, and the work arrays of a sub-block."""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "JIT",
    "NO_WEIGHT",
    "VECTOR_JIT",
    "block",
    "drop_bad",
    "finite_row",
    "scratch",
]

#: The ``weight`` argument of a kernel for rows without sample weights.
NO_WEIGHT = np.empty(0)
JIT = {"nogil": True, "cache": True, "fastmath": {"contract"}}
#: ... and for loops with a division that must vectorise: numba's default
#: ("python") checks every divisor for zero, a branch that keeps the loop scalar
VECTOR_JIT = {**JIT, "error_model": "numpy"}


@numba.njit(inline="always", **JIT)
def finite_row(x):
    """Whether every value of the row ``x`` is finite (one sum, no branch a value)."""
    check = 0.0
    for v in x:
        check += v - v  # 0, or NaN where a value is not finite
    return check == 0.0


@numba.njit(**JIT)
def block(buffer, rows, cols):
    """A (rows, cols) C-contiguous array at the start of a flat work ``buffer``."""
    return buffer[: rows * cols].reshape((rows, cols))


@numba.njit(**JIT)
def scratch(block_rows):
    """The per-row work arrays of :func:`normalise` and the rows' positions."""
    return (np.empty(block_rows), np.empty(block_rows), np.empty(block_rows),
            np.empty(block_rows, dtype=np.bool_), np.empty(block_rows, dtype=np.intp))


@numba.njit(**JIT)
def drop_bad(f, nb, bad):
    """Zero the feature columns of bad rows (their responsibilities are zero
    already, and 0 times NaN would not be)."""
    for j in range(f.shape[0]):  # along the rows: a masked sweep, not a column each
        for i in range(nb):
            f[j, i] = 0.0 if bad[i] else f[j, i]
