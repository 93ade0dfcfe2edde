"""GaussianMixtureSearch: each model as fitted alone, one read per pass, scores as scikit-learn's."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from conftest import blobs
from helpers import ChunkReads, Stop, kill_at_iteration, stopped_after
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import daskgmm
from daskgmm import CheckpointError, CheckpointMismatchError, GaussianMixture, GaussianMixtureSearch
from daskgmm.weights import held_out_rows

TYPES = ["full", "tied", "diag", "spherical"]
# K_max / K is exact for these: the oversampling of a model alone is the search's exactly
KS = (1, 2, 4)
FIT = dict(random_state=0, max_iter=40)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", daskgmm.ConvergenceWarning)
        return fn(*args, **kwargs)


def alone(X, k, covariance_type, k_max=max(KS), oversampling=2.0, sample_weight=None,
          init_params="k-means||", **params):
    """The model of a search fitted alone (see GaussianMixtureSearch), from the
    search's default start unless told."""
    return quiet(GaussianMixture(k, covariance_type=covariance_type, init_params=init_params,
                                 init_oversampling=oversampling * k_max / k, **FIT,
                                 **params).fit, X, sample_weight=sample_weight)


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns="seconds")


@pytest.fixture(scope="module")
def X():
    return blobs(1500, 3, 3, seed=2, sep=4.0)[0]


def test_every_model_ends_bitwise_where_it_ends_alone(scheduler, X):
    dX = da.from_array(X, chunks=(400, 3))
    search = quiet(GaussianMixtureSearch(KS, "all", n_init=2, **FIT).fit, dX)
    table = search.results_
    assert len(table) == len(KS) * 4 * 2
    assert list(table.columns) == [
        "n_components", "covariance_type", "init", "n_iter", "converged", "lower_bound",
        "log_likelihood", "bic", "aic", "n_parameters", "seconds", "kept"]
    for (k, t), rows in table.groupby(["n_components", "covariance_type"]):
        gm = alone(dX, k, t, n_init=2)
        kept = rows[rows["kept"]].iloc[0]
        assert kept["n_iter"] == gm.n_iter_ and kept["lower_bound"] == gm.lower_bound_, (k, t)
        assert kept["bic"] == pytest.approx(gm.bic(dX), rel=1e-12)
        assert kept["aic"] == pytest.approx(gm.aic(dX), rel=1e-12)
        assert kept["n_parameters"] == gm._n_parameters()
        if search.best_params_ == {"n_components": k, "covariance_type": t}:
            best = search.best_estimator_
            for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
                np.testing.assert_array_equal(getattr(best, name), getattr(gm, name))
            assert best.lower_bounds_ == gm.lower_bounds_
    # the best is the lowest BIC among the runs the models keep
    kept = table[table["kept"]]
    assert search.best_index_ == kept["bic"].idxmin()
    np.testing.assert_array_equal(search.predict(X), search.best_estimator_.predict(X))
    assert search.score(X) == search.best_estimator_.score(X)


