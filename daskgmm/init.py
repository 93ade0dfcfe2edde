"""Initial mixture parameters over a Dask array of rows.

scikit-learn's methods, made to work on data that stays on the workers:

* ``'kmeans'``: k-means on a uniform sample of rows (all rows when the data is
  small, so small data gets scikit-learn's own initialisation), then one pass
  assigning every row to its nearest centre and summing the statistics.
* ``'k-means++'`` / ``'random_from_data'``: centres are single data rows (from a
  sample for k-means++), each a component of weight ``1/n`` and covariance
  ``reg_covar * I``, as in scikit-learn.
* ``'random'``: random responsibilities for every row, drawn from a counter-based
  generator so they do not depend on the chunking; one pass.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from . import kernels
from .em import check_finite, compute, reduce_chunks
from .params import GMMParams, SufficientStatistics, params_from_statistics

__all__ = ["INIT_METHODS", "initial_parameters", "sample_rows"]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

#: Rows that the client-side k-means of ``'kmeans'`` and ``'k-means++'`` look at.
SAMPLE_SIZE = 100_000


def sample_rows(X: da.Array, size: int, random_state: np.random.RandomState) -> np.ndarray:
    """A uniform sample of ``size`` rows (all rows, in order, if there are fewer)."""
    n = X.shape[0]
    if n <= size:
        (rows,) = compute(X)
        return np.asarray(rows)
    idx = np.sort(random_state.choice(n, size=size, replace=False))
    (rows,) = compute(X[idx])
    return np.asarray(rows)


def _check_rows_finite(rows: np.ndarray) -> None:
    if not np.isfinite(rows).all():
        raise ValueError("Input X contains NaN or infinity.")


def _from_points(points, n_samples, covariance_type, reg_covar, eps):
    """One component per data row: N_k = 1, mean = the row, covariance = reg_covar * I."""
    points = np.asarray(points, dtype=np.float64)
    k, d = points.shape
    layout = kernels.StatsLayout(k, d, covariance_type)
    vec = np.zeros(layout.size)
    vec[1] = n_samples
    layout.split(vec)["nk"][:] = 1.0
    stats = SufficientStatistics.from_vector(vec, points, covariance_type)
    return params_from_statistics(
        stats, reg_covar, covariance_type, eps=eps, normalise_weights=False
    )


def _pass_statistics(X, kernel, centers, covariance_type, *extra, **kwargs):
    layout = kernels.StatsLayout(*centers.shape, covariance_type)
    total = reduce_chunks(X, kernel, centers, covariance_type, *extra, size=layout.size, **kwargs)
    (vec,) = compute(total)
    stats = SufficientStatistics.from_vector(vec, centers, covariance_type)
    check_finite(stats)
    return stats


def params_from_centers(X, centers, covariance_type, reg_covar, eps) -> GMMParams:
    """Hard-assign every row to its nearest centre (one pass) and estimate parameters."""
    stats = _pass_statistics(X, kernels.chunk_assignment_statistics, centers, covariance_type)
    return params_from_statistics(
        stats, reg_covar, covariance_type, eps=eps, normalise_weights=False
    )


def initial_parameters(
    X: da.Array,
    n_components: int,
    covariance_type: str,
    method: str,
    random_state: np.random.RandomState,
    *,
    reg_covar: float,
    eps: float,
) -> GMMParams:
    """Initial parameters by ``method`` (one of :data:`INIT_METHODS`)."""
    n = X.shape[0]
    if method == "kmeans":
        sample = sample_rows(X, SAMPLE_SIZE, random_state)
        _check_rows_finite(sample)
        km = KMeans(n_clusters=n_components, n_init=1, random_state=random_state).fit(sample)
        return params_from_centers(X, km.cluster_centers_, covariance_type, reg_covar, eps)
    if method == "k-means++":
        sample = sample_rows(X, SAMPLE_SIZE, random_state)
        _check_rows_finite(sample)
        centers, _ = kmeans_plusplus(sample, n_components, random_state=random_state)
        return _from_points(centers, n, covariance_type, reg_covar, eps)
    if method == "random_from_data":
        drawn = random_state.choice(n, size=n_components, replace=False)
        rows = np.sort(drawn)
        (points,) = compute(X[rows])
        points = np.asarray(points)[np.searchsorted(rows, drawn)]  # component j <- drawn[j]
        _check_rows_finite(points)
        return _from_points(points, n, covariance_type, reg_covar, eps)
    if method == "random":
        (first,) = compute(X[:1])
        _check_rows_finite(first)
        centers = np.repeat(np.asarray(first, dtype=np.float64), n_components, axis=0)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        stats = _pass_statistics(
            X, kernels.chunk_random_statistics, centers, covariance_type, seed
        )
        return params_from_statistics(
            stats, reg_covar, covariance_type, eps=eps, normalise_weights=False
        )
    raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}.")
