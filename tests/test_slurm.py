"""A real single-node SLURM (Debian's slurm-wlm), started by tests/slurm/start-slurm.sh.

Skipped, with the reason, only where SLURM cannot run: not root and not installed,
or the daemons do not come up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import dask.array as da
import numpy as np
import pytest
import yaml
from conftest import blobs

import daskgmm
from daskgmm import CheckpointError

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DASKGMM = str(pathlib.Path(sys.executable).with_name("daskgmm"))


def _slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return out.returncode == 0 and bool(re.search(r"idle|mix|alloc", out.stdout))


@pytest.fixture(scope="module")
def slurm():
    if not _slurm_up():
        if os.geteuid() != 0 and not shutil.which("slurmctld"):
            pytest.skip("SLURM is not installed and installing it needs root")
        done = subprocess.run(["bash", str(HERE / "slurm" / "start-slurm.sh")],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not _slurm_up():
            pytest.skip(f"SLURM cannot run here: {(done.stderr or done.stdout).strip()[-500:]}")


@pytest.fixture
def zarr_data(tmp_path):
    X, _ = blobs(40_000, 4, 4, seed=3, sep=3.0)
    path = tmp_path / "data.zarr"
    da.from_array(X, chunks=(5000, 4)).to_zarr(str(path))
    return X, path


def job_name(tmp_path) -> str:
    return f"daskgmm-test-{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:8]}"


def worker_config(tmp_path, **changes) -> pathlib.Path:
    """A worker config whose jobs carry a name of this test's own (``job_name(tmp_path)``):
    jobs that an earlier run left in SLURM's saved state never count as this test's."""
    conf = {
        "cores": 1, "processes": 1, "memory": "1GiB", "walltime": "00:15:00",
        "queue": "debug", "job_name": job_name(tmp_path),
        "local_directory": str(tmp_path), "log_directory": str(tmp_path / "logs"),
    } | changes
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


@contextlib.contextmanager
def _explained(tmp_path):
    """On a failure, add what SLURM says about the jobs and the workers' logs."""
    try:
        yield
    except Exception as error:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %j %T %r"], capture_output=True, text=True).stdout
        node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t %c %C"], capture_output=True, text=True).stdout
        logs = "".join(f"--- {log.name}\n{log.read_text()[-2000:]}"
                       for log in sorted((tmp_path / "logs").glob("*")))
        raise AssertionError(f"{error}\nsqueue:\n{queue}sinfo:\n{node}{logs}") from error


