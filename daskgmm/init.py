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
* ``'k-means||'``: scalable k-means++ (Bahmani et al. 2012) over all rows, see
  :func:`kmeans_parallel`, then the parameters of the final hard assignment.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning

from . import kernels, kmeans
from .covariance import COVARIANCE
from .params import GMMParams, SufficientStatistics, params_from_statistics
from .passes import compute, reduce_chunks, summed_statistics

__all__ = [
    "INIT_METHODS",
    "KMeansParallelResult",
    "finite_rows",
    "initial_parameters",
    "initial_parameters_given",
    "initial_parameters_many",
    "kmeans_parallel",
    "kmeans_parallel_many",
    "pass_statistics",
    "sample_rows",
]

logger = logging.getLogger(__name__)

INIT_METHODS = ("k-means||", "kmeans", "k-means++", "random", "random_from_data")

#: Rows that the client-side k-means of ``'kmeans'`` and ``'k-means++'`` look at.
SAMPLE_SIZE = 100_000

#: Seedings of the client-side weighted k-means on the k-means|| candidates (no data passes).
N_INIT_CANDIDATES = 10


def sample_rows(X: da.Array, size: int, random_state: np.random.RandomState) -> np.ndarray:
    """A uniform sample of ``size`` rows (all rows, in order, if there are fewer)."""
    n = X.shape[0]
    if n <= size:
        (rows,) = compute(X)
        return np.asarray(rows)
    idx = np.sort(random_state.choice(n, size=size, replace=False))
    (rows,) = compute(X[idx])
    return np.asarray(rows)


def finite_rows(rows: np.ndarray, allow_missing: bool) -> np.ndarray:
    """The rows without NaN/inf; an error if there are others and that is not allowed."""
    ok = np.isfinite(rows).all(axis=1)
    if ok.all():
        return rows
    if not allow_missing:
        raise ValueError(
            "Input X contains NaN or infinity. Pass dropna=True to leave such rows out."
        )
    return rows[ok]


def _from_points(points, n_samples, covariance_type, reg_covar, eps):
    """One component per data row: N_k = 1, mean = the row, covariance = reg_covar * I."""
    stats = SufficientStatistics.of_points(points, n_samples, covariance_type)
    return params_from_statistics(
        stats, reg_covar, covariance_type, eps=eps, normalise_weights=False
    )


def pass_statistics(X, kernel, centers, covariance_type, *extra, allow_missing=False):
    """One pass of a statistics kernel over ``X``, checked for non-finite rows."""
    return pass_statistics_many(X, kernel, [centers], covariance_type, *extra, allow_missing=allow_missing)[0]


def pass_statistics_many(X, kernel, centers, covariance_type, *extra, allow_missing=False):
    """The statistics of ``kernel`` for each set of ``centers``, in one pass over ``X``."""
    calls = [(c, covariance_type, *extra) for c in centers]
    return summed_statistics(X, kernel, calls, centers, covariance_type, allow_missing)


@dataclass
class KMeansParallelResult:
    """What k-means|| found, and what it cost."""

    centers: np.ndarray
    candidates: np.ndarray
    candidate_weights: np.ndarray
    phi: list[float] = field(default_factory=list)  # cost before each round
    passes: int = 0  # full passes over the data


def _distinct_rows(a: np.ndarray) -> int:
    return len(np.unique(a, axis=0)) if len(a) else 0


def _first_center(X: da.Array, random_state, allow_missing: bool) -> np.ndarray:
    """A uniformly drawn row (without NaN): reads only the chunk that holds it."""
    for _ in range(100):
        i = int(random_state.randint(X.shape[0]))
        (row,) = compute(X[i : i + 1])
        row = finite_rows(np.asarray(row, dtype=np.float64), allow_missing)
        if len(row):
            return row
    raise ValueError("could not draw a row without NaN from X in 100 tries")


