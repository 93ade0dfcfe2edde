"""The command-line program, run as a user runs it, on real Zarr data on disk."""

from __future__ import annotations

import json
import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
import zarr
from conftest import blobs

import daskgmm


def run(*args, check=True, timeout=300):
    done = subprocess.run(
        [sys.executable, "-m", "daskgmm.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    X, _ = blobs(6000, 3, 3, seed=4)
    da.from_array(X, chunks=(1000, 3)).to_zarr(str(root / "data.zarr"))
    return X, root


def test_fit_inspect_predict(data, tmp_path):
    X, root = data
    model, ckpt, labels = tmp_path / "model.zarr", tmp_path / "ckpt.zarr", tmp_path / "labels.zarr"
    done = run("fit", root / "data.zarr", "-k", 3, "--random-state", 0, "--checkpoint", ckpt, "-o", model)
    summary = json.loads(done.stdout)
    assert summary["converged"] and summary["model"] == str(model)
    # progress: one line per iteration with the lower bound, its change and the time
    assert "iteration 1  lower bound" in done.stderr and " s\n" in done.stderr
    same = daskgmm.GaussianMixture(3, random_state=0).fit(da.from_zarr(str(root / "data.zarr")))
    np.testing.assert_array_equal(daskgmm.load(model).means_, same.means_)

    shown = run("inspect", model).stdout
    assert "daskgmm model" in shown and "fitted" in shown and "means:" in shown
    info = json.loads(run("inspect", ckpt, "--json").stdout)
    assert info["kind"] == "checkpoint" and info["status"] == "done"

    run("predict", model, root / "data.zarr", "-o", labels)
    np.testing.assert_array_equal(zarr.open_array(str(labels))[:], same.predict(X))
    again = run("predict", model, root / "data.zarr", "-o", labels, check=False)
    assert again.returncode == 2 and "holds daskgmm labels; pass --overwrite" in again.stderr
    run("predict", model, root / "data.zarr", "-o", tmp_path / "p.zarr", "--proba")
    np.testing.assert_allclose(zarr.open_array(str(tmp_path / "p.zarr"))[:], same.predict_proba(X))


def test_fit_on_a_local_cluster_gives_the_threaded_model(data, tmp_path):
    _, root = data
    for cluster in ["threads", "local"]:
        run("-q", "fit", root / "data.zarr", "-k", 3, "--random-state", 1, "--cluster", cluster,
            "--n-workers", 2, "-o", tmp_path / f"{cluster}.zarr")
    a, b = daskgmm.load(tmp_path / "threads.zarr"), daskgmm.load(tmp_path / "local.zarr")
    np.testing.assert_array_equal(a.means_, b.means_)


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "missing.zarr", "-k", "2"], "no Zarr array or group at missing.zarr"),
        (["fit", "{data}", "-k", "0"], "expected a positive integer, got 0"),
        (["fit", "{data}", "-k", "2", "--cluster", "moon"], "cluster must be one of"),
        (["fit", "{data}", "-k", "2", "--cluster", "local", "--cluster-config", "nope.yaml"],
         "cluster config file not found"),
        (["fit", "{data}", "-k", "2", "--covariance-type", "round"], "invalid choice: 'round'"),
        (["predict", "missing-model.zarr", "{data}", "-o", "x.zarr"], "no daskgmm checkpoint or model"),
        (["inspect", "{data}"], "not a daskgmm checkpoint or model"),
        (["fit", "{data}", "-k", "20000"], "n_samples >= n_components"),
    ],
)
def test_bad_arguments_give_one_clear_line_and_a_nonzero_exit(data, args, message):
    _, root = data
    done = run(*[a.format(data=root / "data.zarr") for a in args], check=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1


@pytest.mark.parametrize("command", [[], ["fit"], ["predict"], ["inspect"], ["demo"]])
def test_help_everywhere(command):
    done = run(*command, "--help")
    assert "usage: daskgmm" in done.stdout


def test_demo_runs_on_threads():
    done = run("demo", "--cluster", "threads", "--n-samples", "20000")
    assert "adjusted Rand index against the true components: 1.0000" in done.stdout


def test_fit_with_sample_weights_from_a_zarr_array_or_a_store_variable(data, tmp_path):
    X, root = data
    w = np.random.default_rng(0).integers(1, 4, size=len(X)).astype(float)
    da.from_array(w, chunks=700).to_zarr(str(tmp_path / "w.zarr"))
    done = run("fit", root / "data.zarr", "-k", 3, "--random-state", 0, "--sample-weight",
               tmp_path / "w.zarr", "-o", tmp_path / "a.zarr")
    want = daskgmm.GaussianMixture(3, random_state=0).fit(X, sample_weight=w)
    assert json.loads(done.stdout)["lower_bound"] == pytest.approx(want.lower_bound_, rel=1e-12)
    import xarray as xr

    ds = xr.Dataset({"a": ("row", X[:, 0]), "b": ("row", X[:, 1]), "c": ("row", X[:, 2]),
                     "w": ("row", w)}).chunk({"row": 1000})
    ds.to_zarr(tmp_path / "ds.zarr", consolidated=False)
    done = run("fit", tmp_path / "ds.zarr", "--dataset", "-k", 3, "--random-state", 0,
               "--sample-weight", "w", "-o", tmp_path / "b.zarr")
    b = daskgmm.load(tmp_path / "b.zarr")
    assert b.n_features_in_ == 3
    assert json.loads(done.stdout)["lower_bound"] == pytest.approx(want.lower_bound_, rel=1e-10)
    bad = run("fit", root / "data.zarr", "-k", 3, "--sample-weight", tmp_path / "nothing.zarr",
              check=False)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].startswith("daskgmm: error: sample_weight=")


def test_quiet_silences_convergence_warnings(data, tmp_path):
    X, root = data
    loud = run("fit", root / "data.zarr", "-k", 3, "--max-iter", 1, "--random-state", 0)
    assert "ConvergenceWarning" in loud.stderr
    quiet = run("-q", "fit", root / "data.zarr", "-k", 3, "--max-iter", 1, "--random-state", 0)
    assert quiet.returncode == 0 and quiet.stderr == ""
