"""k-means|| over the row chunks of a Dask array (Bahmani et al. 2012), in lockstep
for several random states, and distributed Lloyd passes.

The per-chunk work is in :mod:`daskgmm.kmeans`; this module draws, passes and
reduces. Every draw depends on the random state and global row indices only, so
the centres do not depend on the chunking or the scheduler. Rows already in
memory (a NumPy array: the client's sample of the 'kmeans' start) are one chunk
whose kernels are called directly, with no graph: the same centres, bitwise, as
the rows as a one-chunk Dask array, without the graphs and computes of its seven
passes (0.035 s against 0.018 s on 20,000 x 16 rows, k=8).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from . import kmeans
from .passes import finite_rows, kernel_options, pass_statistics_many, per_call, reduce_chunks
from .reads import compute, single_threaded

__all__ = [
    "KMeansParallelResult",
    "kmeans_parallel",
    "kmeans_parallel_candidates",
    "kmeans_parallel_many",
    "lloyd",
    "recluster",
]

logger = logging.getLogger(__name__)

#: Seedings of the client-side weighted k-means on the k-means|| candidates (no data passes).
N_INIT_CANDIDATES = 10


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


def _chunk_sum(block):
    return np.sum(block, keepdims=True, dtype=np.float64)


def _chunk_totals(sample_weight) -> np.ndarray:
    """The sum of the sample weights of each row chunk (a read of the weights only)."""
    if isinstance(sample_weight, np.ndarray):
        return _chunk_sum(sample_weight).ravel()
    totals = sample_weight.map_blocks(
        _chunk_sum, chunks=((1,) * sample_weight.numblocks[0], (1,)), dtype=np.float64,
    )
    (totals,) = compute(totals)
    return np.asarray(totals).ravel()


def _weight_block(sample_weight, i: int) -> tuple[np.ndarray, int]:
    """The sample weights of row chunk ``i`` and the index of its first row."""
    if isinstance(sample_weight, np.ndarray):
        return sample_weight, 0
    (w,) = compute(sample_weight.blocks[i])
    return w, int(sum(sample_weight.chunks[0][:i]))


def _weighted_row_index(sample_weight, totals, random_state) -> int:
    """A row index drawn with probability proportional to its sample weight: the
    chunk from the chunk totals, then the row from that chunk's weights."""
    ends = np.cumsum(totals)
    u = random_state.uniform(0.0, ends[-1])
    i = min(int(np.searchsorted(ends, u, side="right")), len(totals) - 1)
    w, row0 = _weight_block(sample_weight, i)
    within = np.cumsum(np.asarray(w, dtype=np.float64).ravel())
    j = min(int(np.searchsorted(within, u - (ends[i] - totals[i]), side="right")), len(within) - 1)
    return row0 + j


def _first_center(X: da.Array | np.ndarray, random_state, missing: str, sample_weight=None,
                  totals=None) -> np.ndarray:
    """A row drawn uniformly, or in proportion to its sample weight (``totals``: the
    weights' chunk totals), without NaN: reads only the chunk that holds it. With
    ``missing='marginalize'``, if 100 draws all have a NaN, the first with an
    observed feature, its NaN filled with the means of the draws' features."""
    drawn = []
    for _ in range(100):
        if sample_weight is None:
            i = int(random_state.randint(X.shape[0]))
        else:
            i = _weighted_row_index(sample_weight, totals, random_state)
        (row,) = (X[i : i + 1],) if isinstance(X, np.ndarray) else compute(X[i : i + 1])
        row = np.asarray(row, dtype=np.float64)
        if np.isfinite(row).all():
            return row
        finite_rows(row, missing)  # raises unless NaN are allowed
        drawn.append(row)
    if missing == "marginalize":
        filled = finite_rows(np.concatenate(drawn), missing)
        if len(filled):
            return filled[:1]
    raise ValueError("could not draw a row without NaN from X in 100 tries")