def kmeans_parallel(
    X: da.Array,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    n_rounds: int = 5,
    oversampling: float = 2.0,
    max_rounds: int = 20,
    allow_missing: bool = False,
) -> KMeansParallelResult:
    """k-means|| (Bahmani et al. 2012, "Scalable K-Means++") over the chunks of ``X``.

    1. The first centre is a uniformly drawn row.
    2. ``n_rounds`` rounds, each one pass over the data: every row is kept
       independently with probability ``l * d^2(x, C) / phi(C)``,
       ``l = oversampling * n_clusters``; the cost ``phi`` and the draws come from
       the same pass (see :func:`kmeans.chunk_kmeans_parallel_round`). More
       rounds (up to ``max_rounds``) are run while there are fewer distinct
       candidates than clusters and the cost is not zero.
    3. One pass weights each candidate by the number of rows nearest to it.
    4. On the client, weighted k-means++ seeding plus weighted Lloyd on the
       candidates reduce them to ``n_clusters`` centres.

    Draws depend on ``random_state`` and on global row indices only: the same
    data and seed give the same centres whatever the chunking or scheduler.
    Warns (scikit-learn's ``ConvergenceWarning``, as its ``KMeans`` does) when the
    data has fewer distinct rows than ``n_clusters``; centres are then duplicated.
    Rows with NaN are an error, or left out with ``allow_missing``.
    """
    return kmeans_parallel_many(
        X, n_clusters, [random_state], n_rounds=n_rounds, oversampling=oversampling,
        max_rounds=max_rounds, allow_missing=allow_missing,
    )[0]


def kmeans_parallel_many(
    X: da.Array,
    n_clusters: int,
    random_states: list[np.random.RandomState],
    *,
    n_rounds: int = 5,
    oversampling: float = 2.0,
    max_rounds: int = 20,
    allow_missing: bool = False,
) -> list[KMeansParallelResult]:
    """:func:`kmeans_parallel` once per random state, in lockstep: each round is
    one pass over the data for all of them, and each ends exactly where it would
    alone."""
    ell = oversampling * n_clusters
    seeds = [int(rs.randint(np.iinfo(np.int32).max)) for rs in random_states]
    results = [
        KMeansParallelResult(_first_center(X, rs, allow_missing), np.empty(0), np.empty(0))
        for rs in random_states
    ]
    candidates = [r.centers for r in results]
    blocks = X.to_delayed().ravel()
    offsets = np.cumsum((0,) + X.chunks[0])
    active = list(range(len(results)))
    for r in range(max_rounds):
        active = [j for j in active if r < n_rounds or _distinct_rows(candidates[j]) < n_clusters]
        if not active:
            break
        (rounds,) = compute([
            [
                dask.delayed(kmeans.chunk_kmeans_parallel_round, pure=True)(
                    b,
                    dask.delayed(candidates[j], pure=True),
                    ell,
                    seeds[j],
                    r,
                    block_info=[{"array-location": [(int(offsets[i]), int(offsets[i + 1]))]}],
                )
                for i, b in enumerate(blocks)
            ]
            for j in active
        ])
        for j, parts in zip(active, rounds):
            results[j].passes += 1
            phi = float(np.sum([p[0] for p in parts]))
            bad = sum(p[1] for p in parts)
            if bad and not allow_missing:
                raise ValueError(
                    f"Input X contains NaN or infinity: {bad} of {X.shape[0]} rows have a "
                    "non-finite value. Pass dropna=True to leave such rows out."
                )
            results[j].phi.append(phi)
            rows = np.concatenate([p[2] for p in parts])
            d2 = np.concatenate([p[3] for p in parts])
            u = np.concatenate([p[4] for p in parts])
            chosen = rows[u * phi < ell * d2]
            logger.info("k-means|| round %d: cost %.6g, %d new candidates", r + 1, phi, len(chosen))
            candidates[j] = np.concatenate([candidates[j], chosen])
        active = [j for j in active if results[j].phi[-1] != 0.0]
    for c in candidates:
        n_distinct = _distinct_rows(c)
        if n_distinct < n_clusters:
            # scikit-learn's KMeans warns and goes on with duplicated centres; so do we
            warnings.warn(
                f"Number of distinct clusters ({n_distinct}) found smaller than n_clusters "
                f"({n_clusters}). Possibly due to duplicate points in X: some components "
                "start empty.",
                ConvergenceWarning,
                stacklevel=4,
            )
    all_weights = compute(*[
        reduce_chunks(X, kmeans.chunk_nearest_counts, c, size=len(c)) for c in candidates
    ])
    for result, rs, c, weights in zip(results, random_states, candidates, all_weights):
        result.passes += 1
        keep = weights > 0
        if np.count_nonzero(keep) < n_clusters:
            # fewer candidates than clusters: every candidate is a centre, the
            # heaviest repeated (those components start empty), as KMeans would
            order = np.argsort(-weights[keep], kind="stable")
            result.centers = c[keep][np.resize(order, n_clusters)]
        else:
            with warnings.catch_warnings():
                # duplicates among candidates are expected and harmless here
                warnings.simplefilter("ignore", category=UserWarning)
                km = KMeans(n_clusters, init="k-means++", n_init=N_INIT_CANDIDATES, random_state=rs)
                km.fit(c[keep], sample_weight=weights[keep])
            result.centers = km.cluster_centers_
        result.candidates, result.candidate_weights = c, weights
    return results


