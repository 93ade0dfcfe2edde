"""The EM loop against scikit-learn, and its invariants, on threads and distributed."""

from __future__ import annotations

import warnings
from unittest import mock

import dask.array as da
import numpy as np
import pytest
from conftest import blobs
from helpers import TYPES, ChunkReads
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from daskgmm import GaussianMixture, em
from daskgmm import fitting as fitting_module
from daskgmm import init as init_module

# Fixed iteration counts (tol=0) are the point of most tests here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def reference_start(X, covariance_type, k=3):
    """Deliberately rough initial parameters (a few iterations of sklearn from k-means)."""
    sk = SKGaussianMixture(k, covariance_type=covariance_type, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X)
    return dict(weights_init=sk.weights_, means_init=sk.means_, precisions_init=sk.precisions_)


def fit_both(X, covariance_type, max_iter, Xd=None, **kw):
    start = reference_start(X, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SKGaussianMixture(3, covariance_type=covariance_type, max_iter=max_iter, tol=0, **start, **kw).fit(X)
        ours = GaussianMixture(3, covariance_type=covariance_type, max_iter=max_iter, tol=0, **start, **kw)
        ours.fit(X if Xd is None else Xd)
    return sk, ours


def assert_same_model(a, b, rtol=1e-6):
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]:
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=rtol, atol=rtol * 1e-3, err_msg=name)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=rtol)
    assert b.n_iter_ == a.n_iter_


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("max_iter", [1, 2, 7])
def test_parity_with_sklearn_each_iteration(covariance_type, max_iter):
    X, _ = blobs(900, 3, 3, seed=1, sep=3.0)
    sk, ours = fit_both(X, covariance_type, max_iter, Xd=da.from_array(X, chunks=(250, 3)))
    assert_same_model(sk, ours)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_parity_on_threads_and_distributed(scheduler, covariance_type):
    X, _ = blobs(800, 4, 3, seed=2, sep=3.0)
    sk, ours = fit_both(X, covariance_type, 5, Xd=da.from_array(X, chunks=(170, 4)))
    assert_same_model(sk, ours)


def test_parity_to_convergence_and_predictions():
    X, _ = blobs(1200, 2, 3, seed=3, sep=4.0)
    start = reference_start(X, "full")
    sk = SKGaussianMixture(3, tol=1e-8, max_iter=500, **start).fit(X)
    ours = GaussianMixture(3, tol=1e-8, max_iter=500, **start).fit(X)
    assert ours.converged_ and ours.n_iter_ == sk.n_iter_
    assert_same_model(sk, ours)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    assert ours.score(X) == pytest.approx(sk.score(X), rel=1e-10)
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_chunking_does_not_change_the_answer(covariance_type):
    X, _ = blobs(1000, 3, 3, seed=4)
    start = reference_start(X, covariance_type)
    chunkings = [(1000,), (1, 0, 299, 0, 0, 500, 200), (7,) * 142 + (6,), (333, 333, 334)]
    fits = []
    for c in chunkings:
        Xd = da.from_array(X, chunks=(c, (3,)))
        fits.append(GaussianMixture(3, covariance_type=covariance_type, max_iter=20, tol=0, **start).fit(Xd))
    for f in fits[1:]:
        assert_same_model(fits[0], f, rtol=1e-10)


def test_results_are_bitwise_identical_on_threads_and_distributed(distributed_client):
    import dask

    X, _ = blobs(3000, 3, 4, seed=5)
    Xd = da.from_array(X, chunks=(200, 3))

    def fit():
        return GaussianMixture(4, max_iter=15, tol=0, random_state=0).fit(Xd)

    with dask.config.set(scheduler="threads"):
        a, a2 = fit(), fit()
    with distributed_client.as_current(), dask.config.set(scheduler=distributed_client):
        b = fit()
    for name in ["weights_", "means_", "covariances_"]:
        np.testing.assert_array_equal(getattr(a, name), getattr(a2, name))
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bounds_ == b.lower_bounds_


@pytest.mark.parametrize("covariance_type", TYPES)
def test_lower_bound_never_decreases(covariance_type):
    X, _ = blobs(2000, 4, 5, seed=6, sep=2.0)
    gm = GaussianMixture(5, covariance_type=covariance_type, max_iter=60, tol=0, init_params="random", random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(da.from_array(X, chunks=(300, 4)))
    lb = np.array(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))


