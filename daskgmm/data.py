"""Turning user input into a validated 2-D Dask array of rows (and results back).

Accepted input: NumPy arrays (and anything ``numpy.asarray`` takes), Dask
arrays, the path or URL of a Zarr array, ``xarray.DataArray`` and
``xarray.Dataset``. xarray input is laid out as rows block by block: each block
of ``(*sample_dims, feature)`` becomes a run of rows, with no rechunking (a
``stack`` would merge all but the first sample dimension into giant chunks);
per-row results are put back onto the original dimensions, chunks and
coordinates the same way, lazily.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from .reads import compute

__all__ = [
    "Rows",
    "as_rows",
    "check_same_features",
    "fingerprint",
    "numpy_chunk_rows",
    "open_zarr_array",
    "should_persist",
]

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

    ``lazy``: results are returned as Dask (or Dask-backed xarray) objects,
    otherwise computed. ``restore`` turns a per-row result, shape (n,) or
    (n, K) or (n, D), back into the caller's layout (xarray). ``missing_allowed``:
    rows with a NaN are left out of the fit by default (``missing='auto'``)
    instead of being an error.
    ``feature_names``: the names of the features, when the input has them.
    ``per_row``: for xarray input, lays out a DataArray over the sample
    dimensions (such as sample weights) as a (n,) Dask array, like the rows.
    """

    array: da.Array
    lazy: bool
    restore: Callable | None = None
    missing_allowed: bool = False
    feature_names: tuple[str, ...] | None = None
    per_row: Callable | None = None

    @property
    def n_samples(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.array.shape[1])

    def output(self, result: da.Array, kind: str):
        """A per-row result as the caller expects it (``kind`` names it for xarray)."""
        out = result if self.restore is None else self.restore(result, kind)
        if self.lazy:
            return out
        if self.restore is not None:
            return out.compute()
        (out,) = compute(out)
        return out


def check_same_features(rows: Rows, n_features: int, feature_names, owner: str) -> None:
    """Refuse ``rows`` whose number or names of features differ from those seen in fit."""
    if rows.n_features != n_features:
        raise ValueError(
            f"X has {rows.n_features} features, but {owner} is expecting {n_features} "
            "features as input."
        )
    if feature_names is not None and rows.feature_names is not None:
        if list(feature_names) != list(rows.feature_names):
            raise ValueError(
                f"The feature names of X {list(rows.feature_names)} differ from those "
                f"seen in fit {list(feature_names)} (names and order must match)."
            )


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
    return _as_real(X.rechunk({1: -1}) if X.numblocks[1] > 1 else X, name)


def _as_real(X, name):
    if X.dtype in (np.float32, np.float64):
        return X
    if X.dtype.kind in "biu":
        return X.astype(np.float64)
    raise ValueError(
        f"{name} must hold real numbers (float32, float64 or integers), got dtype {X.dtype}."
    )


def open_zarr_array(path) -> da.Array:
    """A Dask array over the Zarr array at ``path`` (a local path or an fsspec URL).

    For an array inside a group, give its path: ``"store.zarr/name"``.
    """
    import zarr

    try:
        node = zarr.open(store=str(path), mode="r")
    except FileNotFoundError:
        raise FileNotFoundError(f"no Zarr array or group at {path!s}") from None
    except Exception as exc:
        raise ValueError(f"cannot open {path!s} as Zarr: {exc}") from None
    if isinstance(node, zarr.Group):
        names = sorted(node.array_keys())
        raise ValueError(
            f"{path!s} is a Zarr group, not an array; name one of its arrays as "
            f"'{path!s}/NAME' (arrays: {', '.join(names) or 'none'})."
        )
    return da.from_zarr(node)


