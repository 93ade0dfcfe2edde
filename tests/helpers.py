"""Test helpers: random parameters and naive reference densities."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
from scipy import stats as ss

from daskgmm.covariance import COVARIANCE
from daskgmm.params import GMMParams

TYPES = ["full", "tied", "diag", "spherical"]


def random_params(covariance_type, k=3, d=4, seed=1):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3, size=(k, d))
    w = rng.uniform(0.2, 1, size=k)
    w /= w.sum()
    A = rng.normal(size=(k, d, d)) * 0.4 + np.eye(d)
    full = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d)
    cov = {
        "full": full,
        "tied": full[0],
        "diag": np.stack([np.diag(c) for c in full]),
        "spherical": np.array([np.diag(c).mean() for c in full]),
    }[covariance_type]
    pc = COVARIANCE[covariance_type].precision_cholesky(cov)
    return GMMParams(w, means, cov, pc, covariance_type)


def dense_covariances(p: GMMParams):
    k, d = p.means.shape
    c = p.covariances
    return {
        "full": lambda: c,
        "tied": lambda: np.repeat(c[None], k, axis=0),
        "diag": lambda: np.stack([np.diag(v) for v in c]),
        "spherical": lambda: np.stack([v * np.eye(d) for v in c]),
    }[p.covariance_type]()


def naive_weighted_log_prob(X, p: GMMParams):
    covs = dense_covariances(p)
    return np.column_stack(
        [
            np.log(w) + ss.multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(p.weights, p.means, covs)
        ]
    )


class ChunkReads:
    """A Dask array over ``X`` that counts how often its chunks are read (threads)."""

    def __init__(self, X, chunks):
        self._lock = threading.Lock()
        self.count = 0
        self.source = da.from_array(X, chunks=chunks)
        self.array = self.source.map_blocks(self._read, dtype=X.dtype, meta=np.empty((0, 0), X.dtype))

    def _read(self, block):
        with self._lock:
            self.count += 1
        return block

    @property
    def passes(self) -> float:
        return self.count / self.source.numblocks[0]


class Stop(Exception):
    """Raised by :func:`stopped_after` in place of an E-step pass."""


def stopped_after(passes, monkeypatch):
    """EM raises :class:`Stop` at its pass number ``passes`` (the state saved before it
    stays); returns a function that restores the real E-step."""
    from daskgmm import em

    original, calls = em.expectation, [0]

    def flaky(*a, **k):
        calls[0] += 1
        if calls[0] == passes:
            raise Stop
        return original(*a, **k)

    monkeypatch.setattr(em, "expectation", flaky)
    return lambda: monkeypatch.setattr(em, "expectation", original)


def start_worker(*args):
    """``checkpoint_worker.py ARGS`` in a process of its own group: a kill of the
    group takes the LocalCluster's worker processes too, as a batch system's job
    kill or a pod eviction would."""
    import os
    import pathlib
    import subprocess
    import sys

    worker = pathlib.Path(__file__).with_name("checkpoint_worker.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(worker.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(worker), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def kill_at_iteration(proc, checkpoint, n_iter, what="the fit", poll=0.01, timeout=120):
    """SIGKILL the process group of ``proc`` (started with ``start_new_session``) once
    ``checkpoint`` holds ``n_iter`` iterations or more; asserts that it was running."""
    import os
    import signal
    import time

    from daskgmm import CheckpointError, inspect

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if inspect(checkpoint)["n_iter"] >= n_iter:
                break
        except (CheckpointError, KeyError, OSError):  # not yet written, or mid-write
            pass
        time.sleep(poll)
    assert proc.poll() is None, f"{what} ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def run_cli_in_process(*args):
    """``daskgmm ARGS`` through the command's own ``main`` in this process, as a
    ``CompletedProcess``: the same code as the command (parsing, checks, exit
    codes, messages) without a new Python's 2-3 s of imports. Warnings are shown
    as a new process shows them (not this session's filters, which make some
    errors), and the logging set-up that ``main`` does is undone afterwards."""
    import contextlib
    import io
    import logging
    import subprocess
    import warnings

    from daskgmm import cli

    names = ("daskgmm", "distributed", "distributed.client")
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, names)]
    out, err = io.StringIO(), io.StringIO()
    try:
        with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(err),
              warnings.catch_warnings()):
            warnings.resetwarnings()
            warnings.simplefilter("default")
            warnings.showwarning = _warning_to_stderr
            code = cli.main([str(a) for a in args])
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate
    return subprocess.CompletedProcess(["daskgmm", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())


def _warning_to_stderr(message, category, filename, lineno, file=None, line=None):
    import sys
    import warnings

    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
