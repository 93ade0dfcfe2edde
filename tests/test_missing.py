"""Missing values (NaN) marginalised by EM: against a naive SciPy loop over rows,
bitwise today's fit without NaN, better than dropping rows or imputing means,
and through chunks, schedulers, n_init, checkpoints, weights and xarray."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from conftest import blobs
from helpers import TYPES, Stop, dense_covariances, random_params, stopped_after
from scipy import stats as ss
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning

from daskgmm import GaussianMixture
from daskgmm.errors import DaskGMMWarning
from daskgmm.params import GMMParams


def holes(X, rate=0.3, seed=0, empty_rows=(7,)):
    """``X`` with entries missing completely at random, and a few rows all NaN."""
    rng = np.random.default_rng(seed)
    X = X.astype(np.float64, copy=True)
    X[rng.random(X.shape) < rate] = np.nan
    X[list(empty_rows)] = np.nan
    return X


def naive_e_step(X, p: GMMParams):
    """Per row (SciPy, observed features only): responsibilities, log-likelihood,
    and per component the filled row and the conditional covariance."""
    covs = dense_covariances(p)
    k, d = p.means.shape
    out = []
    for x in X:
        o = ~np.isnan(x)
        m = ~o
        if not o.any():
            out.append(None)
            continue
        lp = np.array([np.log(p.weights[j]) + ss.multivariate_normal(
            p.means[j][o], covs[j][np.ix_(o, o)]).logpdf(x[o]) for j in range(k)])
        ll = np.logaddexp.reduce(lp)
        filled, cond = [], []
        for j in range(k):
            S = covs[j]
            gain = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
            xh = x.copy()
            xh[m] = p.means[j][m] + gain @ (x[o] - p.means[j][o])
            C = np.zeros((d, d))
            C[np.ix_(m, m)] = S[np.ix_(m, m)] - gain @ S[np.ix_(o, m)]
            filled.append(xh)
            cond.append(C)
        out.append((np.exp(lp - ll), ll, np.array(filled), np.array(cond)))
    return out


def naive_em_iteration(X, p: GMMParams, reg_covar):
    """One EM iteration from ``p`` with the expected statistics, as in
    McLachlan & Peel (2000, ch. 2), and the observed-data lower bound."""
    k, d = p.means.shape
    rows = [r for r in naive_e_step(X, p) if r is not None]
    eps10 = 10 * np.finfo(np.float64).eps
    nk = sum(r[0] for r in rows) + eps10
    means = sum(r[0][:, None] * r[2] for r in rows) / nk[:, None]
    scatter = np.zeros((k, d, d))
    for resp, _, filled, cond in rows:
        diff = filled - means
        scatter += resp[:, None, None] * (np.einsum("ki,kj->kij", diff, diff) + cond)
    full = scatter / nk[:, None, None] + reg_covar * np.eye(d)
    cov = {
        "full": full,
        "tied": scatter.sum(axis=0) / nk.sum() + reg_covar * np.eye(d),
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[p.covariance_type]
    bound = np.mean([r[1] for r in rows])
    return nk / nk.sum(), means, cov, bound


def several_patterns(d=4, n=400, seed=3):
    X = blobs(n=n, d=d, seed=seed)[0]
    return holes(X, rate=0.25, seed=seed, empty_rows=(5, 77))


@pytest.mark.parametrize("far", [False, True], ids=["near", "far"])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_one_iteration_matches_a_naive_loop_over_rows(covariance_type, far):
    """``far``: one mean 3,000 standard deviations from the others, beyond the
    expansions' range: the centred path, as exact."""
    X = several_patterns()
    p = random_params(covariance_type, k=3, d=4)
    if far:
        means = p.means.copy()
        means[2] += 3000.0
        X[X[:, 0] > 2.0] += 3000.0  # some rows go with it
        p = GMMParams(p.weights, means, p.covariances, p.precisions_cholesky, covariance_type)
    assert len({tuple(r) for r in np.isnan(X)}) >= 10  # several missingness patterns
    gm = GaussianMixture(3, covariance_type=covariance_type, weights_init=p.weights,
                         means_init=p.means, precisions_init=p.precisions, max_iter=1,
                         missing="marginalize", reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, DaskGMMWarning))
        gm.fit(X)
    weights, means, cov, bound = naive_em_iteration(X, p, 1e-6)
    np.testing.assert_allclose(gm.weights_, weights, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gm.means_, means, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gm.covariances_, cov, rtol=1e-10, atol=1e-10)
    assert gm.lower_bound_ == pytest.approx(bound, rel=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_predictions_and_impute_use_the_observed_features(covariance_type):
    X = several_patterns(n=120)
    p = random_params(covariance_type, k=3, d=4)
    gm = GaussianMixture(3, covariance_type=covariance_type, missing="marginalize")
    gm._set_params_attributes(p, np.float64)
    gm.n_features_in_ = 4
    gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 1, 0.0
    reference = naive_e_step(X, p)
    resp = gm.predict_proba(X)
    score = gm.score_samples(X)
    imputed = gm.impute(X)
    for i, r in enumerate(reference):
        if r is None:  # nothing observed: the weights, a density of 1, the mixture's mean
            np.testing.assert_allclose(resp[i], p.weights, rtol=1e-12)
            assert score[i] == pytest.approx(0.0, abs=1e-12)
            np.testing.assert_allclose(imputed[i], p.weights @ p.means, rtol=1e-12)
            continue
        np.testing.assert_allclose(resp[i], r[0], rtol=1e-9, atol=1e-12)
        assert score[i] == pytest.approx(r[1], rel=1e-10)
        np.testing.assert_allclose(imputed[i], r[0] @ r[2], rtol=1e-9, atol=1e-10)
    observed = ~np.isnan(X)
    assert np.array_equal(imputed[observed], X[observed])
    np.testing.assert_array_equal(gm.predict(X), resp.argmax(axis=1))
    rows = [r for r in reference if r is not None]
    assert gm.score(X) == pytest.approx(np.mean([r[1] for r in rows]), rel=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_without_nan_marginalize_is_bitwise_the_default(covariance_type):
    X = blobs(n=2000, d=4, seed=2)[0]
    Xd = da.from_array(X, chunks=500)
    a = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(Xd)
    b = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                        missing="marginalize").fit(Xd)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    assert a.lower_bounds_ == b.lower_bounds_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_a_chunk_longer_than_a_sub_block_equals_its_parts(covariance_type, dtype):
    """Past its first rows with NaN, a chunk sets such rows aside before the work
    (compacted sub-blocks) and leaves rows of +inf and -inf (whose sum is NaN
    too) to the count of non-finite rows: the statistics, the counts and the
    worst rows equal those of the chunk cut into pieces that never get there."""
    from daskgmm import kernels
    X = holes(blobs(n=40_000, d=4, seed=5)[0], rate=0.1, seed=5, empty_rows=(3, 30_000))
    X[25_000] = [np.inf, -np.inf, 1.0, 1.0]  # no NaN, yet its features sum to NaN
    X = X.astype(dtype)
    p = random_params(covariance_type, k=3, d=4)
    args = (p.weights, p.means, p.precisions_cholesky, covariance_type)
    with np.errstate(invalid="ignore"):  # the inf row's products
        whole = kernels.chunk_statistics(X, *args, 4, True)[0]
        pieces = [kernels.chunk_statistics(X[i : i + 100], *args, 4, True)[0]
                  for i in range(0, len(X), 100)]
    size = len(whole) - 4 * 5  # then the 4 worst rows: [log-likelihood, 4 features]
    np.testing.assert_allclose(whole[:size], np.sum([q[:size] for q in pieces], axis=0),
                               rtol=2e-5 if dtype == np.float32 else 1e-11)  # float32 sums
    assert whole[2] == 1  # the inf row
    assert whole[4] == np.isnan(X).all(axis=1).sum() >= 2  # rows with every feature missing
    worst = np.concatenate([q[size:].reshape(4, 5) for q in pieces])
    worst = worst[np.argsort(worst[:, 0], kind="stable")[:4]]
    np.testing.assert_array_equal(whole[size:].reshape(4, 5), worst)


@pytest.mark.parametrize("n_features", [3, 12, 70])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_rows_grouped_by_pattern_equal_rows_alone(covariance_type, n_features):
    """The patterns' keys (one integer up to 64 features, bytes beyond) group the
    rows right: a chunk's statistics equal the sum of its rows' taken one by one."""
    from daskgmm import kernels
    rng = np.random.default_rng(n_features)
    X = rng.normal(size=(300, n_features))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[::5] = np.where(np.isnan(X[3]), np.nan, X[::5])  # shared patterns
    p = random_params(covariance_type, k=2, d=n_features)
    args = (p.weights, p.means, p.precisions_cholesky, covariance_type)
    whole = kernels.chunk_statistics(X, *args, 0, True)[0]
    rows = np.sum([kernels.chunk_statistics(x[None], *args, 0, True)[0] for x in X], axis=0)
    np.testing.assert_allclose(whole, rows, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_float32_rows_with_nan_far_from_the_origin_stay_accurate(covariance_type):
    """Means at 1e4 with unit spread: float32 rows with NaN are centred in float64
    before their float32 products, so their statistics (about the means) keep the
    precision of the spread, not of the offset."""
    from daskgmm import kernels
    X = holes(blobs(n=6000, d=4, seed=6)[0], rate=0.2, seed=6, empty_rows=())
    p = random_params(covariance_type, k=3, d=4)
    X += 1e4
    p = GMMParams(p.weights, p.means + 1e4, p.covariances, p.precisions_cholesky,
                  covariance_type)
    X32 = X.astype(np.float32)
    args = (p.weights, p.means, p.precisions_cholesky, covariance_type)
    single = kernels.chunk_statistics(X32, *args, 0, True)[0]
    double = kernels.chunk_statistics(X32.astype(np.float64), *args, 0, True)[0]
    scale = np.abs(double) + np.sqrt(len(X))  # sums of unit-sized values
    assert np.max(np.abs(single - double) / scale) < 1e-5


def test_the_modes_and_the_deprecated_dropna():
    X = several_patterns(n=600)
    with pytest.raises(ValueError, match="missing='marginalize'"):
        GaussianMixture(3, missing="raise").fit(da.from_array(X, chunks=200))
    with pytest.raises(ValueError, match="Input X contains NaN"):  # scikit-learn's check for NumPy
        GaussianMixture(3).fit(X)
    dropped = GaussianMixture(3, missing="drop", random_state=0).fit(X)
    assert np.isfinite(dropped.means_).all()
    assert (dropped.predict(X)[np.isnan(X).any(axis=1)] == -1).all()
    with pytest.warns(FutureWarning, match="dropna is deprecated"):
        alias = GaussianMixture(3, dropna=True, random_state=0).fit(X)
    np.testing.assert_array_equal(alias.means_, dropped.means_)
    with pytest.raises(ValueError, match="not both"):
        GaussianMixture(3, dropna=True, missing="drop").fit(X)
    n_empty = int(np.isnan(X).all(axis=1).sum())
    with pytest.warns(DaskGMMWarning, match=f"^{n_empty} rows of X have every feature missing"):
        GaussianMixture(3, missing="marginalize", random_state=0).fit(X)
    Xi = X.copy()
    Xi[3, 0] = np.inf
    with pytest.raises(ValueError, match="contains infinity.*integrates out NaN only"):
        GaussianMixture(3, missing="marginalize", random_state=0).fit(da.from_array(Xi, chunks=200))
    with pytest.raises(ValueError, match="0 rows with an observed feature"):
        GaussianMixture(1, missing="marginalize", init_params="random").fit(
            da.from_array(np.full((10, 3), np.nan), chunks=5))


@pytest.mark.parametrize("init_params", ["k-means||", "kmeans", "k-means++", "random",
                                         "random_from_data"])
def test_every_initialisation_works_on_rows_with_nan(init_params):
    X, _ = blobs(n=1500, d=4, seed=4)
    Xm = holes(X, rate=0.3, seed=4)  # only about a quarter of the rows are complete
    gm = GaussianMixture(3, init_params=init_params, missing="marginalize", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, DaskGMMWarning))
        gm.fit(da.from_array(Xm, chunks=300))
    assert np.isfinite(gm.means_).all() and np.isfinite(gm.covariances_).all()
    assert np.all(np.diff(gm.lower_bounds_) >= -1e-9)  # EM's bound never decreases


def _matched_errors(gm, means, covs):
    """Errors of the fitted means and covariances against the truth, components
    matched by their means."""
    cost = ((gm.means_[:, None, :] - means[None]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    mean_error = np.sqrt(cost[rows, cols]).sum()
    cov_error = sum(np.linalg.norm(gm.covariances_[r] - covs[c]) for r, c in zip(rows, cols))
    return mean_error, cov_error


def test_marginalised_fit_recovers_the_truth_better_than_dropping_rows_or_imputing_means():
    rng = np.random.default_rng(11)
    k, d, n = 3, 5, 6000
    means = rng.normal(scale=2.5, size=(k, d))
    A = rng.normal(size=(k, d, d)) * 0.5 + np.eye(d)
    covs = A @ A.transpose(0, 2, 1)
    lab = rng.choice(k, size=n, p=[0.5, 0.3, 0.2])
    chol = np.linalg.cholesky(covs)
    X = np.einsum("nde,ne->nd", chol[lab], rng.standard_normal((n, d))) + means[lab]
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.3] = np.nan  # MCAR: 17% of the rows are complete
    Xd = da.from_array(Xm, chunks=1500)
    params = dict(n_init=3, random_state=0, max_iter=300, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, DaskGMMWarning))
        marg = GaussianMixture(k, missing="marginalize", **params).fit(Xd)
        drop = GaussianMixture(k, missing="drop", **params).fit(Xd)
        filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
        mean_imputed = GaussianMixture(k, **params).fit(filled)
    errors = {name: _matched_errors(g, means, covs)
              for name, g in [("marginalize", marg), ("drop", drop), ("mean", mean_imputed)]}
    for other in ("drop", "mean"):
        assert errors["marginalize"][0] < errors[other][0], errors
        assert errors["marginalize"][1] < errors[other][1], errors


def test_chunking_and_schedulers_do_not_change_the_fit(scheduler):
    X = holes(blobs(n=3000, d=4, seed=5)[0], rate=0.2, seed=5, empty_rows=())
    X = X[~np.isnan(X).all(axis=1)]
    fits = [GaussianMixture(3, missing="marginalize", random_state=0).fit(
        da.from_array(X, chunks=c)) for c in (3000, 700)]
    np.testing.assert_allclose(fits[0].means_, fits[1].means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fits[0].covariances_, fits[1].covariances_, rtol=1e-9, atol=1e-9)
    assert fits[0].n_iter_ == fits[1].n_iter_
    Xd = da.from_array(X, chunks=700)
    lazy = fits[1].impute(Xd)  # lazy for Dask input, chunk by chunk
    assert isinstance(lazy, da.Array) and lazy.chunks == Xd.chunks
    np.testing.assert_array_equal(lazy.compute(), fits[1].impute(X))


def test_lockstep_n_init_and_sample_weights_with_missing_values():
    X = holes(blobs(n=900, d=3, seed=6)[0], rate=0.2, seed=6, empty_rows=())
    X = X[~np.isnan(X).all(axis=1)]
    Xd = da.from_array(X, chunks=300)
    many = GaussianMixture(3, n_init=3, missing="marginalize", random_state=0).fit(Xd)
    one = GaussianMixture(3, n_init=1, missing="marginalize", random_state=0).fit(Xd)
    assert many.lower_bound_ >= one.lower_bound_
    # an integer weight w equals w copies of the row, with its holes
    w = np.random.default_rng(6).integers(0, 3, size=len(X))
    start = dict(weights_init=one.weights_, means_init=one.means_, precisions_init=one.precisions_,
                 missing="marginalize", max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, DaskGMMWarning))
        weighted = GaussianMixture(3, **start).fit(Xd, sample_weight=w.astype(float))
        repeated = GaussianMixture(3, **start).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-9, atol=1e-9)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-10)