def test_workers_are_slurm_jobs_and_give_the_threaded_model(slurm, zarr_data, tmp_path):
    from daskgmm.clusters import cluster

    X, path = zarr_data
    reference = daskgmm.GaussianMixture(4, random_state=0).fit(da.from_zarr(str(path)))
    config = worker_config(tmp_path)
    with _explained(tmp_path), cluster("slurm", config=config, n_workers=2, wait_for_workers=2,
                                        dashboard=False, timeout=180) as client:
        job_ids = set(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values())
        queued = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True).stdout
        gm = daskgmm.GaussianMixture(4, random_state=0).fit(da.from_zarr(str(path)))
    assert len(job_ids) == 2 and None not in job_ids
    for job in job_ids:
        assert re.search(rf"^{job} {job_name(tmp_path)} RUNNING$", queued, re.M), queued
    np.testing.assert_array_equal(gm.means_, reference.means_)

    # The same through the command-line program.
    model = tmp_path / "model.zarr"
    done = subprocess.run(
        [DASKGMM, "fit", str(path), "-k", "4", "--random-state", "0", "--cluster", "slurm",
         "--cluster-config", str(config), "--n-workers", "1", "-o", str(model)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_array_equal(daskgmm.load(model).means_, reference.means_)


def _squeue(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _submit(tmp_path, env) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", f"--chdir={tmp_path}", str(ROOT / "cluster_configs" / "daskgmm-fit.sbatch")],
        capture_output=True, text=True, env=os.environ | env, check=True,
    )
    return done.stdout.strip().split(";")[0]


def _progress(ckpt):
    try:
        return daskgmm.inspect(ckpt)
    except CheckpointError:
        return None  # not written yet


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_batch_job_cancelled_midway_resumes_from_its_checkpoint(slurm, zarr_data, tmp_path):
    X, path = zarr_data
    fit = dict(n_components=4, random_state=0, tol=0.0, max_iter=60)
    reference = daskgmm.GaussianMixture(**fit).fit(da.from_zarr(str(path)))
    ckpt, model = tmp_path / "ckpt.zarr", tmp_path / "model.zarr"
    env = {
        "DATA": str(path), "K": "4", "CHECKPOINT": str(ckpt), "OUTPUT": str(model),
        "DASKGMM": DASKGMM, "EXTRA": "--random-state 0 --tol 0 --max-iter 60",
    }
    job = _submit(tmp_path, env)
    deadline = time.time() + 240
    while time.time() < deadline:
        info = _progress(ckpt)
        if info and info["status"] == "running" and info["n_iter"] >= 5:
            break
        assert _squeue(job) in ("PENDING", "RUNNING", "CONFIGURING", ""), _squeue(job)
        time.sleep(0.3)
    else:
        pytest.fail("the batch job made no progress: " + "".join(
            p.read_text() for p in tmp_path.glob("daskgmm-fit-*.log")))
    subprocess.run(["scancel", job], check=True)
    while _squeue(job):
        time.sleep(0.3)
    stopped = daskgmm.inspect(ckpt)
    assert stopped["status"] == "running" and not model.exists()

    job2 = _submit(tmp_path, env)
    deadline = time.time() + 300
    while _squeue(job2) and time.time() < deadline:
        time.sleep(0.5)
    logs = "".join(p.read_text() for p in tmp_path.glob("daskgmm-fit-*.log"))
    assert model.exists(), logs[-3000:]
    assert f"job {job2} " in logs and "status:              running" in logs  # it resumed
    resumed = daskgmm.load(model)
    for name in ["weights_", "means_", "covariances_"]:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    assert resumed.lower_bounds_ == reference.lower_bounds_


def _fit_on_slurm(path, config, *extra):
    started = time.monotonic()
    done = subprocess.run(
        [DASKGMM, "fit", str(path), "-k", "4", "--cluster", "slurm", "--cluster-config",
         str(config), "--n-workers", "1", *extra],
        capture_output=True, text=True, timeout=300,
    )
    return done, time.monotonic() - started


def test_a_refused_worker_job_ends_the_command_at_once_with_sbatchs_message(slurm, zarr_data, tmp_path):
    _, path = zarr_data
    done, seconds = _fit_on_slurm(path, worker_config(tmp_path, memory="1000GiB"))
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("daskgmm: error: SLURM refused the worker job: sbatch: error: Memory "
                           "specification can not be satisfied"), done.stderr[-3000:]
    assert "1 cores and 1000GiB of memory per job, in queue debug" in last
    assert re.search(r"partition debug offers nodes of at most \d+ CPUs and \d+ MB", last)
    assert "Traceback" not in done.stderr
    assert seconds < 60  # not the 300 s wait for workers


def test_pending_worker_jobs_are_shown_with_slurms_reason(slurm, zarr_data, tmp_path):
    _, path = zarr_data
    config = worker_config(tmp_path, job_extra_directives=["--begin=now+3600"])
    done, seconds = _fit_on_slurm(path, config, "--wait", "5")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "waiting for 1 worker(s), 0 joined; SLURM jobs: 1 pending (BeginTime)" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "only 0 of 1 worker(s) joined within 5 s; SLURM jobs: 1 pending (BeginTime)" in last
    assert "The config asks for 1 cores and 1GiB of memory per job, in queue debug" in last
    assert "Traceback" not in done.stderr
    queued = subprocess.run(["squeue", "-h", "-n", job_name(tmp_path)], capture_output=True,
                            text=True).stdout
    assert queued == ""  # the pending job was cancelled with the cluster
