"""Shared fixtures: schedulers, data sets, and a scikit-learn reference fit."""

from __future__ import annotations

import contextlib

import dask
import numpy as np
import pytest


@pytest.fixture(scope="session")
def distributed_client():
    """A real ``distributed`` LocalCluster: two worker processes, one thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


@contextlib.contextmanager
def _threads():
    with dask.config.set(scheduler="threads"):
        yield None


@pytest.fixture(params=["threads", "distributed"])
def scheduler(request):
    """Run the test on the threaded scheduler and on a distributed LocalCluster."""
    if request.param == "threads":
        with _threads():
            yield None
    else:
        client = request.getfixturevalue("distributed_client")
        with client.as_current(), dask.config.set(scheduler=client):
            yield client


def blobs(n=600, d=3, k=3, seed=0, sep=6.0, dtype=np.float64):
    """Well-separated anisotropic clusters as a NumPy array (labels second)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=sep, size=(k, d))
    lab = rng.integers(k, size=n)
    A = rng.normal(size=(k, d, d)) * 0.3 + np.eye(d)
    X = np.einsum("nd,nde->ne", rng.standard_normal((n, d)), A[lab]) + means[lab]
    return X.astype(dtype), lab


@pytest.fixture
def data():
    return blobs()[0]