def _lloyd(X, centers, n_iter, covariance_type, allow_missing):
    """``n_iter`` distributed Lloyd steps from each set of ``centers``, then the
    statistics of the final assignments, one pass per step for all sets.

    The statistics of the last pass give both the last Lloyd update and the
    mixture parameters (``n_iter + 1`` passes in all).
    """
    def step(centers):
        return pass_statistics_many(X, kmeans.chunk_assignment_statistics, centers,
                                    covariance_type, allow_missing=allow_missing)

    stats = step(centers)
    for _ in range(n_iter):
        centers = [c.copy() for c in centers]
        for c, st in zip(centers, stats):
            nonempty = st.nk > 0
            c[nonempty] += st.sk[nonempty] / st.nk[nonempty, None]
        stats = step(centers)
    return stats


def _params_of(stats, reg_covar, covariance_type, eps) -> GMMParams:
    """Initial parameters from the statistics of an assignment (weights ``N_k / n``,
    as scikit-learn's, not renormalised)."""
    return params_from_statistics(stats, reg_covar, covariance_type, eps=eps, normalise_weights=False)


def _kmeans_parallel_statistics(X, n_components, covariance_type, random_states, options,
                                allow_missing):
    """k-means|| from each random state, then Lloyd: the statistics of each final assignment."""
    opts = dict(options or {})
    lloyd_iter = opts.pop("lloyd_iter", 1)
    found = kmeans_parallel_many(X, n_components, random_states, allow_missing=allow_missing, **opts)
    return _lloyd(X, [f.centers for f in found], lloyd_iter, covariance_type, allow_missing)


def initial_parameters_many(
    X: da.Array,
    count: int,
    n_components: int,
    covariance_type: str,
    method: str,
    random_state: np.random.RandomState,
    **options,
) -> list[GMMParams]:
    """``count`` initialisations by ``method`` (``options`` as for :func:`initial_parameters`).

    With several, 'k-means||' runs them in lockstep, every pass over the data
    serving all of them: the first from ``random_state`` (as with one), the
    others each from its own generator seeded from it. The other methods draw them one after another from
    ``random_state``, as scikit-learn's loop does (a pass or less each).
    """
    if method != "k-means||" or count == 1:
        return [
            initial_parameters(X, n_components, covariance_type, method, random_state, **options)
            for _ in range(count)
        ]
    all_stats = _kmeans_parallel_statistics(
        X, n_components, covariance_type, _lockstep_states(random_state, count),
        options.get("kmeans_parallel_options"), options.get("allow_missing", False),
    )
    return [_params_of(st, options["reg_covar"], covariance_type, options["eps"]) for st in all_stats]


def _lockstep_states(random_state: np.random.RandomState, count: int) -> list:
    """Generators for ``count`` k-means|| runs drawn together: the first is
    ``random_state`` itself, so that the first initialisation of ``n_init > 1`` is
    the one that ``n_init=1`` draws (more initialisations never end worse); the
    others are seeded from its current state without advancing it."""
    key = random_state.get_state()[1]
    return [random_state] + [
        np.random.RandomState(np.random.MT19937(np.random.SeedSequence([*key.tolist(), j])))
        for j in range(1, count)
    ]


