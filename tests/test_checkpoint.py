"""Checkpoints and models in real Zarr stores on disk; fits killed with SIGKILL and resumed."""

from __future__ import annotations

import os
import random
import signal
import time
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from checkpoint_worker import FIT, fit
from conftest import blobs
from sklearn.exceptions import ConvergenceWarning
from helpers import ChunkReads, Stop, start_worker, stopped_after

import daskgmm
from daskgmm.errors import UnsafePathError
from daskgmm import CheckpointError, CheckpointMismatchError, GaussianMixture

@pytest.fixture
def zarr_data(tmp_path):
    X, _ = blobs(6000, 3, 4, seed=1, sep=2.5)
    path = tmp_path / "data.zarr"
    da.from_array(X, chunks=(700, 3)).to_zarr(str(path))
    return path


def run_worker(args, kill_after=None, once=None):
    """Run the worker; with ``kill_after``, kill it that many seconds after it starts
    (after ``once`` exists, where given: a start-up of any length is not counted).
    True when it finished by itself."""
    proc = start_worker(*args)
    if kill_after is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        return True
    if once is not None:
        deadline = time.monotonic() + 120
        while not once.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(kill_after)
    finished = proc.poll() is not None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
    return finished


@pytest.mark.parametrize("scheduler, kills", [("threads", 6), ("distributed", 3)])
def test_fit_killed_at_random_moments_resumes_bitwise_identical(zarr_data, tmp_path, scheduler, kills):
    reference = fit(da.from_zarr(str(zarr_data)))
    ckpt, model = tmp_path / "fit.ckpt.zarr", tmp_path / "model.zarr"
    rng = random.Random(1234)
    killed_mid_fit = 0
    for _ in range(kills):
        # killed at a random moment after the first checkpoint write: a fixed
        # start-up allowance was outlasted by the whole fit on a fast machine
        if run_worker([zarr_data, ckpt, model, scheduler], kill_after=rng.uniform(0, 0.6),
                      once=ckpt):
            break
        killed_mid_fit += 1
        if ckpt.exists():
            daskgmm.inspect(ckpt)  # always opens to a complete state
    assert killed_mid_fit >= 1
    run_worker([zarr_data, ckpt, model, scheduler])
    resumed = daskgmm.load(model)
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_"]:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    assert resumed.lower_bounds_ == reference.lower_bounds_
    assert resumed.n_iter_ == reference.n_iter_
    assert daskgmm.inspect(ckpt)["status"] == "done"


def test_resume_in_process_after_interruption_equals_uninterrupted(zarr_data, tmp_path):
    X = da.from_zarr(str(zarr_data))
    reference = fit(X)
    ckpt = tmp_path / "c.zarr"

    class Stop(Exception):
        pass

    calls = [0]
    from daskgmm import em

    original = em.expectation

    def flaky(*a, **k):
        calls[0] += 1
        if calls[0] == 12:  # both initialisations drawn, 11 iterations done
            raise Stop
        return original(*a, **k)

    em.expectation = flaky
    try:
        with pytest.raises(Stop):
            fit(X, str(ckpt))
    finally:
        em.expectation = original
    info = daskgmm.inspect(ckpt)
    assert info["status"] == "running" and info["n_iter"] == 11
    assert [r["n_iter"] for r in info["initialisations"]] == [11, 11]
    resumed = fit(X, str(ckpt))
    np.testing.assert_array_equal(resumed.means_, reference.means_)
    assert resumed.lower_bounds_ == reference.lower_bounds_


