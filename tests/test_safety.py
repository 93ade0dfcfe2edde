"""daskgmm never writes over what it did not write, nor into its input.

Real files on disk; each user-owned path holds a sentinel that must survive.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import dask.array as da
import numpy as np
import pytest
import zarr
from conftest import blobs
from helpers import run_cli_in_process

import daskgmm
from daskgmm import GaussianMixture
from daskgmm.errors import UnsafePathError

# short fits (max_iter=5) need not converge here
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def run(*args):
    """The command line, run by its ``main`` in this process (the command as a
    process of its own: tests/test_cli.py)."""
    return run_cli_in_process(*args)


@pytest.fixture
def fitted():
    return GaussianMixture(2, random_state=0, max_iter=5).fit(blobs(300, 2, 2)[0])


def _notes(folder):
    folder.mkdir()
    (folder / "notes.txt").write_text("my only copy")
    return folder / "notes.txt"


def _intact(sentinel):
    assert sentinel.read_text() == "my only copy"


def test_save_refuses_a_folder_it_did_not_write(fitted, tmp_path):
    sentinel = _notes(tmp_path / "notes")
    with pytest.raises(UnsafePathError, match="holds a folder of 1 entry that daskgmm did not write"):
        fitted.save(tmp_path / "notes")
    _intact(sentinel)
    (tmp_path / "file").write_text("my only copy")
    with pytest.raises(UnsafePathError, match="holds a file"):
        fitted.save(tmp_path / "file")
    _intact(tmp_path / "file")


def test_save_refuses_a_zarr_store_of_data(fitted, tmp_path):
    da.ones((10, 2), chunks=5).to_zarr(str(tmp_path / "data.zarr"))
    with pytest.raises(UnsafePathError, match="holds a Zarr array that daskgmm did not write"):
        fitted.save(tmp_path / "data.zarr", overwrite=True)
    kept = zarr.open(str(tmp_path / "data.zarr"), mode="r")[:]
    np.testing.assert_array_equal(kept, np.ones((10, 2)))


def test_a_model_is_replaced_only_when_asked_and_atomically(fitted, tmp_path):
    path = tmp_path / "m.zarr"
    fitted.save(path)
    with pytest.raises(UnsafePathError, match="holds a daskgmm model; pass overwrite=True"):
        fitted.save(path)
    other = GaussianMixture(3, random_state=0, max_iter=5).fit(blobs(300, 2, 3)[0])
    other.save(path, overwrite=True)
    assert daskgmm.load(path).n_components == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zarr"]  # nothing left beside it


def test_a_failed_replacement_leaves_the_old_model(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m.zarr"
    fitted.save(path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(daskgmm.models, "write_params", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fitted.save(path, overwrite=True)
    monkeypatch.undo()
    np.testing.assert_array_equal(daskgmm.load(path).means_, fitted.means_)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zarr"]


def test_a_checkpoint_path_of_foreign_content_is_refused_even_with_overwrite(tmp_path):
    sentinel = _notes(tmp_path / "notes")
    X = blobs(300, 2, 2)[0]
    for overwrite in (False, True):
        gm = GaussianMixture(2, checkpoint=str(tmp_path / "notes"), checkpoint_overwrite=overwrite)
        with pytest.raises(UnsafePathError, match="checkpoint: .* did not write"):
            gm.fit(X)
    _intact(sentinel)


def test_a_checkpoint_inside_or_around_the_input_is_refused(tmp_path):
    X = da.from_array(blobs(300, 2, 2)[0], chunks=100)
    X.to_zarr(str(tmp_path / "data.zarr"))
    for where in (tmp_path / "data.zarr", tmp_path / "data.zarr" / "ckpt", tmp_path):
        gm = GaussianMixture(2, checkpoint=str(where), checkpoint_overwrite=True)
        with pytest.raises(UnsafePathError, match="an output must be apart from the input"):
            gm.fit(str(tmp_path / "data.zarr"))
    assert zarr.open(str(tmp_path / "data.zarr"), mode="r").shape == (300, 2)


def test_loaded_models_carry_no_checkpoint_path(fitted, tmp_path):
    gm = GaussianMixture(2, random_state=0, max_iter=5, checkpoint=str(tmp_path / "c.zarr"))
    gm.fit(blobs(300, 2, 2)[0]).save(tmp_path / "m.zarr")
    assert daskgmm.load(tmp_path / "m.zarr").checkpoint is None


def test_cli_fit_refuses_to_write_its_model_over_its_input_or_a_folder(tmp_path):
    X = da.from_array(blobs(600, 2, 2)[0], chunks=200)
    X.to_zarr(str(tmp_path / "data.zarr"))
    sentinel = _notes(tmp_path / "notes")
    for out in (tmp_path / "data.zarr", tmp_path / "notes"):
        done = run("fit", tmp_path / "data.zarr", "-k", 2, "-o", out, "--overwrite")
        assert done.returncode == 2, done.stderr
        assert "daskgmm: error: -o/--output" in done.stderr.splitlines()[-1]
    _intact(sentinel)
    assert zarr.open(str(tmp_path / "data.zarr"), mode="r").shape == (600, 2)
    done = run("fit", tmp_path / "data.zarr", "-k", 2, "--checkpoint", tmp_path / "data.zarr")
    assert done.returncode == 2 and "apart from the input" in done.stderr


@pytest.mark.parametrize("command", ["predict", "impute"])
def test_cli_predict_and_impute_refuse_to_write_over_their_input(tmp_path, fitted, command):
    X = da.from_array(blobs(600, 2, 2)[0], chunks=200)
    X.to_zarr(str(tmp_path / "data.zarr"))
    fitted.save(tmp_path / "m.zarr")
    for out in (tmp_path / "data.zarr", tmp_path / "m.zarr"):
        done = run(command, tmp_path / "m.zarr", tmp_path / "data.zarr", "-o", out, "--overwrite")
        assert done.returncode == 2, done.stderr
        assert "apart from the" in done.stderr
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "data.zarr"), mode="r")[...], X.compute())
    own = tmp_path / f"{command}.zarr"
    done = run(command, tmp_path / "m.zarr", tmp_path / "data.zarr", "-o", own)
    assert done.returncode == 0, done.stderr
    again = run(command, tmp_path / "m.zarr", tmp_path / "data.zarr", "-o", own, "--overwrite")
    assert again.returncode == 0, again.stderr  # its own output may be replaced
    sentinel = _notes(tmp_path / "notes")
    done = run(command, tmp_path / "m.zarr", tmp_path / "data.zarr", "-o", tmp_path / "notes",
               "--overwrite")
    assert done.returncode == 2 and "did not write" in done.stderr
    _intact(sentinel)


def _forge(path, **changes):
    """Rewrite a saved model's arrays (with matching checksums) and attributes."""
    from daskgmm.store import checksum

    root = zarr.open_group(str(path), mode="r+")
    meta = dict(root.attrs["daskgmm"])
    for name, value in changes.items():
        if name in ("weights", "means", "covariances", "precisions_cholesky"):
            value = np.asarray(value)
            del root[name]
            arr = root.create_array(name, shape=value.shape, dtype=value.dtype, chunks=value.shape)
            arr[...] = value
            meta["digests"] = dict(meta["digests"], **{name: checksum(value)})
        else:
            meta["fitted"] = dict(meta["fitted"], **{name: value})
    root.attrs["daskgmm"] = meta


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(weights=[np.nan, 1.0]), "weights holds NaN"),
        (dict(weights=[-0.5, 1.5]), "weights are not on the simplex"),
        (dict(means=np.full((2, 2), np.nan)), "means holds NaN"),
        (dict(precisions_cholesky=-np.stack([np.eye(2)] * 2)), "not positive definite"),
        (dict(weights=np.ones(3) / 3), r"array 'weights' has shape \(3,\) .* expected \(2,\)"),
        (dict(weights=np.array([0, 1], dtype=np.int8)), "dtype int8, expected"),
        (dict(dtype="int8"), "dtype 'int8' is not float32 or float64"),
        (dict(n_features_in_=200_000_000), r"array 'means' has shape \(2, 2\)"),
        (dict(feature_names_in_=["a"]), "feature_names_in_ must be a list of 2 strings"),
        (dict(feature_names_in_=[1, 2]), "feature_names_in_ must be a list of 2 strings"),
    ],
)
def test_damaged_or_forged_models_are_refused(fitted, tmp_path, change, message):
    fitted.save(tmp_path / "m.zarr")
    _forge(tmp_path / "m.zarr", **change)
    with pytest.raises(daskgmm.CheckpointError, match=message):
        daskgmm.load(tmp_path / "m.zarr")