def as_rows(
    X,
    *,
    name: str = "X",
    sample_dims: Sequence[str] | None = None,
    feature_dim: str | None = None,
) -> Rows:
    """Validate ``X`` and wrap it as :class:`Rows` (see the module docstring).

    Dask arrays stay lazy (float32 stays float32; integers become float64; column
    chunks are merged). NumPy input is cut into row chunks of a few per core.
    Non-finite values are found by the first pass over the data.
    """
    if isinstance(X, (str, os.PathLike)):
        return Rows(_from_dask(open_zarr_array(X), name), lazy=True)
    if isinstance(X, da.Array):
        return Rows(_from_dask(X, name), lazy=True)
    xr = _xarray()
    if xr is not None and isinstance(X, (xr.DataArray, xr.Dataset)):
        return _xarray_rows(X, name, sample_dims, feature_dim)
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), got an array with "
            f"{arr.ndim} dimension(s) and shape {arr.shape}."
        )
    arr = _as_real(arr, name)
    rows = numpy_chunk_rows(arr.shape[0], arr.shape[1], arr.dtype.itemsize)
    return Rows(da.from_array(arr, chunks=(rows, -1)), lazy=False)


def _xarray():
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        return None
    return xr


# ---------------------------------------------------------------------------
# xarray: blocks of (*sample_dims, feature) <-> runs of rows
# ---------------------------------------------------------------------------


def _flatten_block(block):
    return block.reshape(-1, block.shape[-1])


def _unflatten_block(block, shape):
    return block.reshape(shape + block.shape[1:])


def blocks_to_rows(A: da.Array) -> da.Array:
    """``(*sample, F)`` with one chunk along F -> ``(n, F)``: one row run per block."""
    grid = list(product(*(range(n) for n in A.numblocks[:-1])))
    name = "daskgmm-rows-" + dask.base.tokenize(A)
    layer = {(name, k, 0): (_flatten_block, (A.name, *idx, 0)) for k, idx in enumerate(grid)}
    rows = tuple(
        int(np.prod([A.chunks[d][i] for d, i in enumerate(idx)], dtype=np.int64)) for idx in grid
    )
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[A])
    return da.Array(graph, name, chunks=(rows, (A.shape[-1],)), dtype=A.dtype)


def rows_to_blocks(R: da.Array, sample_chunks: tuple) -> da.Array:
    """The inverse of :func:`blocks_to_rows` for a per-row result of shape (n,) or (n, K)."""
    grid = list(product(*(range(len(c)) for c in sample_chunks)))
    name = "daskgmm-blocks-" + dask.base.tokenize(R, sample_chunks)
    tail = (0,) if R.ndim == 2 else ()
    layer = {
        (name, *idx, *tail): (
            _unflatten_block,
            (R.name, k, *tail),
            tuple(sample_chunks[d][i] for d, i in enumerate(idx)),
        )
        for k, idx in enumerate(grid)
    }
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[R])
    chunks = tuple(sample_chunks) + ((R.chunks[1],) if R.ndim == 2 else ())
    return da.Array(graph, name, chunks=chunks, dtype=R.dtype)


_RESULT_NAMES = {
    "labels": "label",
    "proba": "responsibility",
    "score_samples": "log_likelihood",
}


def _check_dataset_variables(ds, variables, name, sample_dims) -> None:
    """Every variable of a Dataset is a feature over the same sample dimensions:
    refuse what would otherwise be broadcast into an outer product, and values
    that are not numbers."""
    for v in variables:
        if ds[v].dtype.kind not in "biuf":
            raise ValueError(
                f"{name}: variable {v!r} holds {ds[v].dtype} values, not numbers; "
                "drop it (ds.drop_vars) or pick the feature variables"
            )
    want = set([sample_dims] if isinstance(sample_dims, str) else sample_dims or ds[variables[0]].dims)
    odd = {v: ds[v].dims for v in variables if set(ds[v].dims) != want}
    if odd:
        raise ValueError(
            f"{name}: the feature variables must all be over the sample dimensions "
            f"{tuple(sorted(want))}, but " + ", ".join(f"{v!r} is over {d}" for v, d in odd.items())
        )


