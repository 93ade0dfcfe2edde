"""Turning user input into a validated 2-D Dask array of rows (and results back)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import dask.array as da
import numpy as np

__all__ = ["Rows", "as_rows", "numpy_chunk_rows"]

#: Largest chunk that in-memory NumPy input is cut into (bytes).
_MAX_CHUNK_BYTES = 64 * 2**20


def numpy_chunk_rows(n_samples: int, n_features: int, itemsize: int) -> int:
    """Rows per chunk for in-memory data: a few chunks per core, none too big."""
    cores = os.cpu_count() or 1
    by_cores = math.ceil(n_samples / (4 * cores))
    by_bytes = _MAX_CHUNK_BYTES // max(1, n_features * itemsize)
    return max(1, min(max(by_cores, 4096), by_bytes))


@dataclass(frozen=True)
class Rows:
    """Input data as a Dask array of shape (n_samples, n_features), one column chunk.

    ``lazy`` tells whether results should be returned as Dask arrays (Dask input)
    or computed to NumPy (NumPy input).
    """

    array: da.Array
    lazy: bool

    @property
    def n_samples(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.array.shape[1])

    def output(self, result: da.Array):
        """A per-row result as the caller expects it: lazy for Dask, NumPy otherwise."""
        if self.lazy:
            return result
        from .em import compute

        (out,) = compute(result)
        return out


def _from_dask(X: da.Array, name: str) -> da.Array:
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), got a Dask array "
            f"with {X.ndim} dimension(s) and shape {X.shape}."
        )
    if any(math.isnan(c) for c in X.chunks[0]) or any(math.isnan(c) for c in X.chunks[1]):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {X.shape}); call "
            f"{name}.compute_chunk_sizes() first, or build it with known chunks."
        )
    kind = X.dtype.kind
    if kind in "biu":
        X = X.astype(np.float64)
    elif X.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"{name} must hold real numbers (float32, float64 or integers), got dtype {X.dtype}."
        )
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return X


def as_rows(X, *, name: str = "X") -> Rows:
    """Validate ``X`` and wrap it as :class:`Rows`.

    Dask arrays stay lazy (float32 stays float32; integers become float64; column
    chunks are merged). Anything else goes through :func:`numpy.asarray`, must be
    2-D and is cut into row chunks of a few per core. NaN/inf in NumPy input are
    found here; in Dask input, during the first pass over the data.
    """
    if isinstance(X, da.Array):
        return Rows(_from_dask(X, name), lazy=True)
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        xr = None
    if xr is not None and isinstance(X, xr.DataArray):
        data = X.data
        if isinstance(data, da.Array):
            return Rows(_from_dask(data, name), lazy=True)
        X = np.asarray(data)
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), got an array with "
            f"{arr.ndim} dimension(s) and shape {arr.shape}. Reshape your data with "
            "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample."
        )
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must hold real numbers, got dtype {arr.dtype}: {exc}"
            ) from None
    if not np.isfinite(arr).all():
        raise ValueError(f"Input {name} contains NaN or infinity.")
    rows = numpy_chunk_rows(arr.shape[0], arr.shape[1], arr.dtype.itemsize)
    return Rows(da.from_array(arr, chunks=(rows, -1)), lazy=False)


def fingerprint(X: da.Array) -> dict:
    """Shape, dtype, row chunking and a digest of the first and last rows of ``X``.

    Cheap: reads at most two chunks. Enough to tell one data set from another
    for checkpoints; not a proof that every value is the same.
    """
    import hashlib

    from .em import compute

    n = X.shape[0]
    (ends,) = compute(X[[0, n - 1]] if n else X[:0])
    return {
        "shape": [int(s) for s in X.shape],
        "dtype": str(X.dtype),
        "row_chunks": [int(c) for c in X.chunks[0]],
        "first_last_rows_sha256": hashlib.sha256(np.ascontiguousarray(ends).tobytes()).hexdigest(),
    }


def available_memory() -> int:
    """Memory the current scheduler can hold: the workers' limits, or this machine's free memory."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        limits = [w.get("memory_limit") or 0 for w in workers.values()]
        if limits and all(limits):
            return int(sum(limits))
    import psutil

    return int(psutil.virtual_memory().available)


def should_persist(X: da.Array, persist) -> bool:
    """Whether to keep ``X`` in memory during a fit (``persist='auto'|True|False``).

    ``'auto'`` persists when the data takes at most half of the memory that the
    scheduler can hold.
    """
    if persist != "auto":
        return bool(persist)
    return X.nbytes <= 0.5 * available_memory()