def test_checkpoint_of_other_data_or_parameters_is_refused(zarr_data, tmp_path):
    X = da.from_zarr(str(zarr_data))
    ckpt = str(tmp_path / "c.zarr")
    fit(X, ckpt)
    with pytest.raises(CheckpointMismatchError, match=r"params.n_components is 4 in the checkpoint but 3 now"):
        GaussianMixture(**(FIT | {"n_components": 3}), checkpoint=ckpt).fit(X)
    with pytest.raises(CheckpointMismatchError, match=r"data.first_last_rows_sha256"):
        fit(X + 1.0, ckpt)
    with pytest.raises(CheckpointMismatchError, match=r"data.row_chunks"):
        fit(X.rechunk(1000), ckpt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = GaussianMixture(**(FIT | {"n_components": 3}), checkpoint=ckpt, checkpoint_overwrite=True).fit(X)
    assert fresh.means_.shape == (3, 3)
    assert daskgmm.inspect(ckpt)["n_components"] == 3


def test_corrupted_checkpoint_is_detected(zarr_data, tmp_path):
    X = da.from_zarr(str(zarr_data))
    ckpt = tmp_path / "c.zarr"
    fit(X, str(ckpt))
    current = zarr.open_group(str(ckpt), mode="r").attrs["daskgmm"]["current"]
    chunk = next(p for p in (ckpt / current / "state").rglob("*") if p.is_file() and p.name == "0")
    chunk.write_bytes(chunk.read_bytes()[:10])  # truncated
    with pytest.raises(CheckpointError, match="array 'state'"):
        fit(X, str(ckpt))
    with pytest.raises(CheckpointError, match="array 'state'"):
        daskgmm.inspect(ckpt)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_save_load_round_trip(tmp_path, covariance_type):
    X, _ = blobs(800, 3, 3)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    gm.save(tmp_path / "m.zarr")
    back = daskgmm.load(tmp_path / "m.zarr")
    assert back.get_params() == gm.get_params()
    np.testing.assert_array_equal(back.predict(X), gm.predict(X))
    np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]:
        np.testing.assert_array_equal(getattr(back, name), getattr(gm, name))
    assert back.lower_bounds_ == gm.lower_bounds_ and back.converged_ == gm.converged_
    info = daskgmm.inspect(tmp_path / "m.zarr")
    assert info["kind"] == "model" and info["covariance_type"] == covariance_type


def test_float32_model_stays_float32_when_saved_and_when_read_from_its_checkpoint(tmp_path):
    X = blobs(800, 3, 3)[0].astype(np.float32)
    ckpt = tmp_path / "c.zarr"
    gm = GaussianMixture(3, random_state=0, checkpoint=str(ckpt)).fit(X)
    gm.save(tmp_path / "m.zarr")
    for back in [daskgmm.load(tmp_path / "m.zarr"), daskgmm.load(ckpt)]:
        for name in ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]:
            assert getattr(back, name).dtype == np.float32
            np.testing.assert_array_equal(getattr(back, name), getattr(gm, name))
        np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))


def test_foreign_or_missing_groups_give_clear_errors(tmp_path):
    zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w").attrs["something"] = 1
    with pytest.raises(CheckpointError, match="not a daskgmm checkpoint or model"):
        daskgmm.load(tmp_path / "foreign.zarr")
    with pytest.raises(CheckpointError, match="no daskgmm checkpoint or model"):
        daskgmm.load(tmp_path / "missing.zarr")
    with pytest.raises(UnsafePathError, match="holds a Zarr group that daskgmm did not write"):
        GaussianMixture(2, checkpoint=str(tmp_path / "foreign.zarr")).fit(blobs(100, 2, 2)[0])
    assert zarr.open_group(str(tmp_path / "foreign.zarr"), mode="r").attrs["something"] == 1


def test_checkpoint_without_iterations_is_finished(tmp_path):
    X, _ = blobs(300, 2, 2)
    ckpt = tmp_path / "c.zarr"
    gm = GaussianMixture(2, max_iter=0, random_state=0, checkpoint=str(ckpt)).fit(X)
    assert daskgmm.inspect(ckpt)["status"] == "done"
    np.testing.assert_array_equal(daskgmm.load(ckpt).means_, gm.means_)