def test_a_resumed_fit_with_missing_values_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    X = da.from_array(holes(blobs(n=1200, d=3, seed=7)[0], rate=0.25, seed=7), chunks=400)
    params = dict(missing="marginalize", random_state=0, tol=1e-8, max_iter=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, DaskGMMWarning))
        reference = GaussianMixture(3, **params).fit(X)
        restore = stopped_after(4, monkeypatch)
        with pytest.raises(Stop):
            GaussianMixture(3, checkpoint=str(tmp_path / "ck.zarr"), **params).fit(X)
        restore()
        resumed = GaussianMixture(3, checkpoint=str(tmp_path / "ck.zarr"), **params).fit(X)
    np.testing.assert_array_equal(resumed.means_, reference.means_)
    assert resumed.lower_bounds_ == reference.lower_bounds_


def _masked_grid():
    """A 40 x 50 grid of 3 bands, band 1 lost under clouds in 30% of the cells, and
    a mixture fitted to it: ``(model, gapped, cube, cloud)``."""
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(8)
    X, _ = blobs(n=40 * 50, d=3, seed=8)
    cube = xr.Dataset(
        {f"band{b}": (("y", "x"), X[:, b].reshape(40, 50)) for b in range(3)},
        coords={"y": np.arange(40), "x": np.arange(50)},
    ).chunk({"y": 10})
    cloud = rng.random((40, 50)) < 0.3
    gapped = cube.copy()
    gapped["band1"] = cube["band1"].where(~cloud)
    gm = GaussianMixture(3, missing="marginalize", random_state=0).fit(gapped)
    return gm, gapped, cube, cloud


