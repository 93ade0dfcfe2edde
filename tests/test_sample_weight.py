"""Sample weights: the invariants that define them, and clear errors for bad ones."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import blobs
from helpers import TYPES

from daskgmm import CheckpointMismatchError, GaussianMixture

# fits of a fixed number of iterations (tol=0) end without converging, on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _start(X, covariance_type, k=3):
    """Initial parameters as estimator arguments, so that two fits start alike."""
    s = GaussianMixture(k, covariance_type=covariance_type, random_state=0, max_iter=0).fit(X)
    return dict(weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_)


def _assert_same_model(a, b, rtol):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)


@pytest.mark.parametrize("constant", [1.0, 10.0, 100.0])
def test_constant_weights_give_the_model_of_no_weights(constant, scheduler):
    X = da.from_array(blobs(900, 3, 3)[0], chunks=200)
    plain = GaussianMixture(3, random_state=0).fit(X)
    weighted = GaussianMixture(3, random_state=0).fit(X, sample_weight=np.full(900, constant))
    _assert_same_model(weighted, plain, rtol=0)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type, scheduler):
    X = blobs(600, 3, 3, seed=1)[0]
    w = np.random.default_rng(0).integers(0, 4, size=600)
    kw = dict(covariance_type=covariance_type, max_iter=15, tol=0, **_start(X, covariance_type))
    weighted = GaussianMixture(3, **kw).fit(da.from_array(X, chunks=130), sample_weight=w)
    repeated = GaussianMixture(3, **kw).fit(np.repeat(X, w, axis=0))
    _assert_same_model(weighted, repeated, rtol=1e-10)
    Xr = np.repeat(X, w, axis=0)
    assert weighted.score(X, sample_weight=w) == pytest.approx(repeated.score(Xr), rel=1e-12)
    assert weighted.bic(X, sample_weight=w) == pytest.approx(repeated.bic(Xr), rel=1e-12)
    assert weighted.aic(X, sample_weight=w) == pytest.approx(repeated.aic(Xr), rel=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_zero_weights_equal_rows_left_out(covariance_type, scheduler):
    X = blobs(600, 3, 3, seed=2)[0]
    keep = np.random.default_rng(1).random(600) < 0.7
    kw = dict(covariance_type=covariance_type, max_iter=15, tol=0, **_start(X, covariance_type))
    weighted = GaussianMixture(3, **kw).fit(X, sample_weight=keep.astype(float))
    kept = GaussianMixture(3, **kw).fit(X[keep])
    _assert_same_model(weighted, kept, rtol=1e-10)


def test_weights_do_not_depend_on_the_chunking(scheduler):
    X = blobs(1000, 3, 3, seed=3)[0]
    w = np.random.default_rng(2).gamma(2.0, size=1000)
    fits = [
        GaussianMixture(3, random_state=0, tol=0, max_iter=10).fit(
            da.from_array(X, chunks=(chunks, 3)), sample_weight=da.from_array(w, chunks=wchunks)
        )
        for chunks, wchunks in [(1000, 1000), (97, 333), ((0, 400, 0, 600), 250)]
    ]
    for other in fits[1:]:
        _assert_same_model(other, fits[0], rtol=1e-10)


def test_zero_weight_cluster_gets_no_component():
    """k-means|| draws in proportion to the weights: a cluster of weight zero is ignored."""
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 50.0]])
    lab = rng.integers(3, size=3000)
    X = centres[lab] + rng.normal(size=(3000, 2))
    gm = GaussianMixture(2, random_state=0).fit(X, sample_weight=(lab != 2).astype(float))
    np.testing.assert_allclose(np.sort(gm.means_[:, 0]), [0.0, 10.0], atol=0.2)
    assert np.all(np.abs(gm.means_[:, 1]) < 0.2)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_initialisation_takes_weights(init_params):
    X = blobs(600, 3, 3, seed=5)[0]
    w = np.random.default_rng(3).integers(1, 5, size=600).astype(float)
    gm = GaussianMixture(3, init_params=init_params, random_state=0).fit(X, sample_weight=w)
    assert np.isfinite(gm.lower_bound_) and gm.converged_


def test_lockstep_initialisations_with_weights():
    X = da.from_array(blobs(900, 3, 3, seed=6)[0], chunks=300)
    w = np.random.default_rng(5).integers(0, 3, size=900)
    one = GaussianMixture(3, random_state=1).fit(X, sample_weight=w)
    three = GaussianMixture(3, n_init=3, random_state=1).fit(X, sample_weight=w)
    assert three.lower_bound_ >= one.lower_bound_ - 1e-12


@pytest.mark.parametrize(
    "weights, message",
    [
        (-np.ones(300), r"sample_weight must be non-negative: 300 value\(s\) are negative"),
        (np.r_[np.ones(299), np.nan], r"sample_weight must be finite: 1 value\(s\) are NaN"),
        (np.r_[np.ones(299), np.inf], r"sample_weight must be finite"),
        (np.ones(299), r"sample_weight must hold one weight per row of X: expected shape \(300,\)"),
        (np.ones((300, 2)), r"sample_weight must hold one weight per row of X"),
        (np.zeros(300), "sample_weight is zero for every row"),
        (np.array(["a"] * 300), "sample_weight must hold real numbers"),
    ],
)
def test_bad_weights_get_an_error_naming_sample_weight(weights, message):
    X = blobs(300, 2, 2)[0]
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(X, sample_weight=weights)
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(da.from_array(X, chunks=100), sample_weight=da.from_array(weights))


def test_a_checkpoint_of_other_weights_is_refused(tmp_path):
    X = da.from_array(blobs(600, 3, 3)[0], chunks=200)
    w = np.random.default_rng(6).integers(1, 3, size=600).astype(float)
    path = tmp_path / "ckpt.zarr"
    a = GaussianMixture(3, random_state=0, checkpoint=str(path)).fit(X, sample_weight=w)
    b = GaussianMixture(3, random_state=0, checkpoint=str(path)).fit(X, sample_weight=w)
    np.testing.assert_array_equal(a.means_, b.means_)
    w[10] += 1.0
    with pytest.raises(CheckpointMismatchError, match="sample_weight"):
        GaussianMixture(3, random_state=0, checkpoint=str(path)).fit(X, sample_weight=w)


def test_xarray_weights_as_a_dataarray_or_a_dataset_variable():
    rng = np.random.default_rng(7)
    X, _ = blobs(20 * 30, 2, 2, seed=7)
    w = rng.integers(1, 4, size=600).astype(float)
    cube = xr.DataArray(X.reshape(20, 30, 2), dims=("y", "x", "band")).chunk({"y": 7, "x": 11})
    weights = xr.DataArray(w.reshape(20, 30), dims=("y", "x")).chunk({"y": 5})
    a = GaussianMixture(2, feature_dim="band", random_state=0).fit(cube, sample_weight=weights)
    ds = xr.Dataset({"b0": cube[..., 0], "b1": cube[..., 1], "w": weights.transpose("x", "y")})
    b = GaussianMixture(2, random_state=0).fit(ds, sample_weight="w")
    assert b.n_features_in_ == 2 and list(b.feature_names_in_) == ["b0", "b1"]
    _assert_same_model(a, b, rtol=1e-10)
    with pytest.raises(ValueError, match="sample_weight must be over the sample dimensions"):
        GaussianMixture(2, feature_dim="band").fit(cube, sample_weight=weights.rename(x="z"))
