"""Map a chunk kernel over the row chunks of a Dask array, tree-reduce, one ``compute``.

Shared by the initialisations, the EM iterations and scoring: every pass over
the data goes through here (and its ``compute``, :func:`daskgmm.reads.compute`),
so that BLAS threads, graph keys, the reduction order and the check for
non-finite rows are the same everywhere.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import replace

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import apply, funcname

from . import row_kernels
from .params import GMMParams, StatsLayout, SufficientStatistics
from .reads import compute
from .recovery import merge_worst

__all__ = [
    "MISSING",
    "SPLIT_EVERY",
    "check_finite",
    "finite_rows",
    "kernel_options",
    "map_rows",
    "pass_statistics_many",
    "per_call",
    "reduce_chunks",
    "split_scores",
    "summed_statistics",
    "take_rows",
]

#: Fan-in of the tree reduction of per-chunk statistics.
SPLIT_EVERY = 8


def _with_weights(kernel, block, weight_block, *args, **kwargs):
    """``kernel`` on a chunk of rows, given the chunk's sample weights."""
    return kernel(block, *args, sample_weight=weight_block, **kwargs)


def _rows_sum(size, keepdims, *parts):
    """The sum of the first ``size`` columns of the (1, n) rows ``parts``, in their
    order (NumPy adds the rows of a C-ordered array one after the other)."""
    return np.sum(np.concatenate([q[:, :size] for q in parts], axis=0), axis=0, keepdims=keepdims)


def _rows_gather(size, *parts):
    """The columns after the first ``size`` of the (1, n) rows ``parts``, stacked."""
    return np.concatenate([q[:, size:] for q in parts], axis=0)