def test_a_saved_model_keeps_its_feature_names_and_checks_them(tmp_path):
    """A model fitted on named features (a DataFrame) keeps the names through save and
    load, so that columns in another order are refused, not silently permuted."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs(300, 3, 2)[0], columns=["a", "b", "c"])
    gm = GaussianMixture(2, random_state=0).fit(frame)
    gm.save(tmp_path / "m.zarr")
    back = daskgmm.load(tmp_path / "m.zarr")
    assert list(back.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(back.predict(frame), gm.predict(frame))
    with pytest.raises(ValueError, match="same order as they were in fit"):
        back.predict(frame[["b", "a", "c"]])


def test_a_damaged_checkpoint_structure_gives_checkpoint_error(tmp_path):
    X = blobs(300, 2, 2)[0]
    path = tmp_path / "c.zarr"
    GaussianMixture(2, random_state=0, checkpoint=str(path)).fit(X)
    root = zarr.open_group(str(path), mode="r+")
    meta = dict(root.attrs["daskgmm"])
    state = root[meta["current"]]
    attrs = dict(state.attrs["daskgmm_state"])
    for damage in ({"best": 7}, {"runs": None}, {"layout": {"weights": [0, [10**9]]}}):
        state.attrs["daskgmm_state"] = attrs | damage
        with pytest.raises(daskgmm.CheckpointError, match="checkpoint_overwrite=True"):
            GaussianMixture(2, random_state=0, checkpoint=str(path)).fit(X)
    state.attrs["daskgmm_state"] = attrs
    # a forged digest array that declares 32 GB: refused from its metadata, never read
    state.create_array("chunk_digests", shape=(10**9, 32), dtype="uint8", chunks=(1000, 32),
                       overwrite=True)
    with pytest.raises(daskgmm.CheckpointError, match=r"chunk_digests has shape \(1000000000, 32\)"):
        GaussianMixture(2, random_state=0, checkpoint=str(path)).fit(X)
    root.attrs["daskgmm"] = meta | {"current": "state-99999999"}
    with pytest.raises(daskgmm.CheckpointError, match="damaged"):
        GaussianMixture(2, random_state=0, checkpoint=str(path)).fit(X)


def _tmpfs(where, options):
    """A real tmpfs mounted at ``where`` (needs root and mount; the test is skipped,
    saying why, elsewhere); unmounted afterwards."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 KiB tmpfs."""
    yield from _tmpfs(tmp_path / "disk", "size=200k")