def kmeans_parallel(
    X: da.Array | np.ndarray,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    n_rounds: int = 5,
    oversampling: float = 2.0,
    max_rounds: int = 20,
    missing: str = "raise",
    sample_weight: da.Array | None = None,
) -> KMeansParallelResult:
    """k-means|| (Bahmani et al. 2012, "Scalable K-Means++") over the chunks of ``X``
    (a NumPy array is one chunk, see the module docstring).

    1. The first centre is a uniformly drawn row (in proportion to its weight).
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
    Rows with NaN are an error (``missing='raise'``), left out (``'drop'``), or
    measured over their observed features (``'marginalize'``, see
    :mod:`daskgmm.kmeans`).
    ``sample_weight`` ((n, 1), chunked like the rows; NumPy with NumPy rows) makes
    a row of weight w count as w rows: in the first draw, the sampling and the
    candidate weights.
    """
    return kmeans_parallel_many(
        X, n_clusters, [random_state], n_rounds=n_rounds, oversampling=oversampling,
        max_rounds=max_rounds, missing=missing, sample_weight=sample_weight,
    )[0]


def kmeans_parallel_many(
    X: da.Array | np.ndarray, n_clusters: int, random_states: list[np.random.RandomState], **options
) -> list[KMeansParallelResult]:
    """:func:`kmeans_parallel` once per random state (``options`` as there), in
    lockstep: each round is one pass over the data for all of them, and each ends
    exactly where it would alone."""
    results = kmeans_parallel_candidates(X, n_clusters, random_states, **options)
    for result, rs in zip(results, random_states):
        result.centers = recluster(result, n_clusters, rs)
    return results


def kmeans_parallel_candidates(
    X: da.Array | np.ndarray,
    n_clusters: int,
    random_states: list[np.random.RandomState],
    *,
    n_rounds: int = 5,
    oversampling: float = 2.0,
    max_rounds: int = 20,
    missing: str = "raise",
    sample_weight: da.Array | None = None,
) -> list[KMeansParallelResult]:
    """Steps 1-3 of :func:`kmeans_parallel` for each random state, in lockstep: the
    weighted candidates, which :func:`recluster` reduces to centres (for any
    number of clusters up to ``n_clusters``, which the rounds oversample for)."""
    ell = oversampling * n_clusters
    seeds = [int(rs.randint(np.iinfo(np.int32).max)) for rs in random_states]
    totals = None if sample_weight is None else _chunk_totals(sample_weight)
    results = [
        KMeansParallelResult(
            _first_center(X, rs, missing, sample_weight, totals), np.empty(0), np.empty(0)
        )
        for rs in random_states
    ]
    candidates = [r.centers for r in results]
    active = list(range(len(results)))
    for r in range(max_rounds):
        active = [j for j in active if r < n_rounds or _distinct_rows(candidates[j]) < n_clusters]
        if not active:
            break
        rounds = _sampling_round(X, [candidates[j] for j in active], ell,
                                 [seeds[j] for j in active], r, sample_weight, missing)
        for j, parts in zip(active, rounds):
            results[j].passes += 1
            phi = float(np.sum([p[0] for p in parts]))
            bad = sum(p[1] for p in parts)
            if bad and missing != "drop":
                what = "infinity" if missing == "marginalize" else "NaN or infinity"
                raise ValueError(
                    f"Input X contains {what}: {bad} of {X.shape[0]} rows have a non-finite value. "
                    + ("missing='marginalize' integrates out NaN only." if missing == "marginalize"
                       else "Pass missing='drop' to leave such rows out, or missing='marginalize' "
                       "to integrate their missing values out.")
                )
            results[j].phi.append(phi)
            rows = np.concatenate([p[2] for p in parts])
            d2 = np.concatenate([p[3] for p in parts])
            u = np.concatenate([p[4] for p in parts])
            chosen = rows[u * phi < ell * d2]
            logger.info("k-means|| round %d: cost %.6g, %d new candidates", r + 1, phi, len(chosen))
            candidates[j] = np.concatenate([candidates[j], chosen])
        active = [j for j in active if results[j].phi[-1] != 0.0]
    if isinstance(X, np.ndarray):  # one chunk: its row is the sum (see reduce_chunks)
        all_weights = [kmeans.chunk_nearest_counts(X, c, sample_weight=sample_weight,
                                                   **kernel_options(missing))[0]
                       for c in candidates]
    else:
        all_weights = compute(*[
            reduce_chunks(X, kmeans.chunk_nearest_counts, c, size=len(c), weights=sample_weight,
                          **kernel_options(missing))
            for c in candidates
        ], reads=X)
    for result, c, weights in zip(results, candidates, all_weights):
        result.passes += 1
        result.candidates, result.candidate_weights = c, weights
    return results