def test_a_masked_xarray_grid_is_fitted_and_its_gaps_filled():
    xr = pytest.importorskip("xarray")
    gm, gapped, cube, cloud = _masked_grid()
    filled = gm.impute(gapped)
    assert isinstance(filled, xr.Dataset) and list(filled.data_vars) == ["band0", "band1", "band2"]
    filled = filled.compute()
    assert not np.isnan(filled["band1"].values).any()
    np.testing.assert_array_equal(filled["band0"].values, cube["band0"].values)
    truth, gaps = cube["band1"].values[cloud], filled["band1"].values[cloud]
    assert np.mean(np.abs(gaps - truth)) < np.mean(np.abs(np.nanmean(truth) - truth))
    labels = gm.predict(gapped)
    assert labels.dims == ("y", "x") and (labels.values >= 0).all()  # every cell labelled


def test_the_command_line_fills_the_gaps_of_an_xarray_store(tmp_path):
    """``daskgmm impute --dataset``: the Dataset comes back as a Dataset store, its
    variables taken in the model's order whatever order the store lists them in."""
    import subprocess
    import sys

    import xarray as xr

    gm, gapped, _, _ = _masked_grid()
    gapped.to_zarr(tmp_path / "cube.zarr", consolidated=False)
    gm.save(tmp_path / "model.zarr")
    done = subprocess.run([sys.executable, "-m", "daskgmm.cli", "impute", tmp_path / "model.zarr",
                           tmp_path / "cube.zarr", "--dataset", "-o", tmp_path / "filled.zarr"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    filled = xr.open_zarr(tmp_path / "filled.zarr", consolidated=False)
    names = ["band0", "band1", "band2"]
    assert sorted(filled.data_vars) == names
    xr.testing.assert_allclose(filled[names].load(), gm.impute(gapped).compute(), rtol=1e-12)


def test_float32_rows_with_missing_values_give_a_float32_model_close_to_float64():
    X = holes(blobs(n=2000, d=3, seed=9)[0], rate=0.2, seed=9, empty_rows=())
    X = X[~np.isnan(X).all(axis=1)]
    fits = [GaussianMixture(3, missing="marginalize", random_state=0).fit(
        da.from_array(X.astype(dtype), chunks=500)) for dtype in (np.float64, np.float32)]
    assert fits[1].means_.dtype == np.float32
    np.testing.assert_allclose(fits[1].means_, fits[0].means_, rtol=1e-4, atol=1e-4)
    assert fits[1].lower_bound_ == pytest.approx(fits[0].lower_bound_, rel=1e-5)


def test_the_command_line_fits_with_missing_values_and_the_model_keeps_the_choice(tmp_path):
    """The commands run by their ``main`` in this process (as processes of their
    own: the xarray test above, and tests/test_cli.py)."""
    import zarr
    from helpers import run_cli_in_process

    import daskgmm

    X = holes(blobs(n=3000, d=3, seed=10)[0], rate=0.2, seed=10)
    da.from_array(X, chunks=(1000, 3)).to_zarr(str(tmp_path / "data.zarr"))

    def run(*args):
        done = run_cli_in_process(*args)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    refused = run_cli_in_process("fit", tmp_path / "data.zarr", "-k", "3")
    assert refused.returncode == 2 and "missing='marginalize'" in refused.stderr
    run("fit", tmp_path / "data.zarr", "-k", 3, "--random-state", 0, "--missing", "marginalize",
        "-o", tmp_path / "model.zarr")
    model = daskgmm.load(tmp_path / "model.zarr")
    assert model.missing == "marginalize"
    run("predict", tmp_path / "model.zarr", tmp_path / "data.zarr", "-o", tmp_path / "labels.zarr")
    labels = zarr.open_array(str(tmp_path / "labels.zarr"))[:]
    np.testing.assert_array_equal(labels, model.predict(X))
    assert (labels >= 0).all()  # every row labelled from what it has
    filled = tmp_path / "filled.zarr"
    run("impute", tmp_path / "model.zarr", tmp_path / "data.zarr", "-o", filled)
    np.testing.assert_allclose(zarr.open_array(str(filled))[:], model.impute(X), rtol=1e-12)
    assert not np.isnan(zarr.open_array(str(filled))[:]).any()
    again = run_cli_in_process("impute", tmp_path / "model.zarr", tmp_path / "data.zarr",
                               "-o", filled)
    assert again.returncode == 2 and "holds daskgmm imputed" in again.stderr
    run("impute", tmp_path / "model.zarr", tmp_path / "data.zarr", "-o", filled, "--overwrite")
    onto_input = run_cli_in_process("impute", tmp_path / "model.zarr", tmp_path / "data.zarr",
                                    "-o", tmp_path / "data.zarr", "--overwrite")
    assert onto_input.returncode == 2 and "input" in onto_input.stderr
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "data.zarr"))[:], X)  # intact