def _xarray_rows(X, name, sample_dims, feature_dim) -> Rows:
    xr = _xarray()
    feature_names = None
    if isinstance(X, xr.Dataset):
        variables = list(X.data_vars)
        if not variables:
            raise ValueError(f"{name} is an xarray.Dataset without data variables")
        _check_dataset_variables(X, variables, name, sample_dims)
        feature_names = tuple(str(v) for v in variables)
        feature_dim = "variable"
        X = X[variables].to_dataarray(dim=feature_dim)
    elif feature_dim is None:
        if X.ndim != 2:
            raise ValueError(
                f"{name} is an xarray.DataArray with dimensions {X.dims}: say which one "
                "holds the features with feature_dim=..."
            )
        feature_dim = X.dims[1]
    if feature_dim not in X.dims:
        raise ValueError(f"feature_dim={feature_dim!r} is not a dimension of {name} {X.dims}")
    if sample_dims is None:
        sample_dims = [d for d in X.dims if d != feature_dim]
    sample_dims = [sample_dims] if isinstance(sample_dims, str) else list(sample_dims)
    unknown = [d for d in sample_dims if d not in X.dims]
    left = [d for d in X.dims if d not in sample_dims and d != feature_dim]
    if unknown or left or feature_dim in sample_dims or not sample_dims:
        raise ValueError(
            f"sample_dims={sample_dims!r} and feature_dim={feature_dim!r} must together name "
            f"every dimension of {name} {X.dims} once"
        )
    was_dataset = feature_names is not None
    X = X.transpose(*sample_dims, feature_dim)
    lazy = isinstance(X.data, da.Array)
    data = X.data if lazy else da.from_array(np.asarray(X.data), chunks="auto")
    data = _as_real(data.rechunk({data.ndim - 1: -1}), name)
    sample_chunks = data.chunks[:-1]
    coords = {
        k: v for k, v in X.coords.items() if set(v.dims) <= set(sample_dims) and k != feature_dim
    }

    def restore(result: da.Array, kind: str):
        if kind == "impute":  # the input's own layout, features included
            out = xr.DataArray(rows_to_blocks(result, sample_chunks), dims=X.dims,
                               coords=X.coords, name=X.name, attrs=X.attrs)
            return out.to_dataset(dim=feature_dim) if was_dataset else out
        dims = list(sample_dims) + (["component"] if result.ndim == 2 else [])
        return xr.DataArray(
            rows_to_blocks(result, sample_chunks),
            dims=dims,
            coords=coords,
            name=_RESULT_NAMES.get(kind, kind),
        )

    def per_row(values, what: str) -> da.Array:
        if set(values.dims) != set(sample_dims):
            raise ValueError(
                f"{what} must be over the sample dimensions {tuple(sample_dims)} of {name}, "
                f"got dimensions {values.dims}"
            )
        values = values.transpose(*sample_dims)
        if values.shape != tuple(X.sizes[d] for d in sample_dims):
            raise ValueError(
                f"{what} has shape {values.shape}, the sample dimensions of {name} "
                f"{tuple(X.sizes[d] for d in sample_dims)}"
            )
        arr = values.data if isinstance(values.data, da.Array) else da.from_array(np.asarray(values.data))
        return blocks_to_rows(arr.rechunk(sample_chunks)[..., None])[:, 0]

    return Rows(
        blocks_to_rows(data),
        lazy=lazy,
        restore=restore,
        missing_allowed=True,
        feature_names=feature_names,
        per_row=per_row,
    )


# ---------------------------------------------------------------------------
# Fingerprints and memory
# ---------------------------------------------------------------------------


def fingerprint(X: da.Array) -> dict:
    """Shape, dtype, row chunking and a digest of the first and last rows of ``X``.

    Cheap: reads at most two chunks. Enough to tell one data set from another
    for checkpoints; not a proof that every value is the same.
    """
    import hashlib

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