def _sampling_round(X, candidates, ell, seeds, round_, sample_weight, missing) -> list:
    """Round ``round_`` of k-means|| for each set of ``candidates`` (its seed in
    ``seeds``), one pass over ``X`` for all: per set, the chunks' results of
    :func:`kmeans.chunk_kmeans_parallel_round`."""
    options = kernel_options(missing)
    if isinstance(X, np.ndarray):
        where = [{"array-location": [(0, X.shape[0])]}]
        return [[kmeans.chunk_kmeans_parallel_round(X, c, ell, seed, round_,
                                                    sample_weight=sample_weight,
                                                    block_info=where, **options)]
                for c, seed in zip(candidates, seeds)]
    blocks = X.to_delayed().ravel()
    weight_blocks = (
        [None] * len(blocks) if sample_weight is None else sample_weight.to_delayed().ravel()
    )
    offsets = np.cumsum((0,) + X.chunks[0])
    (rounds,) = compute([
        [
            dask.delayed(kmeans.chunk_kmeans_parallel_round, pure=True)(
                b,
                dask.delayed(c, pure=True),
                ell,
                seed,
                round_,
                sample_weight=wb,
                block_info=[{"array-location": [(int(offsets[i]), int(offsets[i + 1]))]}],
                **options,
            )
            for i, (b, wb) in enumerate(zip(blocks, weight_blocks))
        ]
        for c, seed in zip(candidates, seeds)
    ], reads=X)
    return rounds


def recluster(result: KMeansParallelResult, n_clusters: int,
              random_state: np.random.RandomState) -> np.ndarray:
    """Step 4 of :func:`kmeans_parallel` on the client (no data read): ``n_clusters``
    centres from the weighted candidates of ``result``, by weighted k-means++
    seeding and Lloyd (best of :data:`N_INIT_CANDIDATES`) drawn from ``random_state``.
    Warns (scikit-learn's ``ConvergenceWarning``) where the candidates hold fewer
    distinct rows than ``n_clusters``: centres are then duplicated."""
    c, weights = result.candidates, result.candidate_weights
    n_distinct = _distinct_rows(c)
    if n_distinct < n_clusters:
        # scikit-learn's KMeans warns and goes on with duplicated centres; so do we
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than n_clusters "
            f"({n_clusters}). Possibly due to duplicate points in X: some components "
            "start empty.",
            ConvergenceWarning,
            stacklevel=5,
        )
    keep = weights > 0
    if np.count_nonzero(keep) < n_clusters:
        # fewer candidates than clusters: every candidate is a centre, the
        # heaviest repeated (those components start empty), as KMeans would
        order = np.argsort(-weights[keep], kind="stable")
        return c[keep][np.resize(order, n_clusters)]
    with warnings.catch_warnings(), single_threaded():
        # duplicates among candidates are expected and harmless here
        warnings.simplefilter("ignore", category=UserWarning)
        km = KMeans(n_clusters, init="k-means++", n_init=N_INIT_CANDIDATES,
                    random_state=random_state)
        km.fit(c[keep], sample_weight=weights[keep])
    return km.cluster_centers_


def lloyd(X, centers, n_iter, covariance_type, missing, sample_weight=None):
    """``n_iter`` distributed Lloyd steps from each set of ``centers``, then the
    statistics of the final assignments, one pass per step for all sets.

    The statistics of the last pass give both the last Lloyd update and the
    mixture parameters (``n_iter + 1`` passes in all). ``covariance_type``: one for
    all sets, or one per set. A Lloyd update needs ``N_k`` and ``s_k`` only, which
    do not depend on the covariance type: the steps before the last take the
    cheapest second moments ('spherical'), and sets given the same centres array
    (one number of clusters of a search, for each covariance type) share them.
    """
    types = per_call(covariance_type, len(centers))
    first: dict[int, int] = {}
    shared = [first.setdefault(id(c), j) for j, c in enumerate(centers)]
    distinct = sorted(first.values())

    def step(sets, types):
        return pass_statistics_many(X, kmeans.chunk_assignment_statistics, sets, types,
                                    missing=missing, sample_weight=sample_weight)

    current = {j: centers[j] for j in distinct}
    for _ in range(n_iter):
        stats = step([current[j] for j in distinct], "spherical")
        for j, st in zip(distinct, stats):
            c = current[j].copy()
            nonempty = st.nk > 0
            c[nonempty] += st.sk[nonempty] / st.nk[nonempty, None]
            current[j] = c
    return step([current[j] for j in shared], types)
