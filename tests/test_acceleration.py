"""SQUAREM: fewer passes, never lower, checkpointable, in lockstep."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from conftest import blobs
from helpers import Stop, stopped_after
from sklearn.exceptions import ConvergenceWarning

from daskgmm import GaussianMixture
from daskgmm.acceleration import extrapolate, step_length
from daskgmm.params import GMMParams


def overlapping(n=6000, d=4, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(k, d))
    spreads = rng.uniform(0.5, 2.0, size=k)
    labels = rng.integers(k, size=n)
    return rng.standard_normal((n, d)) * spreads[labels, None] + centres[labels]


def fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**({"n_components": 5, "random_state": 0} | params)).fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fewer_passes_on_overlapping_data_and_never_lower(covariance_type):
    X = overlapping(3000)
    common = dict(covariance_type=covariance_type, tol=1e-5, max_iter=1000)
    plain = fit(X, **common)
    fast = fit(X, accelerate=True, **common)
    assert plain.converged_ and fast.converged_
    assert fast.n_iter_ <= 0.5 * plain.n_iter_  # (pass counts are deterministic; at scale,
    # to the same bound, they are measured by benchmarks/bench_fit.py --accelerate)
    assert fast.score(X) >= plain.score(X) - 1e-5  # not lower than plain EM by more than tol
    # a drop is a rejected point, and the next one (the plain EM step from the point
    # before it) is not below that point
    bounds = np.asarray(fast.lower_bounds_)
    drops = np.flatnonzero(np.diff(bounds) < 0) + 1
    assert (bounds[drops + 1] >= bounds[drops - 1] - 1e-12).all()
    if covariance_type == "full":
        assert len(drops) > 0  # the safeguard was exercised


def test_the_accelerated_fit_reaches_plain_ems_optimum_on_separated_data():
    X, _ = blobs(3000, 3, 3, seed=1)
    plain = fit(X, n_components=3, tol=0.0, max_iter=60)  # well past convergence (9 passes)
    fast = fit(X, n_components=3, tol=1e-10, max_iter=60, accelerate=True)
    np.testing.assert_allclose(fast.means_, plain.means_, atol=1e-6)
    np.testing.assert_allclose(fast.covariances_, plain.covariances_, atol=1e-6)
    np.testing.assert_allclose(fast.weights_, plain.weights_, atol=1e-6)


def test_every_extrapolated_point_is_a_valid_mixture():
    rng = np.random.default_rng(0)
    for covariance_type in ["full", "tied", "diag", "spherical"]:
        X = rng.normal(size=(500, 3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            p0, p1, p2 = (GaussianMixture(3, covariance_type=covariance_type, max_iter=m,
                                          random_state=0).fit(X)._params() for m in (1, 2, 3))
        assert step_length(p0, p1, p2) > 0
        for alpha in [1.0, 2.5, 8.0, 50.0, 1e4]:
            p = extrapolate(p0, p1, p2, alpha)
            if p is None:  # overflow: refused, never an invalid mixture
                continue
            assert isinstance(p, GMMParams)
            np.testing.assert_allclose(p.weights.sum(), 1.0)
            assert (p.weights > 0).all()
            assert (p.cov.cholesky_diagonal(p.precisions_cholesky) > 0).all()
        same = extrapolate(p0, p1, p2, 1.0)  # alpha = 1: the second plain step
        np.testing.assert_allclose(same.means, p2.means, rtol=1e-12)


def test_an_accelerated_fit_interrupted_resumes_bitwise(tmp_path, monkeypatch):
    X = da.from_array(overlapping(3000), chunks=(1000, 4))
    params = dict(accelerate=True, tol=0.0, max_iter=12, n_init=2)
    reference = fit(X, **params)

    ckpt = str(tmp_path / "c.zarr")
    restore = stopped_after(9, monkeypatch)  # the state after that pass is saved
    with pytest.raises(Stop):
        fit(X, checkpoint=ckpt, **params)
    restore()
    resumed = fit(X, checkpoint=ckpt, **params)
    np.testing.assert_array_equal(resumed.means_, reference.means_)
    np.testing.assert_array_equal(resumed.covariances_, reference.covariances_)
    assert resumed.lower_bounds_ == reference.lower_bounds_


def test_a_settled_near_plain_jump_ends_the_run_and_resumes_bitwise(tmp_path, monkeypatch):
    """An accepted jump of step length at most NEAR_PLAIN tests convergence (here
    the jump of pass 10, alpha 1.05); its step length is kept in the checkpoint,
    so a fit stopped just before that pass resumes to the same end."""
    import daskgmm.acceleration as acceleration

    X = da.from_array(overlapping(3000), chunks=(1000, 4))
    params = dict(covariance_type="diag", accelerate=True, tol=1e-4, max_iter=100)
    reference = fit(X, **params)
    assert reference.converged_ and reference.n_iter_ == 10
    with monkeypatch.context() as m:
        m.setattr(acceleration, "NEAR_PLAIN", 1.0)  # only plain steps test convergence
        assert fit(X, **params).n_iter_ > 10

    ckpt = str(tmp_path / "c.zarr")
    restore = stopped_after(9, monkeypatch)
    with pytest.raises(Stop):
        fit(X, checkpoint=ckpt, **params)
    restore()
    resumed = fit(X, checkpoint=ckpt, **params)
    assert resumed.n_iter_ == 10 and resumed.lower_bounds_ == reference.lower_bounds_
    np.testing.assert_array_equal(resumed.means_, reference.means_)
    np.testing.assert_array_equal(resumed.covariances_, reference.covariances_)


def test_lockstep_initialisations_accelerate_each_as_alone():
    X = da.from_array(overlapping(3000), chunks=(1000, 4))
    common = dict(accelerate=True, init_params="random_from_data", tol=1e-3, max_iter=100)
    together = fit(X, n_init=3, **common)
    rng = np.random.RandomState(0)
    ends = []
    for _ in range(3):  # scikit-learn's loop draws them one after another from random_state
        ends.append(fit(X, n_init=1, **(common | {"random_state": rng})))
    best = max(ends, key=lambda g: g.lower_bound_)
    np.testing.assert_array_equal(together.means_, best.means_)
    assert together.lower_bounds_ == best.lower_bounds_


def test_a_plain_step_is_accepted_though_rounding_lowers_its_bound():
    """At the optimum a plain EM step's bound can fall below the last one by
    rounding; rejecting it would return to the same point for ever (a fit seen
    running to max_iter at its optimum). An extrapolated point that lowers the
    bound is still rejected, and an accepted one ends the run only where its step
    length is near 1."""
    from daskgmm.acceleration import NEAR_PLAIN, Acceleration, next_point

    X, _ = blobs(600, 2, 2, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        p = GaussianMixture(2, max_iter=1, random_state=0).fit(X)._params()
        q = GaussianMixture(2, max_iter=2, random_state=0).fit(X)._params()
    bound = -3.0
    below = np.nextafter(bound, -np.inf)
    plain = Acceleration(q, bound, "plain", p)
    _, state, accepted, converged = next_point(q, below, q, plain, settled=True)
    assert accepted and converged and state.stage == "plain"
    _, state, accepted, converged = next_point(q, below, q, plain, settled=False)
    assert accepted and not converged
    jumped = Acceleration(q, bound, "jump", p, 4.0)
    point, state, accepted, converged = next_point(p, below, q, jumped, settled=True)
    assert not accepted and not converged and point is q and state.stage == "plain"
    assert state.base is p and state.bound == bound and state.step_max == 1.0
    # accepted jumps: convergence is tested on those of step length near 1 only
    above = np.nextafter(bound, np.inf)
    for alpha, ends in ((1.2, True), (NEAR_PLAIN, True), (2.5, False), (None, False)):
        jumped = Acceleration(q, bound, "jump", p, 4.0, alpha)
        point, state, accepted, converged = next_point(p, above, q, jumped, settled=True)
        assert accepted and converged == ends and point is q and state.stage == "plain", alpha
        assert not next_point(p, above, q, jumped, settled=False)[3]


def test_an_accelerated_fit_on_separated_clusters_converges_as_plain_em():
    """Separated clusters: EM is at its optimum after a pass or two, where the old
    rule rejected every plain step whose bound rounding put below the last and ran
    to max_iter (diag: 3 of 3 seeds)."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        labels = rng.integers(8, size=5000)
        X = rng.standard_normal((5000, 16)) + rng.normal(scale=12.0, size=(8, 16))[labels]
        plain = fit(X, n_components=8, covariance_type="diag", max_iter=30)
        fast = fit(X, n_components=8, covariance_type="diag", accelerate=True, max_iter=30)
        assert plain.converged_ and fast.converged_, seed
        assert fast.n_iter_ <= plain.n_iter_ + 1, seed
        assert fast.lower_bound_ >= plain.lower_bound_ - 1e-3, seed