def reduce_chunks(
    X: da.Array, kernel: Callable, *args, size: int, weights: da.Array | None = None,
    keep: int = 0, **kwargs
):
    """Apply ``kernel`` to every row chunk of ``X`` and tree-sum the (1, size) rows.

    ``weights``: sample weights as an (n, 1) Dask array chunked like the rows of
    ``X``; each chunk's block is passed to the kernel as ``sample_weight``. A
    kernel that takes ``block_info`` gets the chunk's ``array-location``, as
    from ``map_blocks``. Array arguments are single graph keys, shared by every
    chunk task. The sum has a fixed order: groups of :data:`SPLIT_EVERY`
    consecutive chunks, then groups of those sums (``dask.array``'s
    ``sum(split_every=SPLIT_EVERY)``, bitwise), so results are reproducible on any
    scheduler. With ``keep``, each chunk's row has ``keep`` more values, which
    are gathered, not summed: the result is ``(sum, (n_chunks, keep) array)``.

    The graph is written out (a task per chunk, then the sums) as a
    :class:`~dask.delayed.Delayed`: ``map_blocks``, ``sum`` and the array
    optimisation of that graph took 8 ms of the client's time a pass, during
    which the workers wait (a fifth of a pass of a diagonal model on 1,000,000
    rows); the chunk kernels need no fusing, as they read each chunk once.
    """
    token = tokenize(X.name, None if weights is None else weights.name, kernel, size, keep,
                     args, kwargs)
    graph: dict = {}
    refs = []
    for j, a in enumerate(args):
        if isinstance(a, np.ndarray):
            graph[f"chunk-argument-{j}-{token}"] = a
            refs.append(f"chunk-argument-{j}-{token}")
        else:
            refs.append(a)
    name = f"{funcname(kernel)}-{token}"
    takes_block_info = "block_info" in inspect.signature(kernel).parameters
    ends = np.cumsum((0,) + X.chunks[0]).tolist()
    rows = []
    for i in range(X.numblocks[0]):
        options = dict(kwargs)
        if takes_block_info:
            options["block_info"] = {0: {"array-location": [(ends[i], ends[i + 1]),
                                                            (0, X.shape[1])],
                                         "chunk-location": (i, 0)}}
        if weights is None:
            graph[(name, i)] = (apply, kernel, [(X.name, i, 0), *refs], options)
        else:  # keys are found in a task's arguments, not in its keyword arguments
            graph[(name, i)] = (apply, _with_weights,
                                [kernel, (X.name, i, 0), (weights.name, i, 0), *refs], options)
        rows.append((name, i))
    sums, level = rows, 0
    while level == 0 or len(sums) > 1:
        last = len(sums) <= SPLIT_EVERY
        sums = [_task(graph, (f"sum-{level}-{token}", g // SPLIT_EVERY), _rows_sum,
                      size if level == 0 else None, not last, *sums[g : g + SPLIT_EVERY])
                for g in range(0, len(sums), SPLIT_EVERY)]
        level += 1
    if keep:
        _task(graph, f"gather-{token}", _rows_gather, size, *rows)
    layers = HighLevelGraph.from_collections(
        name, graph, dependencies=[X] if weights is None else [X, weights])
    total = Delayed(sums[0], layers, layer=name)
    return (total, Delayed(f"gather-{token}", layers, layer=name)) if keep else total


def take_rows(X: da.Array, rows: np.ndarray) -> Delayed:
    """The rows ``rows`` (sorted indices, at least one) of ``X``, as one array: a task per row
    chunk that holds some of them, on the chunk's key, then their concatenation.
    Fancy indexing of the Dask array (``X[rows]``) took 0.07 s of the client's time
    for 100,000 of 1,000,000 in-memory rows; this takes a few milliseconds."""
    rows = np.asarray(rows, dtype=np.int64)
    ends = np.cumsum((0,) + X.chunks[0])
    cuts = np.searchsorted(rows, ends)
    name = f"take-rows-{tokenize(X.name, rows)}"
    graph = {(name, i): (_take, (X.name, i, 0), rows[cuts[i]:cuts[i + 1]] - ends[i])
             for i in range(X.numblocks[0]) if cuts[i + 1] > cuts[i]}
    graph[name] = (np.concatenate, list(graph))
    return Delayed(name, HighLevelGraph.from_collections(name, graph, dependencies=[X]), layer=name)


def _take(block, rows):
    return np.asarray(block)[rows]


def _task(graph: dict, key, func, *args):
    graph[key] = (func, *args)
    return key


#: What a fit does with rows that have a NaN: refuse them, leave them out, or
#: integrate their missing features out (:mod:`daskgmm.missing`).
MISSING = ("raise", "drop", "marginalize")

_WAYS_OUT = ("Pass missing='drop' to leave such rows out, or missing='marginalize' to "
             "integrate their missing values out.")


def kernel_options(missing: str) -> dict:
    """The keyword arguments that tell a chunk kernel how to treat NaN."""
    return {"marginalize": True} if missing == "marginalize" else {}


def check_finite(stats: SufficientStatistics, missing: str = "raise") -> SufficientStatistics:
    """Statistics over the rows that count: refuse non-finite rows, or leave them out.

    ``missing='drop'`` leaves the rows with a NaN (or infinite) value out of the
    fit, and ``n_samples`` counts the others. With ``'marginalize'`` rows with
    NaN count (their statistics are expected ones) but infinite values are still
    an error, and rows with every feature missing are left out.
    """
    if stats.n_nonfinite:
        if missing == "raise":
            raise ValueError(
                f"Input X contains NaN or infinity: {stats.n_nonfinite} of "
                f"{stats.n_samples} rows have a non-finite value (or values so large that "
                f"their log-likelihood overflows). {_WAYS_OUT}"
            )
        if missing == "marginalize":
            raise ValueError(
                f"Input X contains infinity: {stats.n_nonfinite} of {stats.n_samples} rows "
                "have an infinite value (or values so large that their log-likelihood "
                "overflows); missing='marginalize' integrates out NaN only."
            )
        valid = stats.n_samples - stats.n_nonfinite
        if valid == 0:
            raise ValueError(
                f"Input X has no row without NaN or infinity ({stats.n_samples} rows)."
            )
        stats = replace(stats, n_samples=valid)
    if stats.n_empty:
        valid = stats.n_samples - stats.n_empty
        if valid == 0:
            raise ValueError(f"Input X has no row with an observed feature ({stats.n_samples} "
                             "rows, every value NaN).")
        stats = replace(stats, n_samples=valid)
    if stats.n_samples and stats.total_weight <= 0:
        raise ValueError(
            f"sample_weight is zero on every row that counts ({stats.n_samples} rows without "
            "NaN or infinity): nothing is left to fit."
        )
    return stats


def per_call(value, n: int) -> list:
    """``value`` for each of ``n`` calls: a list as it is, else repeated."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def summed_statistics(
    X: da.Array, kernel: Callable, calls: list[tuple], centers: list[np.ndarray],
    covariance_type: str | list[str], missing: str = "raise", weights: da.Array | None = None,
    n_worst: int | list[int] = 0, options: dict | None = None,
) -> list[SufficientStatistics]:
    """``kernel(block, *args)`` for each ``args`` in ``calls``, summed over the
    chunks of ``X`` in one ``compute``: the statistics of each, centred on the
    matching ``centers`` and checked for non-finite rows. ``weights``: sample
    weights (see :func:`reduce_chunks`). ``n_worst``: the kernel also gives each
    chunk's ``n_worst`` worst-explained rows, and the statistics carry the
    ``n_worst`` worst of all (:attr:`SufficientStatistics.worst`).
    ``covariance_type`` and ``n_worst`` are one for all the calls, or a list of
    one per call: models of other types and sizes (a search grid) share the pass.
    ``options``: more keyword arguments of the kernel, the same for every call.

    Every chunk is read once and handed to all the calls (their tasks share the
    chunk's key), so several parameter sets cost one read of the data, not one each.
    """
    types = per_call(covariance_type, len(calls))
    worsts = per_call(n_worst, len(calls))
    totals = [
        reduce_chunks(X, kernel, *args, weights=weights, keep=w * (1 + c.shape[1]),
                      size=StatsLayout(*c.shape, t).size, **kernel_options(missing),
                      **(options or {}))
        for args, c, t, w in zip(calls, centers, types, worsts)
    ]
    out = []
    for total, c, t, w in zip(compute(*totals, reads=X), centers, types, worsts):
        vector, worst = total if w else (total, None)
        stats = SufficientStatistics.from_vector(vector, c, t)
        if worst is not None:
            stats = replace(stats, worst=merge_worst(worst.reshape(-1, 1 + c.shape[1]), w))
        out.append(check_finite(stats, missing))
    return out


def pass_statistics_many(X, kernel, centers, covariance_type, *extra, missing="raise",
                         sample_weight=None):
    """The statistics of ``kernel(block, c, t, *extra)`` for each set of ``centers``
    ``c`` and its covariance type ``t`` (``covariance_type``: one for all, or one per
    set), in one pass over ``X`` (see :func:`summed_statistics`)."""
    types = per_call(covariance_type, len(centers))
    calls = [(c, t, *extra) for c, t in zip(centers, types)]
    return summed_statistics(X, kernel, calls, centers, types, missing,
                             weights=sample_weight)


def split_scores(X: da.Array, params: list[GMMParams], weights: da.Array | None,
                 missing: str = "raise") -> np.ndarray:
    """The log-likelihood of ``X`` under each of ``params``, summed under each column of
    ``weights`` ((n, m), chunked like the rows; None: m = 1, every row weighs 1), in
    one pass for all: (len(params), 2, m), ``[:, 0]`` the sums, ``[:, 1]`` the total
    weights of the rows counted (see :func:`row_kernels.chunk_split_scores`)."""
    m = 1 if weights is None else weights.shape[1]
    totals = [reduce_chunks(X, row_kernels.chunk_split_scores, *p.kernel_args, size=2 * m,
                            weights=weights, **kernel_options(missing)) for p in params]
    return np.stack([np.asarray(t).reshape(2, m) for t in compute(*totals, reads=X)])


def finite_rows(rows: np.ndarray, missing: str, weights=None):
    """The rows without NaN/inf (and their ``weights``, if given); an error if there
    are others and ``missing`` is 'raise'. With 'marginalize', the NaN of rows
    that have an observed feature are filled with the means of their features
    over these rows (a start for the initialisations, which see a sample)."""
    if missing == "marginalize":
        observed = ~np.isnan(rows).all(axis=1)
        rows = rows[observed]
        weights = None if weights is None else weights[observed]
        if np.isnan(rows).any():
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a feature missing everywhere
                fill = np.nan_to_num(np.nanmean(rows, axis=0))
            rows = np.where(np.isnan(rows), fill, rows)
    ok = np.isfinite(rows).all(axis=1)
    if not ok.all() and missing == "raise":
        raise ValueError(f"Input X contains NaN or infinity. {_WAYS_OUT}")
    if weights is None:
        return rows if ok.all() else rows[ok]
    return (rows, weights) if ok.all() else (rows[ok], weights[ok])


#: kind of per-row result: (chunk kernel, real-valued, one column per component)
_PER_ROW = {
    "labels": (row_kernels.chunk_labels, False, False),
    "proba": (row_kernels.chunk_responsibilities, True, True),
    "score_samples": (row_kernels.chunk_score_samples, True, False),
    "impute": (row_kernels.chunk_impute, True, False),
}


def map_rows(X: da.Array, kind: str, params: GMMParams, dtype, missing: str = "raise") -> da.Array:
    """A lazy per-row result of ``kind`` (labels, proba, score_samples, impute) under
    ``params``: (n,) or (n, K) or (n, D). The kernels compute in float64; real
    results are cast to ``dtype`` (labels are int64). With ``missing='marginalize'``
    rows with NaN get their results from their observed features."""
    kernel, real, per_component = _PER_ROW[kind]
    computed = np.dtype(np.float64) if real else np.dtype(np.int64)
    args = [dask.delayed(a, pure=True) if isinstance(a, np.ndarray) else a
            for a in params.kernel_args]
    if kind == "impute":
        return X.map_blocks(kernel, *args, dtype=X.dtype, meta=np.empty((0, 0), dtype=X.dtype))
    options = kernel_options(missing)
    if per_component:
        out = X.map_blocks(kernel, *args, chunks=(X.chunks[0], (params.n_components,)),
                           dtype=computed, meta=np.empty((0, 0), dtype=computed), **options)
    else:
        out = X.map_blocks(kernel, *args, drop_axis=1, dtype=computed,
                           meta=np.empty((0,), dtype=computed), **options)
    if real and np.dtype(dtype) != computed:
        out = out.astype(dtype)
    return out
