"""Map a chunk kernel over the row chunks of a Dask array, tree-reduce, one ``compute``.

Shared by the initialisations, the EM iterations and scoring: every pass over
the data goes through here, so that BLAS threads, graph keys, the reduction
order and the check for non-finite rows are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import dask
import dask.array as da
import numpy as np
from threadpoolctl import threadpool_limits

from .params import StatsLayout, SufficientStatistics

__all__ = ["SPLIT_EVERY", "check_finite", "compute", "reduce_chunks", "summed_statistics"]

#: Fan-in of the tree reduction of per-chunk statistics.
SPLIT_EVERY = 8


def compute(*collections):
    """``dask.compute`` with BLAS limited to one thread in this process.

    Chunk tasks already run in parallel (threads or workers); letting BLAS start
    its own threads inside each would oversubscribe the cores. Worker processes
    of ``distributed`` get the same limit from their nanny's environment.
    """
    with threadpool_limits(limits=1):
        return dask.compute(*collections)


def reduce_chunks(X: da.Array, kernel: Callable, *args, size: int, **kwargs) -> da.Array:
    """Apply ``kernel`` to every row chunk of ``X`` and tree-sum the (1, size) rows.

    Array arguments are wrapped as single graph keys (``dask.delayed``); the sum
    has a fixed order (the graph's), so results are bitwise reproducible on any
    scheduler.
    """
    args = [dask.delayed(a, pure=True) if isinstance(a, np.ndarray) else a for a in args]
    per_chunk = X.map_blocks(
        kernel,
        *args,
        chunks=((1,) * X.numblocks[0], (size,)),
        dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
        **kwargs,
    )
    return per_chunk.sum(axis=0, split_every=SPLIT_EVERY)


def check_finite(stats: SufficientStatistics, allow_missing: bool = False) -> SufficientStatistics:
    """Statistics over the rows that count: refuse non-finite rows, or leave them out.

    With ``allow_missing`` the rows with a NaN (or infinite) value are left out of
    the fit, and ``n_samples`` counts the others.
    """
    if not stats.n_nonfinite:
        return stats
    if not allow_missing:
        raise ValueError(
            f"Input X contains NaN or infinity: {stats.n_nonfinite} of "
            f"{stats.n_samples} rows have a non-finite value (or values so large that "
            "their log-likelihood overflows). Pass dropna=True to leave such rows out."
        )
    valid = stats.n_samples - stats.n_nonfinite
    if valid == 0:
        raise ValueError(f"Input X has no row without NaN or infinity ({stats.n_samples} rows).")
    return replace(stats, n_samples=valid)


def summed_statistics(
    X: da.Array, kernel: Callable, calls: list[tuple], centers: list[np.ndarray],
    covariance_type: str, allow_missing: bool = False,
) -> list[SufficientStatistics]:
    """``kernel(block, *args)`` for each ``args`` in ``calls``, summed over the
    chunks of ``X`` in one ``compute``: the statistics of each, centred on the
    matching ``centers`` and checked for non-finite rows.

    Every chunk is read once and handed to all the calls (their tasks share the
    chunk's key), so several parameter sets cost one read of the data, not one each.
    """
    totals = [
        reduce_chunks(X, kernel, *args,
                      size=StatsLayout(*c.shape, covariance_type).size)
        for args, c in zip(calls, centers)
    ]
    return [
        check_finite(SufficientStatistics.from_vector(v, c, covariance_type), allow_missing)
        for v, c in zip(compute(*totals), centers)
    ]