@pytest.mark.parametrize("init_params", ["kmeans", "random", "k-means++", "random_from_data"])
def test_every_start_gives_each_model_as_alone_and_kmeans_and_random_share_their_pass(
        X, init_params):
    reads = ChunkReads(X, (400, 3))
    params = dict(init_params=init_params, persist=False, **FIT)
    with dask.config.set(scheduler="threads"):
        search = quiet(GaussianMixtureSearch((1, 3), ("full", "diag"), **params).fit,
                       reads.array)
        searched = reads.count
        for row in search.results_.itertuples():
            gm = quiet(GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                       **params).fit, reads.source)
            assert (row.n_iter, row.lower_bound) == (gm.n_iter_, gm.lower_bound_)
    # 'kmeans': a sample (reads every chunk) and one pass; 'random': the chunks of its
    # first 1,024 rows and one pass; for all four models together. Then the longest fit
    # and the scoring pass.
    if init_params in ("kmeans", "random"):
        n_chunks = reads.source.numblocks[0]
        start = {"kmeans": n_chunks, "random": -(-1024 // 400)}[init_params]
        assert searched == start + n_chunks * (1 + search.results_["n_iter"].max() + 1)


def test_sampled_kmeans_starts_of_a_search_are_each_models_own(X, monkeypatch):
    """Where 'kmeans' clusters a sample, its size grows with the components; the
    search draws once, and each model's sample (a subset of the largest) is the
    one that it draws alone."""
    import daskgmm.init as init
    import daskgmm.sampling as sampling

    monkeypatch.setattr(sampling, "EXACT_ROWS", 1000)
    monkeypatch.setattr(sampling, "SAMPLE_MIN_ROWS", 400)
    monkeypatch.setattr(sampling, "SAMPLE_ROWS_PER_COMPONENT", 250)
    seen = []
    centers = init._kmeans_centers

    def spy(rows, w, k, rs, sampled):
        seen.append((k, rows, sampled))
        return centers(rows, w, k, rs, sampled)

    monkeypatch.setattr(init, "_kmeans_centers", spy)
    dX = da.from_array(X, chunks=(400, 3))
    params = dict(init_params="kmeans", persist=False, **FIT)
    search = quiet(GaussianMixtureSearch((1, 3), ("full", "diag"), **params).fit, dX)
    searched = {k: rows for k, rows, _ in seen}
    assert {(k, len(rows), sampled) for k, rows, sampled in seen} == {(1, 400, True),
                                                                       (3, 750, True)}
    for row in search.results_.itertuples():
        seen.clear()
        gm = quiet(GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                   **params).fit, dX)
        np.testing.assert_array_equal(seen[0][1], searched[row.n_components])
        assert (row.n_iter, row.lower_bound) == (gm.n_iter_, gm.lower_bound_)


@pytest.mark.parametrize("held_out", [None, 0.1])
def test_the_search_reads_the_data_once_per_pass_for_all_models(held_out):
    """k-means|| (5 rounds, the weighting, one Lloyd step, the start: 8 passes, and one
    chunk for the first centre) + the longest fit's iterations + one scoring pass; the
    held-out rows are chosen without a read."""
    X, _ = blobs(2000, 3, 3)
    reads = ChunkReads(X, (500, 3))
    with dask.config.set(scheduler="threads"):
        search = quiet(GaussianMixtureSearch(range(1, 11), "all", random_state=0,
                                             held_out=held_out, persist=False).fit,
                       reads.array)
    n_chunks = reads.source.numblocks[0]
    longest = int(search.results_["n_iter"].max())
    assert reads.count == n_chunks * (8 + longest + 1) + 1
    # 40 separate fits would read 40 k-means|| and the sum of the iterations
    assert search.results_["n_iter"].sum() > 5 * longest


def test_bic_table_equals_scikit_learn_on_iris():
    X = load_iris().data
    search = quiet(GaussianMixtureSearch(range(1, 5), "all", init_params="kmeans",
                                         random_state=0).fit, X)
    for _, row in search.results_.iterrows():
        sk = quiet(SkGaussianMixture(int(row["n_components"]),
                                     covariance_type=row["covariance_type"],
                                     init_params="kmeans", random_state=0).fit, X)
        assert row["n_iter"] == sk.n_iter_
        assert row["bic"] == pytest.approx(sk.bic(X), rel=1e-8, abs=1e-8)
        assert row["aic"] == pytest.approx(sk.aic(X), rel=1e-8, abs=1e-8)


def test_held_out_rows_are_chunk_invariant_and_scored_as_alone(X):
    a = held_out_rows(da.from_array(X, chunks=(400, 3)), 0.2).compute()
    b = held_out_rows(da.from_array(X, chunks=(1000, 3)), 0.2).compute()
    np.testing.assert_array_equal(a, b)
    assert 0.15 < a.mean() < 0.25
    held = a[:, 0] == 1
    dX = da.from_array(X, chunks=(400, 3))
    with dask.config.set(scheduler="threads"):
        search = quiet(GaussianMixtureSearch((1, 2, 4), ("full", "diag"), held_out=0.2,
                                             criterion="held_out", **FIT).fit, dX)
        table = search.results_
        for _, row in table.iterrows():
            k, t = int(row["n_components"]), row["covariance_type"]
            gm = alone(dX, k, t, sample_weight=1.0 - a[:, 0])
            assert row["lower_bound"] == gm.lower_bound_
            assert row["held_out_log_likelihood"] == pytest.approx(gm.score(X[held]), rel=1e-12)
            assert row["bic"] == pytest.approx(gm.bic(X[~held]), rel=1e-12)
    assert search.best_index_ == table["held_out_log_likelihood"].idxmax()


def test_a_stopped_search_resumes_bitwise_and_a_finished_one_reads_no_em_pass(
        tmp_path, X, monkeypatch):
    dX = da.from_array(X, chunks=(400, 3))
    params = dict(n_components=(1, 3), covariance_type=("full", "spherical"), n_init=2, **FIT)
    with dask.config.set(scheduler="threads"):
        whole = quiet(GaussianMixtureSearch(**params).fit, dX)
        ckpt = tmp_path / "search.zarr"
        restore = stopped_after(3, monkeypatch)
        with pytest.raises(Stop):
            quiet(GaussianMixtureSearch(**params, checkpoint=str(ckpt)).fit, dX)
        restore()
        info = daskgmm.inspect(ckpt)
        assert info["kind"] == "search checkpoint" and info["status"] == "running"
        assert info["n_iter"] == 2
        resumed = quiet(GaussianMixtureSearch(**params, checkpoint=str(ckpt)).fit, dX)
        pd.testing.assert_frame_equal(comparable(resumed.results_), comparable(whole.results_))
        np.testing.assert_array_equal(resumed.best_estimator_.means_, whole.best_estimator_.means_)
        # finished: the table comes from the checkpoint, after one pass of digests
        stopped_after(1, monkeypatch)
        again = quiet(GaussianMixtureSearch(**params, checkpoint=str(ckpt)).fit, dX)
        pd.testing.assert_frame_equal(comparable(again.results_), comparable(whole.results_))
        # another grid, or a single model, is not this search's
        with pytest.raises(CheckpointMismatchError, match="belongs to a different fit"):
            GaussianMixtureSearch(**(params | {"n_components": (1, 2)}),
                                  checkpoint=str(ckpt)).fit(dX)
        with pytest.raises(CheckpointMismatchError):
            GaussianMixture(3, checkpoint=str(ckpt)).fit(dX)
    with pytest.raises(CheckpointError, match="checkpoint of a model search"):
        daskgmm.load(ckpt)


def test_parameters_are_checked():
    X = blobs(200, 2, 2)[0]
    with pytest.raises(ValueError, match="criterion='held_out' needs held_out"):
        GaussianMixtureSearch(2, criterion="held_out").fit(X)
    with pytest.raises(ValueError, match="'n_components' parameter of GaussianMixtureSearch"):
        GaussianMixtureSearch([2, 0]).fit(X)
    with pytest.raises(ValueError, match="'covariance_type' parameter of GaussianMixtureSearch"):
        GaussianMixtureSearch(2, ["full", "round"]).fit(X)
    with pytest.raises(ValueError, match="n_components = 300 .the largest of the search."):
        GaussianMixtureSearch([2, 300]).fit(X)
    with pytest.raises(ValueError, match="held_out=1e-09 leaves no row out of the 200 rows"):
        GaussianMixtureSearch(2, held_out=1e-9).fit(X)
    with pytest.raises(TypeError):
        GaussianMixtureSearch(2, means_init=[[0, 0], [1, 1]])
    search = GaussianMixtureSearch(range(1, 3), "diag", tol=1e-4)
    assert clone(search).get_params() == search.get_params()


WORKER_CLI = [sys.executable, "-m", "daskgmm.cli", "-q", "search"]


def test_cli_search_killed_and_run_again_ends_with_the_uninterrupted_table(tmp_path):
    X = blobs(6000, 3, 4, seed=1, sep=2.5)[0]
    data = tmp_path / "data.zarr"
    da.from_array(X, chunks=(700, 3)).to_zarr(str(data))
    args = [str(data), "-k", "1-4", "--covariance-type", "full", "diag", "--random-state", "0",
            "--tol", "0", "--max-iter", "30", "--held-out", "0.1"]
    ckpt, results, model = tmp_path / "s.zarr", tmp_path / "results.csv", tmp_path / "best.zarr"
    proc = subprocess.Popen([*WORKER_CLI, *args, "--checkpoint", str(ckpt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    kill_at_iteration(proc, ckpt, 3, what="the search", poll=0.05)
    killed_at = daskgmm.inspect(ckpt)["n_iter"]
    assert 3 <= killed_at < 30
    done = subprocess.run([*WORKER_CLI, *args, "--checkpoint", str(ckpt), "--results",
                           str(results), "-o", str(model)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    resumed = pd.read_csv(results)
    with dask.config.set(scheduler="threads"):
        whole = quiet(GaussianMixtureSearch((1, 2, 3, 4), ("full", "diag"), random_state=0,
                                            tol=0.0, max_iter=30, held_out=0.1).fit,
                      str(data))
    expected = comparable(whole.results_)
    pd.testing.assert_frame_equal(comparable(resumed), expected, check_exact=True)
    assert summary["best"] == whole.best_params_
    np.testing.assert_array_equal(daskgmm.load(model).means_, whole.best_estimator_.means_)


def test_cli_search_never_writes_over_an_existing_results_file(tmp_path):
    data = tmp_path / "data.zarr"
    da.from_array(blobs(500, 2, 2)[0], chunks=(250, 2)).to_zarr(str(data))
    sentinel = tmp_path / "notes.csv"
    sentinel.write_text("mine\n")
    from daskgmm.cli import main

    assert main(["-q", "search", str(data), "-k", "1-2", "--results", str(sentinel)]) == 2
    assert sentinel.read_text() == "mine\n"
    assert main(["-q", "search", str(data), "-k", "1-2", "--results", str(data)]) == 2
    assert pathlib.Path(data, "zarr.json").exists()


def test_missing_values_and_xarray_input_are_searched_as_fitted_alone(X):
    import xarray as xr

    gapped = X.copy()
    gapped[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    empty = np.isnan(gapped).all(axis=1)
    gapped[empty, 0] = X[empty, 0]  # every row keeps an observed feature
    params = dict(missing="marginalize")
    with dask.config.set(scheduler="threads"):
        search = quiet(GaussianMixtureSearch((2, 4), ("full", "diag"), **params, **FIT).fit,
                       gapped)
        for row in search.results_.itertuples():
            gm = alone(gapped, row.n_components, row.covariance_type, **params)
            assert (row.n_iter, row.lower_bound) == (gm.n_iter_, gm.lower_bound_)
            assert row.bic == pytest.approx(gm.bic(gapped), rel=1e-12)
        cube = xr.DataArray(X.reshape(30, 50, 3), dims=("y", "x", "band"))
        search = quiet(GaussianMixtureSearch((1, 3), "diag", feature_dim="band", **FIT).fit, cube)
        labels = search.predict(cube)
    assert labels.dims == ("y", "x")
    np.testing.assert_array_equal(labels.values.ravel(), search.best_estimator_.predict(X))


def test_a_search_never_writes_over_what_it_did_not_write(tmp_path, X):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(daskgmm.UnsafePathError, match="checkpoint"):
        GaussianMixtureSearch((1, 2), "diag", checkpoint=str(notes)).fit(X)
    with pytest.raises(daskgmm.UnsafePathError, match="checkpoint"):
        GaussianMixtureSearch((1, 2), "diag", checkpoint=str(notes),
                              checkpoint_overwrite=True).fit(X)
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]
    assert (notes / "todo.txt").read_text() == "mine"
