"""The distributed EM loop: map a chunk kernel, tree-reduce, M-step on the client.

One iteration is one ``compute`` of a small result (the summed statistics) and
reads each chunk of the data once. The parameters go into the graph as a single
key, so every chunk task shares them instead of each carrying a copy.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import dask
import dask.array as da
import numpy as np
from threadpoolctl import threadpool_limits

from . import kernels
from .params import GMMParams, SufficientStatistics, m_step

__all__ = ["EMResult", "IterationInfo", "compute", "reduce_chunks", "expectation", "run_em"]

logger = logging.getLogger(__name__)

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


def expectation(
    X: da.Array, params: GMMParams, allow_missing: bool = False
) -> SufficientStatistics:
    """One E-step pass: the summed sufficient statistics under ``params``."""
    layout = kernels.StatsLayout(params.n_components, params.n_features, params.covariance_type)
    total = reduce_chunks(X, kernels.chunk_statistics, *params.kernel_args, size=layout.size)
    (vec,) = compute(total)
    stats = SufficientStatistics.from_vector(vec, params.means, params.covariance_type)
    return check_finite(stats, allow_missing)


@dataclass(frozen=True)
class IterationInfo:
    """What an iteration reports to callbacks (progress, checkpoints)."""

    n_iter: int
    lower_bound: float
    change: float
    seconds: float
    params: GMMParams  # the parameters after this iteration's M-step
    converged: bool


@dataclass(frozen=True)
class EMResult:
    params: GMMParams
    lower_bounds: list[float]
    n_iter: int
    converged: bool

    @property
    def lower_bound(self) -> float:
        return self.lower_bounds[-1] if self.lower_bounds else -math.inf


def run_em(
    X: da.Array,
    params: GMMParams,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    eps: float,
    lower_bound: float = -math.inf,
    lower_bounds: list[float] | None = None,
    start_iter: int = 0,
    callback: Callable[[IterationInfo], None] | None = None,
    allow_missing: bool = False,
) -> EMResult:
    """EM from ``params`` until ``|change| < tol`` or ``max_iter`` iterations.

    The lower bound of iteration t is the mean log-likelihood under the
    parameters of that iteration's E-step, exactly as scikit-learn defines it.
    ``start_iter``, ``lower_bound`` and ``lower_bounds`` continue an earlier run.
    With ``allow_missing``, rows with NaN are left out (see :func:`check_finite`).
    """
    lower_bounds = list(lower_bounds or [])
    converged = False
    n_iter = start_iter
    for n_iter in range(start_iter + 1, max_iter + 1):
        t0 = time.perf_counter()
        previous_bound = lower_bound
        stats = expectation(X, params, allow_missing)
        lower_bound = stats.log_lik_sum / stats.n_samples
        params = m_step(stats, params, reg_covar, eps=eps)
        lower_bounds.append(lower_bound)
        change = lower_bound - previous_bound
        converged = abs(change) < tol
        seconds = time.perf_counter() - t0
        logger.info(
            "iteration %d  lower bound %.6f  change %.3g  %.3f s",
            n_iter,
            lower_bound,
            change,
            seconds,
        )
        if callback is not None:
            callback(IterationInfo(n_iter, lower_bound, change, seconds, params, converged))
        if converged:
            break
    return EMResult(params, lower_bounds, n_iter, converged)