def test_float32_data_stays_float32_in_chunks_and_agrees_with_float64():
    X, _ = blobs(4000, 3, 3, seed=7)
    seen = []

    def spy(block):
        seen.append(block.dtype)
        return block

    X32 = da.from_array(X.astype(np.float32), chunks=(1000, 3)).map_blocks(spy, dtype=np.float32, meta=np.empty((0, 0), np.float32))
    start = reference_start(X, "full")
    a = GaussianMixture(3, max_iter=10, tol=0, **start).fit(X32)
    b = GaussianMixture(3, max_iter=10, tol=0, **start).fit(X.astype(np.float32).astype(np.float64))
    assert set(seen) == {np.dtype(np.float32)}
    assert a.means_.dtype == np.float32  # as scikit-learn: float32 data, float32 model
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-6)


def test_one_read_of_the_data_per_iteration():
    """Each EM iteration reads every chunk exactly once (threaded scheduler)."""
    X, _ = blobs(2000, 3, 3, seed=8)
    reads = ChunkReads(X, (400, 3))
    start = reference_start(X, "full")
    gm = GaussianMixture(3, max_iter=6, tol=0, persist=False, **start).fit(reads.array)
    assert gm.n_iter_ == 6
    assert reads.passes == 6


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_initialisations_run_in_lockstep_with_one_read_per_iteration(covariance_type, scheduler):
    """n_init=3: every iteration reads each chunk once for all initialisations, and
    each initialisation ends bitwise where it ends when fitted alone."""
    X, _ = blobs(2000, 3, 3, seed=8, sep=2.0)
    reads = ChunkReads(X, (400, 3))
    data = reads.array if scheduler is None else reads.source  # (the counter stays in this process)
    common = dict(covariance_type=covariance_type, init_params="random_from_data", tol=1e-4,
                  max_iter=100, persist=False)
    runs = []
    gm = GaussianMixture(3, n_init=3, random_state=0, **common)
    original = em.run_em

    def spy(*args, **kwargs):
        before = reads.count
        runs.extend(original(*args, **kwargs))
        passes.append((reads.count - before) / reads.source.numblocks[0])
        return runs

    passes = []
    with mock.patch.object(fitting_module, "run_em", spy):
        gm.fit(data)
    iterations = [r.n_iter for r in runs]
    assert len(runs) == 3 and len(set(iterations)) > 1  # they stop at different iterations
    if scheduler is None:
        assert passes == [max(iterations)]
    # Each one alone, from the parameters it was drawn with, as scikit-learn's loop draws them:
    rng = np.random.RandomState(0)
    for run in runs:
        start = init_module.initial_parameters(
            da.from_array(X, chunks=(400, 3)), 3, covariance_type, "random_from_data", rng,
            reg_covar=1e-6, eps=float(np.finfo(X.dtype).eps),
        )
        (alone,) = original(da.from_array(X, chunks=(400, 3)), [em.EMResult(start, [], 0, False)],
                            tol=1e-4, max_iter=100, reg_covar=1e-6, eps=float(np.finfo(X.dtype).eps))
        assert alone.lower_bounds == run.lower_bounds and alone.n_iter == run.n_iter
        np.testing.assert_array_equal(alone.params.means, run.params.means)
        np.testing.assert_array_equal(alone.params.covariances, run.params.covariances)
    best = max(runs, key=lambda r: r.lower_bound)
    assert gm.lower_bounds_ == best.lower_bounds and gm.n_iter_ == best.n_iter


def test_nan_in_dask_input_is_found_in_the_first_pass():
    X, _ = blobs(1000, 3, 3, seed=9)
    X[567, 1] = np.nan
    start = reference_start(np.delete(X, 567, 0), "full")
    reads = ChunkReads(X, (250, 3))
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity: 1 of 1000 rows"):
        GaussianMixture(3, persist=False, **start).fit(reads.array)
    assert reads.passes == 1  # one pass, no separate check


def test_passes_run_their_tasks_with_one_blas_thread_and_restore_the_limit():
    """Chunk tasks run in parallel already: BLAS inside them gets one thread, and
    the process's limit is as before once the pass is done."""
    import dask
    from threadpoolctl import threadpool_info

    from daskgmm import reads

    def blas_threads():
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    before = blas_threads()
    probe = da.ones((10, 2), chunks=5).map_blocks(
        lambda b: np.array([[blas_threads()]]), chunks=(1, 1), dtype=int)
    with dask.config.set(scheduler="threads"):
        (inside,) = reads.compute(probe)
        (again,) = reads.compute(probe)
    assert inside.ravel().tolist() == again.ravel().tolist() == [1, 1]
    assert blas_threads() == before