def test_killed_during_the_first_write_starts_cleanly(zarr_data, tmp_path):
    """A checkpoint whose first state was never completed opens as empty, and the fit runs."""
    from daskgmm.checkpoint import Checkpoint
    from daskgmm.fitting import checkpoint_for

    X = da.from_zarr(str(zarr_data))
    reference = fit(X)
    ckpt = tmp_path / "c.zarr"
    probe = GaussianMixture(**FIT, checkpoint=str(ckpt))
    saver = checkpoint_for(probe.checkpoint, probe.get_params(), X, None, overwrite=False)
    root = saver._root()  # what the first save writes first: the root, with its attributes
    half = root.create_group("state-00000001")
    half.create_array("weights", shape=(4,), dtype="f8")  # ...and then it was killed
    assert daskgmm.inspect(ckpt)["status"] == "empty"
    assert Checkpoint(str(ckpt), identity=saver.identity).load() is None
    resumed = fit(X, str(ckpt))
    np.testing.assert_array_equal(resumed.means_, reference.means_)


def _copy_with_one_value_changed(path, row, tmp_path):
    """The data at ``path`` with one value of ``row`` changed: same shape, chunks,
    first and last rows (all that the cheap fingerprint reads)."""
    Y = np.asarray(zarr.open_array(str(path), mode="r")[...]).copy()
    Y[row, 1] = np.nextafter(Y[row, 1], np.inf)
    other = tmp_path / "other.zarr"
    da.from_array(Y, chunks=(700, 3)).to_zarr(str(other))
    return da.from_zarr(str(other))


def test_a_checkpoint_is_refused_on_data_that_differ_in_one_middle_value(
        zarr_data, tmp_path, scheduler, monkeypatch):
    """Each chunk's SHA-256 is recorded in the first pass; a resumed fit compares
    them in its first pass, a finished one in a pass of its own."""
    X = da.from_zarr(str(zarr_data))
    Y = _copy_with_one_value_changed(zarr_data, 3000, tmp_path)  # chunk 4: rows 2800-3499
    differ = r"1 of 9 row chunks have other values, chunk 4 \(rows 2800-3499\)"

    def fit(data, checkpoint, **params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return GaussianMixture(**(FIT | {"max_iter": 4}), checkpoint=checkpoint, **params).fit(data)

    running = str(tmp_path / "running.zarr")
    restore = stopped_after(3, monkeypatch)
    with pytest.raises(Stop):
        fit(X, running)
    restore()
    before = daskgmm.inspect(running)
    assert before["status"] == "running" and before["n_iter"] == 2
    with pytest.raises(CheckpointMismatchError, match=differ):
        fit(Y, running)
    assert daskgmm.inspect(running) == before  # nothing was saved
    model = fit(X, running)  # the same data: accepted

    with pytest.raises(CheckpointMismatchError, match=differ):
        fit(Y, running)  # finished: a pass of its own compares
    np.testing.assert_array_equal(fit(X, running).means_, model.means_)
    with pytest.warns(daskgmm.errors.DaskGMMWarning, match="without verifying"):
        unverified = fit(Y, running, checkpoint_verify=False)
    np.testing.assert_array_equal(unverified.means_, model.means_)


def test_the_chunk_digests_cost_no_read_of_their_own(tmp_path):
    X, _ = blobs(4000, 3, 3, seed=1)
    counts = []
    for checkpoint in (None, str(tmp_path / "c.zarr")):
        reads = ChunkReads(X, (500, 3))
        with dask.config.set(scheduler="threads"):
            GaussianMixture(3, random_state=0, max_iter=4, tol=0, persist=False,
                            checkpoint=checkpoint).fit(reads.array)
        counts.append(reads.count)
    assert counts[1] == counts[0] + 2  # + the first and last rows of the cheap fingerprint
    state = daskgmm.checkpoint.Checkpoint(
        str(tmp_path / "c.zarr"),
        identity=zarr.open_group(str(tmp_path / "c.zarr"), mode="r").attrs["daskgmm"]["identity"],
    ).load()
    from daskgmm.reads import chunk_digest

    expected = np.concatenate([chunk_digest(X[i:i + 500]) for i in range(0, 4000, 500)])
    np.testing.assert_array_equal(state.chunk_digests, expected)
