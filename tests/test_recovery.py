"""Collapsed components recovered (jitter, re-seed) instead of fatal."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from helpers import Stop, kill_at_iteration, start_worker, stopped_after
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from daskgmm import GaussianMixture, em, kernels
from daskgmm.errors import RecoveryWarning
from daskgmm.params import GMMParams
from daskgmm.recovery import WorstRows

ILL_DEFINED = "Fitting the mixture model failed because some components have ill-defined"


def collinear(n=3000, seed=0):
    """float32, values about 1e5: the third feature is the sum of the other two."""
    a = np.random.default_rng(seed).normal(1e5, 1e3, size=(n, 2))
    return np.column_stack([a, a.sum(axis=1)]).astype(np.float32)


def far_singleton(n=3000, seed=0):
    return np.vstack([np.random.default_rng(seed).normal(size=(n, 2)), [[1e3, 1e3]]])


def fit(X, **params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm = GaussianMixture(3, random_state=0, **params).fit(X)
    return gm, [w for w in caught if issubclass(w.category, RecoveryWarning)]


def assert_finite(gm):
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_"]:
        assert np.isfinite(getattr(gm, name)).all(), name
    assert np.isfinite(gm.lower_bounds_).all()


def test_collinear_float32_data_fit_with_a_jitter_where_scikit_learn_raises():
    X = collinear()
    with pytest.raises(ValueError, match=ILL_DEFINED):
        SKGaussianMixture(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match=ILL_DEFINED):
        GaussianMixture(3, random_state=0, jitter_covar=False, reseed_collapsed=False).fit(X)

    gm, said = fit(X)
    assert_finite(gm)
    assert gm.converged_ and gm.means_.dtype == np.float32
    jitters = [e for e in gm.recoveries_ if e["action"] == "jitter"]
    assert jitters and len(jitters) == len(gm.recoveries_)
    assert all(1e-7 <= e["relative"] <= 1e-2 and e["relative_to"] == "own" for e in jitters)
    assert len(said) == len(gm.recoveries_)  # one warning per event, naming them
    first = jitters[0]
    assert (f"iteration {first['iteration']}: the covariance of component {first['component']} "
            "was not positive definite after reg_covar=1e-06; added") in str(said[0].message)
    # the fitted model describes the data: nearly every row within its bulk
    assert np.median(gm.score_samples(X)) > -25


def _constant_feature():
    """Two clusters; on the second, the third feature is constant."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3)) + np.repeat([[0, 0, 0], [8, 8, 8]], 1000, axis=0)
    X[1000:, 2] = 8.0
    return X


def _constant_column():
    """Two clusters; the third feature is the same on every row."""
    X = _constant_feature()
    X[:, 2] = 5.0
    return X


def _duplicated_cluster():
    """Two clusters; the second is one point, repeated."""
    X = _constant_feature()
    X[1000:] = 8.0
    return X


@pytest.mark.parametrize("covariance_type, data, k", [
    ("full", _constant_feature, 2),
    ("tied", _constant_column, 2),  # the pooled covariance is singular
    ("diag", _constant_feature, 2),
    ("spherical", _duplicated_cluster, 2),
])
def test_every_covariance_type_recovers_where_scikit_learn_raises(covariance_type, data, k):
    X = data()
    common = dict(covariance_type=covariance_type, reg_covar=0.0, max_iter=30)
    with pytest.raises(ValueError, match=ILL_DEFINED):
        SKGaussianMixture(k, random_state=0, **common).fit(X)
    with pytest.raises(ValueError, match=ILL_DEFINED):
        GaussianMixture(k, random_state=0, jitter_covar=False, reseed_collapsed=False,
                        **common).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (RecoveryWarning, ConvergenceWarning))
        gm = GaussianMixture(k, random_state=0, **common).fit(X)
    assert_finite(gm)
    assert gm.recoveries_


def test_a_far_singleton_without_reg_covar_is_reseeded_and_the_fit_ends():
    X = far_singleton()
    with pytest.raises(ValueError, match=ILL_DEFINED):
        GaussianMixture(3, random_state=0, reg_covar=0.0, jitter_covar=False,
                        reseed_collapsed=False).fit(X)
    gm, said = fit(X, reg_covar=0.0)
    assert_finite(gm)
    assert gm.converged_
    reseeds = [e for e in gm.recoveries_ if e["action"] == "reseed"]
    assert reseeds and any("re-seeded on the row the model explained worst" in str(w.message)
                           for w in said)
    # after a re-seed the next lower bound is not compared with the last one: no
    # convergence is declared at the iteration that follows it
    for e in reseeds:
        assert gm.n_iter_ > e["iteration"] + 1