def test_replacing_a_model_on_a_full_disk_keeps_the_old_one(fitted, small_disk):
    path = small_disk / "m.zarr"
    fitted.save(path)
    big = GaussianMixture(20, max_iter=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(2000, 30))
    )
    with pytest.raises(OSError):
        big.save(path, overwrite=True)  # 20 x 30 x 30 covariances do not fit in 200 KiB
    np.testing.assert_array_equal(daskgmm.load(path).means_, fitted.means_)
    assert sorted(p.name for p in small_disk.iterdir()) == ["m.zarr"]


def test_one_writer_per_checkpoint_and_a_stale_lock_is_taken_over(tmp_path):
    import os
    import signal

    X = blobs(300, 2, 2)[0]
    path = tmp_path / "c.zarr"
    holder = subprocess.Popen([sys.executable, str(Path(__file__).with_name("lock_holder.py")), str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(daskgmm.CheckpointLockedError, match=f"PID {holder.pid}"):
            GaussianMixture(2, random_state=0, checkpoint=str(path)).fit(X)
        assert not path.exists()  # the refused fit wrote nothing
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # the holder is gone: its lock is stale, the next fit takes it over, then releases it
    gm = GaussianMixture(2, random_state=0, checkpoint=str(path)).fit(X)
    assert gm.converged_ and sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]


@pytest.mark.parametrize("content", ["my only copy", '{"host": "elsewhere"}', "[1, 2]"])
def test_a_user_file_at_the_lock_name_is_left_alone(tmp_path, content):
    lock = tmp_path / ".c.zarr.daskgmm-lock"
    lock.write_text(content)
    with pytest.raises(daskgmm.CheckpointLockedError, match="is not a daskgmm lock; it is left"):
        GaussianMixture(2, random_state=0, checkpoint=str(tmp_path / "c.zarr")).fit(blobs(300, 2, 2)[0])
    assert lock.read_text() == content and not (tmp_path / "c.zarr").exists()


@pytest.fixture
def read_only_disk(tmp_path):
    """A real read-only tmpfs."""
    yield from _tmpfs(tmp_path / "ro", "ro,size=64k")


def test_an_unwritable_checkpoint_or_output_is_refused_before_anything_is_read(read_only_disk, tmp_path):
    from helpers import ChunkReads

    reads = ChunkReads(blobs(300, 2, 2)[0], (100, 2))
    with pytest.raises(UnsafePathError, match=r"checkpoint: .*c.zarr cannot be written \(.* is not writable\)"):
        GaussianMixture(2, random_state=0, checkpoint=str(read_only_disk / "c.zarr")).fit(reads.array)
    assert reads.count == 0  # refused before the initialisation read anything
    da.from_array(blobs(300, 2, 2)[0], chunks=100).to_zarr(str(tmp_path / "data.zarr"))
    done = run("fit", tmp_path / "data.zarr", "-k", 2, "-o", read_only_disk / "m.zarr")
    assert done.returncode == 2 and "cannot be written" in done.stderr.strip().splitlines()[-1]
    assert "iteration" not in done.stderr  # before the fit started
