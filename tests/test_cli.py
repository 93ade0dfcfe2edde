"""The command-line program, run as a user runs it, on real Zarr data on disk."""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
import time

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
    assert info["kind"] == "checkpoint" and info["status"] == "done" and info["chunk_digests"]
    assert "chunk digests:       recorded" in run("inspect", ckpt).stdout

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


def test_the_package_and_the_command_line_import_the_heavy_libraries_only_when_used():
    """``import daskgmm`` and the parser (``--help``, option errors) leave out
    scikit-learn, Dask, Zarr and the compiled kernels: they are imported on first use."""
    heavy = ["sklearn", "dask", "distributed", "zarr", "xarray", "numba", "scipy"]
    check = (
        "import sys, daskgmm, daskgmm.cli; daskgmm.cli.build_parser(); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
    # every public name resolves, and the names imported on first use are the public ones
    assert sorted(daskgmm.__all__) == sorted([*daskgmm._WHERE, "__version__"])
    assert all(getattr(daskgmm, name) is not None for name in daskgmm.__all__)


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


def _start(*command):
    """A real process in its own group (killed with everything it started)."""
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _kill(proc):
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def _scheduler_and_worker(port):
    bin_dir = pathlib.Path(sys.executable).parent
    scheduler = _start(str(bin_dir / "dask"), "scheduler", "--port", str(port), "--no-dashboard")
    worker = _start(str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                    "--no-dashboard")
    try:
        yield scheduler
    finally:
        _kill(worker)
        _kill(scheduler)


@pytest.mark.slow
def test_a_lost_scheduler_ends_the_fit_with_one_line_and_the_checkpoint_resumes(tmp_path):
    import socket

    X, _ = blobs(20_000, 4, 4, seed=2, sep=2.0)
    da.from_array(X, chunks=(5000, 4)).to_zarr(str(tmp_path / "data.zarr"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ckpt, model = tmp_path / "ckpt.zarr", tmp_path / "model.zarr"
    command = [sys.executable, "-m", "daskgmm.cli", "fit", str(tmp_path / "data.zarr"), "-k", "4",
               "--random-state", "0", "--tol", "0", "--max-iter", "30", "--wait", "60",
               "--cluster", f"tcp://127.0.0.1:{port}", "--checkpoint", str(ckpt), "-o", str(model)]
    with _scheduler_and_worker(port) as scheduler:
        fit = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and fit.poll() is None:
            with contextlib.suppress(daskgmm.CheckpointError):
                if daskgmm.inspect(ckpt)["n_iter"] >= 3:
                    break
            time.sleep(0.1)
        _kill(scheduler)
        killed = time.monotonic()
        _, err = fit.communicate(timeout=120)
        print(f"the fit ended {time.monotonic() - killed:.1f} s after the scheduler was killed")
    assert fit.returncode == 1, err[-3000:]
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"daskgmm: error: lost the connection to the Dask scheduler "
                                f"(tcp://127.0.0.1:{port}); the checkpoint {ckpt} holds the fit at "
                                "iteration "), err[-3000:]
    assert lines[-1].endswith("run the same command again to resume it")
    assert "Traceback" not in err and not model.exists()

    with _scheduler_and_worker(port):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    alone = daskgmm.GaussianMixture(4, random_state=0, tol=0, max_iter=30).fit(
        da.from_zarr(str(tmp_path / "data.zarr")))
    np.testing.assert_array_equal(daskgmm.load(model).means_, alone.means_)