def initial_parameters_given(
    X: da.Array,
    count: int,
    given: tuple,
    n_components: int,
    covariance_type: str,
    method: str,
    random_state: np.random.RandomState,
    **options,
) -> list[GMMParams]:
    """``count`` sets of initial parameters: the user's ``given = (weights, means,
    precisions)`` where all three are given, else drawn by ``method`` (see
    :func:`initial_parameters_many`), with any given part replacing its draw."""
    cov = COVARIANCE[covariance_type]
    weights, means, precisions = given

    def with_given(p: GMMParams) -> GMMParams:
        w = p.weights if weights is None else weights
        m = p.means if means is None else means
        if precisions is None:
            return GMMParams(w, m, p.covariances, p.precisions_cholesky, covariance_type)
        pc = cov.precision_cholesky_from_precisions(precisions)
        return GMMParams.from_precisions_cholesky(w, m, pc, covariance_type)

    if weights is not None and means is not None and precisions is not None:
        pc = cov.precision_cholesky_from_precisions(precisions)
        return [GMMParams.from_precisions_cholesky(weights, means, pc, covariance_type)] * count
    drawn = initial_parameters_many(
        X, count, n_components, covariance_type, method, random_state, **options
    )
    return [with_given(p) for p in drawn]


def initial_parameters(
    X: da.Array,
    n_components: int,
    covariance_type: str,
    method: str,
    random_state: np.random.RandomState,
    *,
    reg_covar: float,
    eps: float,
    kmeans_parallel_options: dict | None = None,
    allow_missing: bool = False,
) -> GMMParams:
    """Initial parameters by ``method`` (one of :data:`INIT_METHODS`).

    ``kmeans_parallel_options`` (``n_rounds``, ``oversampling``, ``lloyd_iter``)
    tune ``'k-means||'``. With ``allow_missing``, rows with NaN are left out.
    """

    def from_stats(stats):
        return _params_of(stats, reg_covar, covariance_type, eps)

    def sample():
        rows = finite_rows(sample_rows(X, SAMPLE_SIZE, random_state), allow_missing)
        if len(rows) < n_components:
            raise ValueError(
                f"X has {len(rows)} rows without NaN in a sample, fewer than "
                f"n_components={n_components}"
            )
        return rows

    n = X.shape[0]
    if method == "k-means||":
        (stats,) = _kmeans_parallel_statistics(
            X, n_components, covariance_type, [random_state], kmeans_parallel_options, allow_missing
        )
        return from_stats(stats)
    if method == "kmeans":
        km = KMeans(n_clusters=n_components, n_init=1, random_state=random_state).fit(sample())
        kernel = kmeans.chunk_assignment_statistics
        return from_stats(
            pass_statistics(X, kernel, km.cluster_centers_, covariance_type, allow_missing=allow_missing)
        )
    if method == "k-means++":
        centers, _ = kmeans_plusplus(sample(), n_components, random_state=random_state)
        return _from_points(centers, n, covariance_type, reg_covar, eps)
    if method == "random_from_data":
        drawn = random_state.choice(n, size=n_components, replace=False)
        rows = np.sort(drawn)
        (points,) = compute(X[rows])
        points = np.asarray(points)[np.searchsorted(rows, drawn)]  # component j <- drawn[j]
        if not np.isfinite(points).all():
            if not allow_missing:
                finite_rows(points, False)  # raises
            pool = sample()
            points = pool[random_state.choice(len(pool), n_components, replace=False)]
        return _from_points(points, n, covariance_type, reg_covar, eps)
    if method == "random":
        (head,) = compute(X[: min(n, 1024)])  # a reference row to centre the statistics on
        centre = finite_rows(np.asarray(head), allow_missing)[:1]
        if not len(centre):
            centre = sample()[:1]
        centers = np.repeat(np.asarray(centre, dtype=np.float64), n_components, axis=0)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        return from_stats(
            pass_statistics(
                X, kernels.chunk_random_statistics, centers, covariance_type, seed,
                allow_missing=allow_missing,
            )
        )
    raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}.")
