"""Sample weights: user input as an (n, 1) Dask array chunked like the rows, validated.

Accepted: NumPy arrays and anything ``numpy.asarray`` takes (lists, pandas
Series), Dask arrays, the path or URL of a one-dimensional Zarr array, an
``xarray.DataArray`` over the sample dimensions of xarray input, or the name of
a variable of an ``xarray.Dataset`` given as X (:func:`split_dataset_weights`).
One ``compute`` over the weights alone (not the data) checks their values and
fingerprints them for checkpoints. The rows that a search holds out are weights
too (:func:`held_out_rows`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from .data import Rows, open_zarr_array
from .kernels import row_uniforms
from .reads import compute

__all__ = ["HELD_OUT_SEED", "SampleWeights", "as_sample_weights", "held_out_rows",
           "split_dataset_weights"]


@dataclass(frozen=True)
class SampleWeights:
    """Validated sample weights of the rows of X.

    ``array``: (n, 1) float64, chunked like the rows; ``total``: their sum;
    ``constant``: every weight is the same (the model is then that of no
    weights, the likelihood being scaled by a constant); ``fingerprint``: for
    checkpoints.
    """

    array: da.Array
    total: float
    constant: bool
    fingerprint: dict

    @property
    def for_fit(self) -> da.Array | None:
        """The weights the fit passes need: None where they change nothing (constant)."""
        return None if self.constant else self.array


def split_dataset_weights(X, sample_weight):
    """``(X, sample_weight)`` with a weights variable named by ``sample_weight`` taken
    out of an ``xarray.Dataset`` ``X`` (so that it is not a feature)."""
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        return X, sample_weight
    if isinstance(X, xr.Dataset) and isinstance(sample_weight, str) and sample_weight in X:
        return X.drop_vars(sample_weight), X[sample_weight]
    return X, sample_weight


def _block_summary(block) -> tuple:
    w = np.asarray(block, dtype=np.float64).ravel()
    finite = np.isfinite(w)
    good = w[finite]
    return (
        int(np.count_nonzero(~finite)),
        int(np.count_nonzero(good < 0)),
        float(good.min()) if len(good) else np.inf,
        float(good.max()) if len(good) else -np.inf,
        float(good.sum()),
        hashlib.sha256(np.ascontiguousarray(w).tobytes()).hexdigest(),
    )


def _as_dask(sample_weight, rows: Rows) -> da.Array:
    n = rows.n_samples
    if isinstance(sample_weight, (str, os.PathLike)):
        try:
            sample_weight = open_zarr_array(sample_weight)
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"sample_weight={str(sample_weight)!r}: {exc}") from None
    if type(sample_weight).__module__.split(".")[0] == "xarray":
        if rows.per_row is None:
            raise ValueError(
                "sample_weight is an xarray object, but X is not: give an array of one "
                "weight per row"
            )
        return rows.per_row(sample_weight, "sample_weight")
    if not isinstance(sample_weight, da.Array):
        try:
            w = np.asarray(sample_weight)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sample_weight must be an array of numbers: {exc}") from None
        if w.ndim == 0:  # a scalar weight for every row, as scikit-learn takes it
            w = np.full(n, w)
        sample_weight = w
    w = sample_weight
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"sample_weight must hold one weight per row of X: expected shape ({n},), "
            f"got {tuple(w.shape)}"
        )
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold real numbers, got dtype {w.dtype}")
    return w if isinstance(w, da.Array) else da.from_array(w, chunks=(rows.array.chunks[0],))


def as_sample_weights(sample_weight, rows: Rows) -> SampleWeights | None:
    """Validated :class:`SampleWeights` for the rows of X (None for None).

    Errors name ``sample_weight`` and say what was expected: one finite,
    non-negative weight per row, not all zero.
    """
    if sample_weight is None:
        return None
    w = _as_dask(sample_weight, rows)
    if w.chunks[0] != rows.array.chunks[0]:
        w = w.rechunk((rows.array.chunks[0],))
    w = w.astype(np.float64)[:, None]
    (parts,) = compute([dask.delayed(_block_summary)(b) for b in w.to_delayed().ravel()])
    nonfinite = sum(p[0] for p in parts)
    negative = sum(p[1] for p in parts)
    low = min((p[2] for p in parts), default=np.inf)
    high = max((p[3] for p in parts), default=-np.inf)
    total = float(sum(p[4] for p in parts))
    if nonfinite:
        raise ValueError(f"sample_weight must be finite: {nonfinite} value(s) are NaN or infinite")
    if negative:
        raise ValueError(
            f"sample_weight must be non-negative: {negative} value(s) are negative "
            f"(the smallest is {low:g})"
        )
    if total <= 0:
        raise ValueError("sample_weight is zero for every row: there is nothing to fit")
    digest = hashlib.sha256("".join(p[5] for p in parts).encode()).hexdigest()
    return SampleWeights(
        w, total, constant=bool(low == high),
        fingerprint={"sum": total, "chunks_sha256": digest},
    )


#: The key of the counter-based draws that hold rows out (any fixed number: the
#: same rows are held out of every search of the same data).
HELD_OUT_SEED = 0x5EA2C4
_HELD_OUT_STREAM = 7


def held_out_rows(X: da.Array, fraction: float) -> da.Array:
    """(n, 1) float64: 1.0 for the rows held out, 0.0 for the others. Row i is held
    out when a uniform draw fixed by its global index alone is below ``fraction``:
    the same rows whatever the chunking or the scheduler. Chunked like the rows of
    ``X``, whose values are not read."""

    def block(b, block_info=None):
        start, stop = block_info[0]["array-location"][0]
        u = row_uniforms(HELD_OUT_SEED, start, stop - start, 1, stream=_HELD_OUT_STREAM)
        return (u < fraction).astype(np.float64)

    rows = da.zeros((X.shape[0], 1), chunks=(X.chunks[0], 1))
    return rows.map_blocks(block, dtype=np.float64, meta=np.empty((0, 0), np.float64))