def test_the_lower_bound_never_decreases_between_recoveries():
    """EM's monotone lower bound, in float64, outside the two iterations that follow
    a remedy (its M-step changes the parameters the next E-step scores).

    (In float32 data at 1e5, collinear, the bound of the jittered model is not
    monotone: the components' different jitters in the collinear direction
    weigh their densities by a factor of their own; the fit still ends.)"""
    for X, params in [(far_singleton(), {"reg_covar": 0.0}), (_constant_feature(), {"reg_covar": 0.0})]:
        gm, _ = fit(X, **params)
        assert gm.recoveries_
        touched = {e["iteration"] for e in gm.recoveries_}
        bounds = gm.lower_bounds_
        for t in range(1, len(bounds)):  # iteration t + 1 against iteration t
            if t in touched or t - 1 in touched:
                continue
            assert bounds[t] >= bounds[t - 1] - 1e-9 * abs(bounds[t - 1]), t


def test_a_fit_interrupted_after_a_reseed_resumes_bitwise(tmp_path, monkeypatch):
    X = da.from_array(far_singleton(), chunks=(700, 2))
    params = dict(reg_covar=0.0, tol=0.0, max_iter=12)
    reference, _ = fit(X, **params)
    assert any(e["action"] == "reseed" for e in reference.recoveries_)
    reseed_at = min(e["iteration"] for e in reference.recoveries_ if e["action"] == "reseed")

    ckpt = str(tmp_path / "c.zarr")
    restore = stopped_after(reseed_at + 2, monkeypatch)  # the state after that pass is saved
    with pytest.raises(Stop):
        fit(X, checkpoint=ckpt, **params)
    restore()
    resumed, _ = fit(X, checkpoint=ckpt, **params)
    np.testing.assert_array_equal(resumed.means_, reference.means_)
    np.testing.assert_array_equal(resumed.covariances_, reference.covariances_)
    assert resumed.lower_bounds_ == reference.lower_bounds_
    assert resumed.recoveries_ == reference.recoveries_
    resumed.save(tmp_path / "m.zarr")
    from daskgmm import load

    assert load(tmp_path / "m.zarr").recoveries_ == reference.recoveries_


def test_a_fit_killed_after_a_reseed_resumes_bitwise(tmp_path):
    """The fit runs in its own process, SIGKILLed once its checkpoint holds an
    iteration after the second re-seed; the resumed fit ends bitwise where the
    uninterrupted one ends, with the same recoveries."""
    import checkpoint_worker

    from daskgmm import inspect

    data, ckpt = tmp_path / "x.zarr", tmp_path / "c.zarr"
    da.from_array(far_singleton(), chunks=(700, 2)).to_zarr(str(data))
    with dask.config.set(scheduler="threads"):
        reference = checkpoint_worker.fit(da.from_zarr(str(data)),
                                          params=checkpoint_worker.RECOVERY_FIT)
    reseeds = [e["iteration"] for e in reference.recoveries_ if e["action"] == "reseed"]
    assert len(reseeds) >= 2
    proc = start_worker(data, ckpt, tmp_path / "m.zarr", "threads", "recovery")
    kill_at_iteration(proc, ckpt, reseeds[1] + 1, poll=0.002)
    state = inspect(ckpt)
    assert state["status"] != "done" and reseeds[1] < state["n_iter"] < reference.n_iter_
    with dask.config.set(scheduler="threads"):
        resumed = checkpoint_worker.fit(da.from_zarr(str(data)), str(ckpt),
                                        checkpoint_worker.RECOVERY_FIT)
    np.testing.assert_array_equal(resumed.means_, reference.means_)
    np.testing.assert_array_equal(resumed.covariances_, reference.covariances_)
    assert resumed.lower_bounds_ == reference.lower_bounds_
    assert resumed.recoveries_ == reference.recoveries_


