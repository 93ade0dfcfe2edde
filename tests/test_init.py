"""k-means|| (Bahmani et al. 2012) over Dask arrays, and the other initialisations."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from helpers import ChunkReads
from sklearn.metrics import adjusted_rand_score

from daskgmm import EmptyComponentWarning, GaussianMixture
from daskgmm.init import _lockstep_states, initial_parameters, initial_parameters_many
from daskgmm.kmeans_parallel import kmeans_parallel


def thirty_clusters(seed=0, k=30, d=10):
    """30 well-separated clusters in 10-D with unequal sizes (200 to 3,000 rows)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=10, size=(k, d))
    sizes = rng.integers(200, 3000, size=k)
    X = np.vstack([rng.normal(m, 1, size=(s, d)) for m, s in zip(means, sizes)])
    truth = np.repeat(np.arange(k), sizes)
    perm = rng.permutation(len(X))
    return X[perm], truth[perm], means


@pytest.fixture(scope="module")
def clusters():
    return thirty_clusters()


def test_centres_hit_every_true_cluster_and_fit_recovers_truth(clusters):
    X, truth, means = clusters
    Xd = da.from_array(X, chunks=(4000, 10))
    found = kmeans_parallel(Xd, 30, np.random.RandomState(0))
    nearest_true = ((found.centers[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert len(np.unique(nearest_true)) == 30
    assert found.candidate_weights.sum() == len(X)
    assert found.passes == 6  # 5 sampling rounds + 1 weighting pass
    gm = GaussianMixture(30, init_params="k-means||", random_state=0).fit(Xd)
    assert adjusted_rand_score(truth, gm.predict(X)) >= 0.99


def test_whole_initialisation_reads_the_data_at_most_8_times(clusters):
    X = clusters[0]
    reads = ChunkReads(X, (4000, 10))
    GaussianMixture(30, init_params="k-means||", max_iter=0, random_state=0,
                    persist=False).fit(reads.array)
    # 5 rounds + weighting + 1 Lloyd + final assignment = 8 passes, plus the one
    # chunk that holds the first centre.
    assert reads.count == 8 * reads.source.numblocks[0] + 1


def test_kmeans_reads_the_data_twice(clusters):
    # 'kmeans': the sample, then the assignment of every row
    reads = ChunkReads(clusters[0], (4000, 10))
    GaussianMixture(30, init_params="kmeans", max_iter=0, random_state=0,
                    persist=False).fit(reads.array)
    assert reads.count == 2 * reads.source.numblocks[0]


def test_several_initialisations_share_every_pass_and_each_equals_its_run_alone(clusters):
    """n_init=3 with k-means||: 8 passes in all, not 24, and each initialisation is
    what k-means|| gives alone from its own generator; the first is the one of
    n_init=1 (random_state itself)."""
    X = clusters[0]
    reads = ChunkReads(X, (4000, 10))
    GaussianMixture(30, n_init=3, init_params="k-means||", max_iter=0, random_state=0,
                    persist=False).fit(reads.array)
    assert reads.count == 8 * reads.source.numblocks[0] + 3  # + the chunk of each first centre
    options = dict(reg_covar=1e-6, eps=1e-16, kmeans_parallel_options={"lloyd_iter": 1})
    Xd = da.from_array(X, chunks=(4000, 10))
    together = initial_parameters_many(Xd, 3, 30, "diag", "k-means||", np.random.RandomState(5), **options)
    for params, state in zip(together, _lockstep_states(np.random.RandomState(5), 3)):
        alone = initial_parameters(Xd, 30, "diag", "k-means||", state, **options)
        np.testing.assert_array_equal(params.means, alone.means)
        np.testing.assert_array_equal(params.covariances, alone.covariances)
    assert not np.array_equal(together[0].means, together[1].means)
    first = initial_parameters(Xd, 30, "diag", "k-means||", np.random.RandomState(5), **options)
    np.testing.assert_array_equal(together[0].means, first.means)


@pytest.mark.parametrize("n_rows", [20_000, 120_000])
def test_several_kmeans_initialisations_read_the_data_twice_in_all(n_rows):
    """n_init=3 with 'kmeans': one sample and one pass for the three assignments;
    the first is the start of n_init=1, and on at most 100,000 rows each is the
    one that the loop of initialisations one after another draws (scikit-learn's)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n_rows, 4)) + rng.normal(scale=4.0, size=(6, 4))[
        rng.integers(6, size=n_rows)]
    reads = ChunkReads(X, (10_000, 4))
    GaussianMixture(6, n_init=3, max_iter=0, random_state=0, persist=False).fit(reads.array)
    assert reads.count == 2 * reads.source.numblocks[0]
    options = dict(reg_covar=1e-6, eps=np.finfo(np.float64).eps)
    Xd = da.from_array(X, chunks=(10_000, 4))
    together = initial_parameters_many(Xd, 3, 6, "full", "kmeans", np.random.RandomState(5),
                                       **options)
    first = initial_parameters(Xd, 6, "full", "kmeans", np.random.RandomState(5), **options)
    np.testing.assert_array_equal(together[0].means, first.means)
    np.testing.assert_array_equal(together[0].covariances, first.covariances)
    if n_rows <= 100_000:
        state = np.random.RandomState(5)
        for params in together:
            alone = initial_parameters(Xd, 6, "full", "kmeans", state, **options)
            np.testing.assert_array_equal(params.means, alone.means)
            np.testing.assert_array_equal(params.covariances, alone.covariances)


def test_the_client_sample_of_wide_rows_is_bounded_in_bytes(monkeypatch):
    import daskgmm.init as init
    import daskgmm.sampling as sampling

    assert sampling.client_rows(np.empty((0, 16))) == 100_000
    assert sampling.client_rows(np.empty((0, 10_000))) == (128 << 20) // 80_000  # 1,677 rows
    assert sampling.sample_size(np.broadcast_to(0.0, (10**6, 16)), 8) == 20_000  # 2,500 a component
    assert sampling.sample_size(np.broadcast_to(0.0, (10**6, 16)), 30) == 75_000
    assert sampling.sample_size(np.broadcast_to(0.0, (10**6, 16)), 60) == 100_000
    assert sampling.sample_size(np.broadcast_to(0.0, (10**6, 10_000)), 8) == 1_677
    assert sampling.sample_size(np.broadcast_to(0.0, (90_000, 16)), 8) == 90_000  # every row
    monkeypatch.setattr(sampling, "SAMPLE_BYTES", 8 * 4 * 1000)  # 1,000 rows of 4 features
    seen = []
    centers = init._kmeans_centers

    def spy(rows, w, k, rs, sampled):
        seen.append((len(rows), sampled))
        return centers(rows, w, k, rs, sampled)

    monkeypatch.setattr(init, "_kmeans_centers", spy)
    X = np.random.default_rng(0).normal(size=(5000, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixture(3, random_state=0, max_iter=2).fit(X)
    assert seen == [(1000, True)]
    monkeypatch.setattr(sampling, "SAMPLE_BYTES", 8 * 4 * 2)
    with pytest.raises(ValueError, match=r"2 rows without NaN in a sample of 2 \(rows of 4 "
                                         r"features: at most 0 MiB\), fewer than n_components=3"):
        GaussianMixture(3, random_state=0).fit(X)


def test_same_centres_whatever_the_chunking_and_scheduler(clusters, distributed_client):
    X = clusters[0]
    a = kmeans_parallel(da.from_array(X, chunks=(4000, 10)), 30, np.random.RandomState(3))
    b = kmeans_parallel(da.from_array(X, chunks=(777, 10)), 30, np.random.RandomState(3))
    with distributed_client.as_current(), dask.config.set(scheduler=distributed_client):
        c = kmeans_parallel(da.from_array(X, chunks=(4000, 10)), 30, np.random.RandomState(3))
    np.testing.assert_array_equal(a.candidates, b.candidates)
    np.testing.assert_array_equal(a.candidate_weights, b.candidate_weights)
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.centers, c.centers)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("missing", ["raise", "marginalize"])
def test_rows_in_memory_are_one_chunk_without_a_graph(clusters, weighted, missing):
    """k-means|| of a NumPy array (the client's sample of 'kmeans') calls the chunk
    kernels directly: bitwise the result of the rows as a one-chunk Dask array."""
    X = clusters[0][:6000].copy()
    rng = np.random.default_rng(1)
    if missing == "marginalize":
        X[rng.random(X.shape) < 0.05] = np.nan
    w = rng.uniform(0.0, 3.0, size=(len(X), 1)) if weighted else None
    a = kmeans_parallel(X, 30, np.random.RandomState(2), missing=missing, sample_weight=w)
    with dask.config.set(scheduler="sync"):
        b = kmeans_parallel(da.from_array(X, chunks=X.shape), 30, np.random.RandomState(2),
                            missing=missing,
                            sample_weight=None if w is None else da.from_array(w, chunks=w.shape))
    for name in ("candidates", "candidate_weights", "centers"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.phi, a.passes) == (b.phi, b.passes)


def test_fits_are_deterministic_for_a_random_state(clusters):
    Xd = da.from_array(clusters[0][:20000], chunks=(3000, 10))
    a = GaussianMixture(30, random_state=5, max_iter=5).fit(Xd)
    b = GaussianMixture(30, random_state=5, max_iter=5).fit(Xd)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_all_rows_identical():
    """As scikit-learn: fewer distinct rows than components is a warning, components
    start empty (reg_covar * I), and with reg_covar=0 the fit fails with its error."""
    X = da.ones((1000, 3), chunks=300)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(1\) found smaller"), \
            pytest.warns(EmptyComponentWarning):
        gm = GaussianMixture(2, max_iter=3).fit(X)
    assert np.isfinite(gm.means_).all() and np.isfinite(gm.precisions_cholesky_).all()
    np.testing.assert_allclose(gm.weights_, [1.0, 0.0], atol=1e-6)
    with pytest.warns(ConvergenceWarning), pytest.warns(EmptyComponentWarning), \
            pytest.raises(ValueError, match="^Fitting the mixture model failed because some"):
        GaussianMixture(2, reg_covar=0).fit(X)
    gm = GaussianMixture(1).fit(X)  # one component is fine
    np.testing.assert_allclose(gm.means_, [[1.0, 1.0, 1.0]])


def test_fewer_distinct_points_than_components_and_duplicates():
    rows = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 9.0]]), [300, 10, 200], axis=0)
    X = da.from_array(rows, chunks=100)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(3\) found smaller than n_clusters \(4\)"), \
            pytest.warns(EmptyComponentWarning):
        gm = GaussianMixture(4, random_state=0, max_iter=3).fit(X)
    np.testing.assert_allclose(np.sort(gm.weights_)[1:], np.sort([300, 10, 200]) / 510, atol=1e-6)
    gm = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(gm.weights_), np.sort([300, 10, 200]) / 510, atol=1e-6)


def test_empty_chunks_are_harmless(clusters):
    X = clusters[0][:5000]
    chunks = ((0, 2000, 0, 0, 3000, 0), (10,))
    a = kmeans_parallel(da.from_array(X, chunks=chunks), 30, np.random.RandomState(1))
    b = kmeans_parallel(da.from_array(X, chunks=(5000, 10)), 30, np.random.RandomState(1))
    np.testing.assert_array_equal(a.centers, b.centers)


def test_nan_is_reported_by_the_first_round():
    X = np.random.default_rng(0).normal(size=(500, 2))
    X[100] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        GaussianMixture(2, random_state=1).fit(da.from_array(X, chunks=100))


def test_options_are_exposed_and_validated():
    X = da.from_array(thirty_clusters(k=5, d=3)[0], chunks=2000)
    gm = GaussianMixture(5, init_rounds=2, init_oversampling=4.0, init_lloyd_iter=3, random_state=0).fit(X)
    assert gm.converged_
    with pytest.raises(ValueError, match="'init_oversampling' parameter"):
        GaussianMixture(5, init_oversampling=0).fit(X)


def test_kmeans_on_a_sample_keeps_the_better_of_two_seedings():
    """On a sample of more rows, 'kmeans' keeps the lower-inertia k-means of two:
    scikit-learn's and one seeded by k-means|| over the sample; it never does worse
    than scikit-learn's alone, and on many unequal clusters it often does better.
    The clusters are closer than those of ``thirty_clusters``, where both seedings
    find the same optimum in every seed."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from daskgmm.init import _kmeans_centers

    rng = np.random.default_rng(0)
    means = rng.normal(scale=6.0, size=(30, 10))
    p = rng.uniform(0.2, 1.0, size=30)
    lab = rng.choice(30, size=20_000, p=p / p.sum())
    rows = rng.standard_normal((20_000, 10)) + means[lab]

    def inertia(c):
        return KMeans(30, init=c, n_init=1, max_iter=1).fit(rows).inertia_

    better = 0
    for seed in range(3):
        ours = _kmeans_centers(rows, None, 30, np.random.RandomState(seed), sampled=True)
        alone = _kmeans_centers(rows, None, 30, np.random.RandomState(seed), sampled=False)
        with threadpool_limits(1):  # as ours: the same on every machine
            alone_sk = KMeans(30, n_init=1, random_state=np.random.RandomState(seed)).fit(rows)
        np.testing.assert_array_equal(alone, alone_sk.cluster_centers_)
        assert inertia(ours) <= inertia(alone) * (1 + 1e-12)
        better += inertia(ours) < inertia(alone) * 0.99
    assert better >= 1
