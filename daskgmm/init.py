"""Initial mixture parameters over a Dask array of rows.

scikit-learn's methods, made to work on data that stays on the workers:

* ``'kmeans'`` (scikit-learn's default): k-means on a uniform sample of
  rows, then one pass assigning every row to its nearest centre and summing the
  statistics. On data of at most :func:`~daskgmm.sampling.client_rows` rows
  the sample is every row and the k-means is scikit-learn's own (k-means++
  seeding, Lloyd). On more rows the sample has
  :func:`~daskgmm.sampling.sample_size` rows (2,500 a component, 20,000 to
  100,000) and two k-means run on it and the one of lower inertia is kept:
  scikit-learn's, and one seeded by k-means|| over the sample, which finds many
  clusters of unequal sizes where a single k-means++ seeding often merges two.
* ``'k-means++'`` / ``'random_from_data'``: centres are single data rows (from a
  sample for k-means++), each a component of weight ``1/n`` and covariance
  ``reg_covar * I``, as in scikit-learn.
* ``'random'``: random responsibilities for every row, drawn from a counter-based
  generator so they do not depend on the chunking; one pass.
* ``'k-means||'``: scalable k-means++ (Bahmani et al. 2012) over all rows, see
  :mod:`daskgmm.kmeans_parallel`, then the parameters of the final hard assignment.

With sample weights a row of weight w counts as w rows: the samples of 'kmeans'
and 'k-means++' are clustered with their weights, 'random_from_data' draws rows
in proportion to their weights, and every pass weights its statistics.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from . import kernels, kmeans
from .covariance import COVARIANCE
from .kmeans_parallel import (
    kmeans_parallel,
    kmeans_parallel_candidates,
    kmeans_parallel_many,
    lloyd,
    recluster,
)
from .params import GMMParams, SufficientStatistics, params_from_statistics
from .passes import finite_rows, pass_statistics_many
from .reads import compute, single_threaded
from .recovery import Recovery, warn_recovered
from .sampling import client_rows, client_sample

__all__ = [
    "INIT_METHODS",
    "initial_parameters",
    "initial_parameters_given",
    "initial_parameters_grid",
    "initial_parameters_many",
]

logger = logging.getLogger(__name__)

INIT_METHODS = ("k-means||", "kmeans", "k-means++", "random", "random_from_data")


def _total_weight(X: da.Array, sample_weight: da.Array | None) -> float:
    if sample_weight is None:
        return float(X.shape[0])
    (total,) = compute(sample_weight.sum())
    return float(total)


def _from_points(points, total_weight, covariance_type, reg_covar, eps, recovery=None):
    """One component per data row: N_k = 1, mean = the row, covariance = reg_covar * I."""
    stats = SufficientStatistics.of_points(points, total_weight, covariance_type)
    return _params_of(stats, reg_covar, covariance_type, eps, recovery)


def _params_of(stats, reg_covar, covariance_type, eps, recovery=None) -> GMMParams:
    """Initial parameters from the statistics of an assignment (weights ``N_k / n``,
    as scikit-learn's, not renormalised); ``recovery``: see :mod:`daskgmm.recovery`."""
    events: list[dict] = []
    params = params_from_statistics(stats, reg_covar, covariance_type, eps=eps,
                                    normalise_weights=False, recovery=recovery, events=events)
    for event in events:
        warn_recovered({"iteration": None, **event}, None, reg_covar)
    return params


def _kmeans_parallel_statistics(X, n_components, covariance_type, random_states, options,
                                missing, sample_weight=None):
    """k-means|| from each random state, then Lloyd: the statistics of each final assignment."""
    opts = dict(options or {})
    lloyd_iter = opts.pop("lloyd_iter", 1)
    found = kmeans_parallel_many(X, n_components, random_states, missing=missing,
                                 sample_weight=sample_weight, **opts)
    return lloyd(X, [f.centers for f in found], lloyd_iter, covariance_type, missing,
                 sample_weight)


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
    others each from its own generator seeded from it. 'kmeans' draws one sample
    and runs its k-means one after another from ``random_state``, then one pass
    gives every assignment's statistics: two passes for any ``count``, and the
    first is the one drawn alone (on at most :func:`~daskgmm.sampling.client_rows` rows each is
    the one of scikit-learn's loop). The other methods draw them one after
    another from ``random_state``, as scikit-learn's loop does (a pass or less
    each).
    """
    if method == "kmeans":
        return _kmeans_starts(X, count, n_components, covariance_type, random_state,
                              options["reg_covar"], options["eps"],
                              options.get("missing", "raise"), options.get("sample_weight"),
                              options.get("recovery"))
    if method != "k-means||" or count == 1:
        return [
            initial_parameters(X, n_components, covariance_type, method, random_state, **options)
            for _ in range(count)
        ]
    all_stats = _kmeans_parallel_statistics(
        X, n_components, covariance_type, _lockstep_states(random_state, count),
        options.get("kmeans_parallel_options"), options.get("missing", "raise"),
        options.get("sample_weight"),
    )
    return [_params_of(st, options["reg_covar"], covariance_type, options["eps"],
                       options.get("recovery")) for st in all_stats]


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


def initial_parameters_grid(
    X: da.Array,
    models: list[tuple[int, str]],
    n_init: int,
    method: str,
    seed: int,
    **options,
) -> list[list[GMMParams]]:
    """``n_init`` initialisations of each ``(n_components, covariance_type)`` in
    ``models``, each the one that :func:`initial_parameters_many` draws for that
    model alone from ``RandomState(seed)`` (``options`` as there), with the
    passes over the data shared.

    'k-means||' runs once (``n_init`` in lockstep) for all the models: its rounds
    oversample for the largest ``n_components``, and each number of components is
    reclustered on the client from the same weighted candidates, from the random
    state that the run alone reaches there; one Lloyd pass then serves every
    model. A model of ``K`` components is thus the one drawn alone for ``K`` with
    ``init_oversampling`` scaled by ``K_max / K``. With one initialisation,
    'kmeans' draws its sample once and 'random' its reference row and seed once
    (every model alone draws the same), then one pass gives every model's
    statistics; otherwise, and for 'k-means++' and 'random_from_data', each model
    is drawn as alone (a sample or a pass each).
    """
    missing = options.get("missing", "raise")
    sample_weight = options.get("sample_weight")

    def from_stats(stats, types):
        return [_params_of(st, options["reg_covar"], cov, options["eps"], options.get("recovery"))
                for st, cov in zip(stats, types)]

    types = [cov for _, cov in models]
    if method in ("kmeans", "random") and n_init == 1:
        # every model draws the same sample (or reference row and seed) from the same
        # state: drawn once; then one pass for all models' statistics
        rs = np.random.RandomState(seed)
        k_max = max(k for k, _ in models)
        if method == "random":
            centre, row_seed = _random_start(X, k_max, rs, missing, sample_weight)
            starts = [centre[:k] for k, _ in models]
            kernel, extra = kernels.chunk_random_statistics, (row_seed,)
        else:
            ks = [k for k, _ in models]
            samples = client_sample(X, k_max, rs, missing, sample_weight, fewer=ks)[1:]
            reached, starts = rs.get_state(), []
            for k, (rows, w) in zip(ks, samples):
                km_state = np.random.RandomState()
                km_state.set_state(reached)
                starts.append(_kmeans_centers(rows, w, k, km_state, X.shape[0] > client_rows(X)))
            kernel, extra = kmeans.chunk_assignment_statistics, ()
        stats = pass_statistics_many(X, kernel, starts, types, *extra, missing=missing,
                                     sample_weight=sample_weight)
        return [[p] for p in from_stats(stats, types)]
    if method != "k-means||":
        return [
            initial_parameters_many(X, n_init, k, cov, method, np.random.RandomState(seed),
                                    **options)
            for k, cov in models
        ]
    opts = dict(options.get("kmeans_parallel_options") or {})
    lloyd_iter = opts.pop("lloyd_iter", 1)
    states = _lockstep_states(np.random.RandomState(seed), n_init)
    found = kmeans_parallel_candidates(X, max(k for k, _ in models), states, missing=missing,
                                       sample_weight=sample_weight, **opts)
    reached = [rs.get_state() for rs in states]
    centers = {}
    for k in sorted({k for k, _ in models}):
        for j, (result, state) in enumerate(zip(found, reached)):
            rs = np.random.RandomState()
            rs.set_state(state)
            centers[k, j] = recluster(result, k, rs)
    sets = [(k, cov, j) for k, cov in models for j in range(n_init)]
    stats = lloyd(X, [centers[k, j] for k, _, j in sets], lloyd_iter,
                  [cov for _, cov, _ in sets], missing, sample_weight)
    params = from_stats(stats, [cov for _, cov, _ in sets])
    return [params[m * n_init:(m + 1) * n_init] for m in range(len(models))]


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


def _kmeans_starts(X, count, n_components, covariance_type, random_state, reg_covar, eps,
                   missing, sample_weight, recovery) -> list[GMMParams]:
    """``count`` starts of 'kmeans': one sample, the k-means one after another from
    ``random_state``, then one pass for the statistics of every assignment."""
    rows, w = client_sample(X, n_components, random_state, missing, sample_weight)
    sampled = X.shape[0] > client_rows(X)
    centers = [_kmeans_centers(rows, w, n_components, random_state, sampled)
               for _ in range(count)]
    stats = pass_statistics_many(X, kmeans.chunk_assignment_statistics, centers,
                                 covariance_type, missing=missing, sample_weight=sample_weight)
    return [_params_of(st, reg_covar, covariance_type, eps, recovery) for st in stats]


def _kmeans_centers(rows, w, n_components, random_state, sampled: bool) -> np.ndarray:
    """The centres of 'kmeans' from the client's rows (``sampled``: a sample of
    more rows, see the module docstring), each k-means on one thread: the same on
    every machine. On a sample the two run at once, scikit-learn's from
    ``random_state`` (which only it advances) and the k-means||-seeded one from a
    generator seeded from it (:func:`_lockstep_states`)."""

    def scikit_learn_kmeans():
        km = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
        with single_threaded():  # OpenMP's thread count is this thread's own
            return km.fit(rows, sample_weight=w)

    if not sampled:
        return scikit_learn_kmeans().cluster_centers_
    seeding = _lockstep_states(random_state, 2)[1]
    weight = None if w is None else w.reshape(-1, 1)
    with single_threaded(), ThreadPoolExecutor(1) as pool:
        first = pool.submit(scikit_learn_kmeans)
        # the rows are in this process: one chunk, no graph
        seeds = kmeans_parallel(rows, n_components, seeding, sample_weight=weight).centers
        other = KMeans(n_clusters=n_components, init=seeds, n_init=1).fit(rows, sample_weight=w)
        km = first.result()
    return min((km, other), key=lambda m: m.inertia_).cluster_centers_


def _random_start(X, n_components, random_state, missing, sample_weight):
    """The centres (a reference row, repeated) and the seed of the 'random' start."""
    (head,) = compute(X[: min(X.shape[0], 1024)])  # a row to centre the statistics on
    centre = finite_rows(np.asarray(head), missing)[:1]
    if not len(centre):
        centre = client_sample(X, n_components, random_state, missing, sample_weight)[0][:1]
    centers = np.repeat(np.asarray(centre, dtype=np.float64), n_components, axis=0)
    return centers, int(random_state.randint(np.iinfo(np.int32).max))


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
    missing: str = "raise",
    sample_weight: da.Array | None = None,
    recovery: Recovery | None = None,
) -> GMMParams:
    """Initial parameters by ``method`` (one of :data:`INIT_METHODS`).

    ``kmeans_parallel_options`` (``n_rounds``, ``oversampling``, ``lloyd_iter``)
    tune ``'k-means||'``. ``missing``: what rows with NaN are ('raise', 'drop':
    left out, 'marginalize': measured over their observed features, see
    :mod:`daskgmm.kmeans`; a sample's NaN are filled with its feature means).
    ``sample_weight``: (n, 1), chunked like the rows (see the module docstring).
    ``recovery``: remedies for covariances that are not positive definite.
    """

    def from_stats(stats):
        return _params_of(stats, reg_covar, covariance_type, eps, recovery)

    def one_pass(kernel, centers, *extra):
        return pass_statistics_many(X, kernel, [centers], covariance_type, *extra,
                                    missing=missing, sample_weight=sample_weight)[0]

    def sample():
        return client_sample(X, n_components, random_state, missing, sample_weight)

    n = X.shape[0]
    if method == "k-means||":
        (stats,) = _kmeans_parallel_statistics(
            X, n_components, covariance_type, [random_state], kmeans_parallel_options,
            missing, sample_weight,
        )
        return from_stats(stats)
    if method == "kmeans":
        return _kmeans_starts(X, 1, n_components, covariance_type, random_state, reg_covar, eps,
                              missing, sample_weight, recovery)[0]
    if method == "k-means++":
        rows, w = sample()
        with single_threaded():
            centers, _ = kmeans_plusplus(rows, n_components, sample_weight=w,
                                         random_state=random_state)
        return _from_points(centers, _total_weight(X, sample_weight), covariance_type, reg_covar, eps,
                            recovery)
    if method == "random_from_data":
        p = None
        if sample_weight is not None:
            (w,) = compute(sample_weight)
            p = np.asarray(w, dtype=np.float64).ravel() / np.sum(w)
        drawn = random_state.choice(n, size=n_components, replace=False, p=p)
        rows = np.sort(drawn)
        (points,) = compute(X[rows])
        points = np.asarray(points)[np.searchsorted(rows, drawn)]  # component j <- drawn[j]
        if not np.isfinite(points).all():
            finite_rows(points, missing)  # raises for missing='raise'
            pool = sample()[0]
            points = pool[random_state.choice(len(pool), n_components, replace=False)]
        return _from_points(points, _total_weight(X, sample_weight), covariance_type, reg_covar, eps,
                            recovery)
    if method == "random":
        centers, seed = _random_start(X, n_components, random_state, missing, sample_weight)
        return from_stats(one_pass(kernels.chunk_random_statistics, centers, seed))
    raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}.")