def test_recovery_does_not_depend_on_the_chunking():
    # Two clusters and a far singleton, reg_covar=0: the singleton draws a
    # component, which collapses, is re-seeded and collapses again until it keeps
    # the point with a jitter. (With the bulk as one cluster and three components,
    # as in far_singleton, a re-seeded component ends its collapse where its
    # variance meets the rounding of the statistics: which iteration fails then
    # depends on the rounding, so on the chunking, as on the row order in
    # scikit-learn.)
    rng = np.random.default_rng(0)
    bulk = rng.normal(size=(3000, 2))
    X = np.vstack([bulk, bulk[:1000] + 10, [[1e3, 1e3]]])
    fits = [fit(da.from_array(X, chunks=(c, 2)), reg_covar=0.0)[0] for c in (len(X), 400, 701)]
    assert {e["action"] for e in fits[0].recoveries_} == {"reseed", "jitter"}
    def decisions(gm):  # and the amounts, equal to rounding
        return ([(e["iteration"], e["action"], e["component"], e["relative_to"])
                 for e in gm.recoveries_],
                [(e["amount"] or 0.0, e["relative"] or 0.0) for e in gm.recoveries_])

    for other in fits[1:]:
        assert decisions(other)[0] == decisions(fits[0])[0]
        np.testing.assert_allclose(decisions(other)[1], decisions(fits[0])[1], rtol=1e-9)
        np.testing.assert_allclose(other.means_, fits[0].means_, rtol=1e-9)


def test_the_worst_rows_come_from_the_same_pass_and_leave_the_statistics_bitwise():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 3))
    X[[17, 2222, 4999]] += [9.0, -8.0, 7.0]
    p = GMMParams.from_precisions_cholesky(
        np.array([0.5, 0.5]), np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]),
        np.stack([np.eye(3), np.eye(3) * 2]), "full")
    plain = kernels.chunk_statistics(X, *p.kernel_args)
    tracked = kernels.chunk_statistics(X, *p.kernel_args, 4)
    np.testing.assert_array_equal(tracked[:, : plain.shape[1]], plain)
    worst = tracked[0, plain.shape[1]:].reshape(4, 4)
    density = sum(w * stats.multivariate_normal(m, c).pdf(X)
                  for w, m, c in zip(p.weights, p.means, p.covariances))
    expected = np.argsort(np.log(density))[:4]
    np.testing.assert_allclose(worst[:, 0], np.log(density[expected]), rtol=1e-10)
    np.testing.assert_array_equal(worst[:, 1:], X[expected])
    # over chunks, on the threaded scheduler: the same rows, worst first
    with dask.config.set(scheduler="threads"):
        (st,) = em.expectation(da.from_array(X, chunks=(600, 3)), [p], n_worst=4)
    np.testing.assert_array_equal(st.worst, X[expected])


def test_the_worst_rows_do_not_depend_on_how_the_chunk_is_cut_and_ties_go_to_the_earlier_row():
    rng = np.random.default_rng(5)
    n = 5000
    ll = np.round(rng.normal(size=n), 1)  # many ties
    ll[::11] = np.nan
    ll[5::13] = -np.inf
    weight = rng.random(n)
    weight[::7] = 0.0
    rows = np.arange(n, dtype=float)[:, None] * [1.0, -2.0]
    usable = np.isfinite(ll) & (weight > 0)
    expected = np.lexsort((np.arange(n), np.where(usable, ll, np.inf)))[:6]
    for cut in (n, 997, 64, 5):
        tracker = WorstRows(6)
        for s in range(0, n, cut):
            if cut == 64 and s % 128:  # some sub-blocks by their rows' indices
                index = np.arange(min(cut, n - s))[::-1]
                tracker.add(ll[s + index], s, index, weight[s + index])
            else:
                tracker.add(ll[s : s + cut], s, weight=weight[s : s + cut])
        got = tracker.result(rows)
        np.testing.assert_array_equal(got[:, 0], ll[expected])
        np.testing.assert_array_equal(got[:, 1:], rows[expected])
    few = WorstRows(4)
    few.add(np.array([np.nan, 2.0, 1.0]), 0)
    np.testing.assert_array_equal(few.result(rows)[:, 0], [1.0, 2.0, np.inf, np.inf])


def test_lockstep_initialisations_recover_each_as_alone():
    X = da.from_array(far_singleton(), chunks=(1000, 2))
    params = dict(reg_covar=0.0, tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (RecoveryWarning, ConvergenceWarning))
        both = GaussianMixture(3, n_init=3, random_state=0, **params).fit(X)
        firsts = GaussianMixture(3, n_init=1, random_state=0, **params).fit(X)
    assert_finite(both)
    assert both.lower_bound_ >= firsts.lower_bound_  # the first of three is the one alone
