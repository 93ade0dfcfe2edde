"""The scikit-learn surface: conventions, return types, validation errors."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from conftest import blobs
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SKGaussianMixture
from sklearn.utils.estimator_checks import check_estimator

from daskgmm import EmptyComponentWarning, GaussianMixture


def test_sklearn_check_estimator():
    results = check_estimator(GaussianMixture(), on_fail=None)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, [(r["check_name"], r["exception"]) for r in failed]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}


def test_same_parameters_as_sklearn():
    ours = set(GaussianMixture().get_params())
    assert set(SKGaussianMixture().get_params()) <= ours
    gm = clone(GaussianMixture(4, covariance_type="diag", tol=1e-4))
    assert gm.get_params()["n_components"] == 4 and gm.covariance_type == "diag"


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_numpy_in_numpy_out_dask_in_dask_out(covariance_type, scheduler):
    X, _ = blobs(600, 3, 3)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert isinstance(gm.predict(X), np.ndarray)
    Xd = da.from_array(X, chunks=(100, 3))
    for method, shape in [("predict", (600,)), ("predict_proba", (600, 3)), ("score_samples", (600,))]:
        lazy = getattr(gm, method)(Xd)
        assert isinstance(lazy, da.Array) and lazy.shape == shape
        np.testing.assert_allclose(lazy.compute(), getattr(gm, method)(X))
    np.testing.assert_allclose(gm.predict_proba(X).sum(1), 1.0)
    labels = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit_predict(Xd)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))
    assert gm.score(Xd) == pytest.approx(gm.score(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_of_attributes_and_outputs_are_sklearn_s(dtype):
    """float32 data give a float32 model and float32 probabilities and densities."""
    X, _ = blobs(600, 3, 3)
    X = X.astype(dtype)
    gm = GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(200, 3)))
    sk = SKGaussianMixture(3, random_state=0).fit(X)
    for name in ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]:
        assert getattr(gm, name).dtype == getattr(sk, name).dtype, name
    for X_in in [X, X.astype(np.float64)]:
        for method in ["predict", "predict_proba", "score_samples"]:
            ours, theirs = getattr(gm, method)(X_in), getattr(sk, method)(X_in)
            assert ours.dtype == theirs.dtype, (method, X_in.dtype)
            lazy = getattr(gm, method)(da.from_array(X_in, chunks=(200, 3)))
            assert lazy.dtype == theirs.dtype and lazy.compute().dtype == theirs.dtype
            np.testing.assert_allclose(lazy.compute(), ours)
    assert isinstance(gm.score(X), float)


@pytest.mark.parametrize("init_params", ["k-means||", "kmeans", "k-means++", "random", "random_from_data"])
def test_init_methods_find_the_clusters(init_params):
    X, truth = blobs(1500, 2, 3, seed=3, sep=10.0)
    gm = GaussianMixture(3, init_params=init_params, random_state=0, n_init=2, max_iter=300).fit(
        da.from_array(X, chunks=(400, 2))
    )
    sk_init = "kmeans" if init_params == "k-means||" else init_params
    sk = SKGaussianMixture(3, init_params=sk_init, random_state=0, n_init=2, max_iter=300).fit(X)
    assert gm.converged_
    assert gm.score(X) == pytest.approx(sk.score(X), abs=1e-3)


def test_small_data_kmeans_init_matches_sklearn_exactly():
    X, _ = blobs(500, 3, 3, seed=11, sep=3.0)
    gm = GaussianMixture(3, init_params="kmeans", random_state=7).fit(X)
    sk = SKGaussianMixture(3, init_params="kmeans", random_state=7).fit(X)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=1e-8)
    assert gm.lower_bounds_ == pytest.approx(sk.lower_bounds_, rel=1e-10)


def test_warm_start_continues_from_previous_fit():
    X, _ = blobs(800, 2, 3, seed=4, sep=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, warm_start=True, max_iter=3, tol=0, random_state=0)
        gm.fit(X)
        gm.fit(X)
        once = GaussianMixture(3, max_iter=6, tol=0, random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, once.means_, rtol=1e-10)


def test_n_init_keeps_the_best_lower_bound():
    X, _ = blobs(800, 2, 4, seed=5, sep=3.0)
    fits = [GaussianMixture(4, init_params="random", random_state=s).fit(X).lower_bound_ for s in range(3)]
    best = GaussianMixture(4, init_params="random", n_init=3, random_state=0).fit(X)
    assert best.lower_bound_ >= min(fits)
    assert best.lower_bound_ == best.lower_bounds_[-1]


def test_verbose_output_is_sklearn_s_and_names_the_initialisation_when_several(capsys):
    import re

    X, _ = blobs(600, 2, 3, seed=5)
    pattern = r"Initialization 0\n(  Iteration \d+\t time lapse [0-9.]+s\t ll change [-0-9.e+inf]+\n)+"
    GaussianMixture(3, random_state=0, verbose=2, verbose_interval=1).fit(X)
    ours = capsys.readouterr().out
    SKGaussianMixture(3, random_state=0, verbose=2, verbose_interval=1).fit(X)
    theirs = capsys.readouterr().out
    for out in (ours, theirs):
        assert re.match(pattern + r"Initialization converged\. time lapse [0-9.]+s\t lower bound -?[0-9.]+\.\n$", out), out
    GaussianMixture(3, n_init=2, random_state=0, verbose=2, verbose_interval=1).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 1\n" in out and "  Iteration 1 (initialization 1)\t" in out
    assert "Initialization 0 converged." in out and "Initialization 1 converged." in out


def test_convergence_warning_and_max_iter_zero():
    X, _ = blobs(300, 2, 2)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixture(2, max_iter=1, tol=0, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = GaussianMixture(2, max_iter=0, random_state=0).fit(X)
    assert gm.n_iter_ == 0 and gm.lower_bounds_ == [] and not gm.converged_


def test_sample_matches_sklearn_shapes_and_statistics():
    X, _ = blobs(2000, 2, 2, seed=6)
    gm = GaussianMixture(2, random_state=0).fit(X)
    Xs, ys = gm.sample(50_000)
    assert Xs.shape == (50_000, 2) and ys.shape == (50_000,)
    np.testing.assert_allclose(Xs[ys == 0].mean(0), gm.means_[0], atol=0.05)
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


# ----------------------------------------------------------------- bad input


def test_not_fitted():
    with pytest.raises(NotFittedError):
        GaussianMixture().predict(np.zeros((3, 2)))


@pytest.mark.parametrize("lazy", [False, True])
def test_nan_or_inf_input(lazy):
    X, _ = blobs(300, 2, 2)
    X[10, 0] = np.inf
    Xin = da.from_array(X, chunks=(100, 2)) if lazy else X
    with pytest.raises(ValueError, match="(?i)(NaN|infinity)"):
        GaussianMixture(2, random_state=0).fit(Xin)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(10), "Expected 2D array"),
        (np.zeros((4, 2, 2)), "Found array with dim 3"),
        (da.zeros(10, chunks=5), r"Expected a 2-D array for X .* 1 dimension"),
        (da.zeros((4, 2, 2), chunks=2), r"Expected a 2-D array for X .* 3 dimension"),
        (da.zeros((4, 2), chunks=2, dtype=complex), "must hold real numbers"),
    ],
)
def test_wrong_dimensions(X, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(1).fit(X)


def test_unknown_chunk_sizes_are_explained():
    X = da.from_array(np.ones((10, 2)), chunks=5)
    X = X[X[:, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        GaussianMixture(1).fit(X)


@pytest.mark.parametrize("lazy", [False, True])
def test_fewer_samples_than_components(lazy):
    X = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.raises(ValueError, match="Expected n_samples >= n_components but got n_components = 5, n_samples = 3"):
        GaussianMixture(5).fit(da.from_array(X) if lazy else X)


@pytest.mark.parametrize("lazy", [False, True])
def test_feature_mismatch_at_predict(lazy):
    gm = GaussianMixture(2, random_state=0).fit(blobs(200, 3, 2)[0])
    X = np.zeros((5, 4))
    with pytest.raises(ValueError, match="X has 4 features, but GaussianMixture is expecting 3 features"):
        gm.predict(da.from_array(X) if lazy else X)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_components=0), "'n_components' parameter .* must be an int in the range"),
        (dict(covariance_type="bogus"), "'covariance_type' parameter"),
        (dict(tol=-1.0), "'tol' parameter"),
        (dict(init_params="nope"), "'init_params' parameter"),
        (dict(persist="sometimes"), "'persist' parameter"),
        (dict(weights_init=[0.5, 0.5, 0.0]),
         r"^The parameter 'weights' should have the shape of \(2,\), but got \(3,\) in weights_init"),
        (dict(weights_init=[0.7, 0.7]),
         r"^The parameter 'weights' should be normalized, .* = 1.40000 in weights_init"),
        (dict(means_init=np.zeros((2, 2))),
         r"^The parameter 'means' should have the shape of \(2, 3\), but got \(2, 2\) in means_init"),
        (dict(precisions_init=np.ones((2, 3))),
         r"^The parameter 'full precision' should have the shape of \(2, 3, 3\), .* precisions_init"),
        (dict(precisions_init=-np.stack([np.eye(3)] * 2)),
         r"^'full precision' should be symmetric, positive-definite: precisions_init\[0\] is not"),
        (dict(covariance_type="diag", precisions_init=-np.ones((2, 3))), "'diag precision' should be positive"),
    ],
)
def test_invalid_parameters_name_the_parameter(params, match):
    kw = dict(n_components=2) | params
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kw).fit(blobs(100, 3, 2)[0])


def test_collapsed_component_is_reported_never_nan():
    """A component started far from all data gets no samples: warned, by index, no NaN."""
    X = np.random.default_rng(0).normal(size=(500, 2))
    means = np.array([[0.0, 0.0], [1e3, 1e3]])
    gm = GaussianMixture(
        2, means_init=means, weights_init=[0.5, 0.5], precisions_init=np.stack([np.eye(2)] * 2), max_iter=5
    )
    with pytest.warns(EmptyComponentWarning, match=r"Component\(s\) 1 received no samples"):
        gm.fit(X)
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_"]:
        assert np.isfinite(getattr(gm, name)).all()
    assert gm.weights_[1] < 1e-10


def test_singular_covariance_without_regularisation_names_component():
    """With the remedies off, scikit-learn's error, naming the component (the
    remedies: tests/test_recovery.py)."""
    X = np.vstack([np.random.default_rng(0).normal(size=(100, 2)), np.ones((50, 2)) * 10])
    with pytest.raises(ValueError, match=r"component\(s\) \d+ is not positive definite after adding reg_covar=0"):
        GaussianMixture(2, reg_covar=0.0, random_state=0, jitter_covar=False,
                        reseed_collapsed=False).fit(X)


def test_integer_and_column_chunked_dask_input():
    X, _ = blobs(600, 4, 2, seed=8)
    Xi = np.round(X * 10).astype(np.int32)
    ref = GaussianMixture(2, random_state=0).fit(Xi.astype(np.float64))
    gm = GaussianMixture(2, random_state=0).fit(da.from_array(Xi, chunks=(100, 2)))  # 2 column chunks
    assert gm.means_.dtype == np.float64
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)  # other row chunks: other sum order
    assert gm.predict(da.from_array(Xi, chunks=(150, 1))).compute().tolist() == ref.predict(Xi).tolist()