def test_a_damaged_acceleration_state_gives_checkpoint_error(tmp_path, monkeypatch):
    import zarr

    from daskgmm import CheckpointError

    X = overlapping(600)
    ckpt = str(tmp_path / "c.zarr")
    params = dict(accelerate=True, tol=0.0, max_iter=12, checkpoint=ckpt)
    restore = stopped_after(5, monkeypatch)
    with pytest.raises(Stop):
        fit(X, **params)
    restore()
    root = zarr.open_group(ckpt, mode="r+")
    state = root[root.attrs["daskgmm"]["current"]]
    attrs = dict(state.attrs["daskgmm_state"])
    run = attrs["runs"][0]
    assert run["acceleration"]["stage"] in ("plain", "jump")
    for damage in ({"stage": "leap"}, {"step_max": 1e300}, {"step_max": 0.5}, {"bound": None},
                   {"omega": 2.0, "stage": None}, {"stage": "plain", "alpha": 1.2},
                   {"stage": "jump", "alpha": 0.5}, {"stage": "jump", "alpha": "1.2"},
                   {"stage": "jump", "alpha": 1e300}):
        runs = [run | {"acceleration": run["acceleration"] | damage}]
        state.attrs["daskgmm_state"] = attrs | {"runs": runs}
        with pytest.raises(CheckpointError, match="acceleration state of run 0 is malformed"):
            fit(X, **params)
    state.attrs["daskgmm_state"] = attrs
    resumed = fit(X, **params)
    assert resumed.n_iter_ == 12
