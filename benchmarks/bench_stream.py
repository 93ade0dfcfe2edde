"""Streaming fits from Zarr: time per iteration and peak memory at two sizes 10x apart.

For each size, a compressed float32 Zarr array is written to disk; then, on the
threaded scheduler in this process:

* the bare read: the time to read and decompress every chunk once (the best
  of two, timed just before each fit, so that the two are compared on the
  machine in the same state);
* for each covariance type, a streamed fit (``persist=False``: every iteration
  re-reads the store) from fixed initial parameters with ``tol=0``, in a fresh
  process: median seconds per iteration, and the peak resident memory of that
  process (sampled) and how much of it came during the fit;
* the arithmetic alone: the chunk kernel on one in-memory chunk, one thread,
  scaled to all rows and to the threads of the machine. With the store in the
  page cache an iteration cannot take less than this plus the read.

With ``--cold`` the same is measured a second time with the store's files
dropped from the page cache (``posix_fadvise(DONTNEED)``, Linux) before every
read and every iteration, so that each one reads from storage, as it must for
data larger than memory; the fit then runs one iteration per ``fit`` call
(``warm_start=True, max_iter=1``), with the eviction between calls.

    python benchmarks/bench_stream.py                         # 2,000,000 and 20,000,000 x 16
    python benchmarks/bench_stream.py --sizes 200000 2000000  # quicker
    python benchmarks/bench_stream.py --covariance-type full diag spherical --cold --repeats 3

With ``--repeats`` each fit is repeated (with its read) and the median ratio is
reported, with the range: on a small shared machine the read alone varies by
tens of percent from one minute to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import dask
import dask.array as da
import numpy as np
from bench_em import PeakRSS, timed_fit
from threadpoolctl import threadpool_limits

import daskgmm
from daskgmm import kernels

#: GaussianMixture's default ``reg_covar``, which an EM pass hands to the kernel
REG_COVAR = 1e-6
from daskgmm.covariance import COVARIANCE


def write_store(path, n, d, k, chunk_rows, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=6.0, size=(k, d)).astype(np.float32)

    def block(b, block_info=None):
        lo, hi = block_info[0]["array-location"][0]
        g = np.random.default_rng([seed, lo])
        lab = g.integers(k, size=hi - lo)
        return (g.standard_normal((hi - lo, d), dtype=np.float32) + means[lab]).astype(np.float32)

    template = da.zeros((n, d), chunks=(chunk_rows, d), dtype=np.float32)
    X = template.map_blocks(block, dtype=np.float32)
    X.to_zarr(str(path), overwrite=True)
    return means


def evict(path):
    """Drop the files of the store at ``path`` from the page cache."""
    os.sync()  # written pages must be clean to be dropped
    for f in pathlib.Path(path).rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def bare_read(path, cold=False):
    X = da.from_zarr(str(path))
    touched = X.map_blocks(lambda b: b[:1, :1], chunks=(1, 1), dtype=X.dtype)
    if cold:
        evict(path)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        touched.compute()
    return time.perf_counter() - t0


def starting_point(X, k, covariance_type):
    """Fixed initial parameters: means from rows of the first chunk, unit precisions."""
    d = X.shape[1]
    return dict(
        weights_init=np.full(k, 1.0 / k),
        means_init=np.asarray(X[: 50 * k : 50].compute(), dtype=np.float64),
        precisions_init={
            "full": np.stack([np.eye(d)] * k),
            "diag": np.ones((k, d)),
            "spherical": np.ones(k),
            "tied": np.eye(d),
        }[covariance_type],
    )


def kernel_seconds_per_row(path, k, covariance_type, repeats=5):
    """Median seconds per row of the E-step + statistics kernel, one thread, data in memory."""
    X = da.from_zarr(str(path))
    block = X.blocks[0].compute()
    start = starting_point(X, k, covariance_type)
    pc = COVARIANCE[covariance_type].precision_cholesky_from_precisions(start["precisions_init"])
    args = (start["weights_init"], start["means_init"], pc, covariance_type)
    times = []
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            kernels.chunk_statistics(block, *args, reg_covar=REG_COVAR)  # as an EM pass
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(block)


def cold_iterations(make, path, iterations):
    """Median seconds of one iteration that reads the store from storage: one
    iteration per ``fit`` call, the store evicted from the page cache before each."""
    est = make(warm_start=True, max_iter=1, tol=0.0)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged after one iteration
        for _ in range(iterations):
            evict(path)
            t0 = time.perf_counter()
            est.fit(str(path))
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fit_only(path, k, covariance_type, iterations, cold):
    """One streamed fit in this (fresh) process; prints a JSON line of its figures."""
    X = da.from_zarr(str(path))
    start = starting_point(X, k, covariance_type)

    def make(**kw):
        return daskgmm.GaussianMixture(k, covariance_type=covariance_type, persist=False, **start, **kw)

    with PeakRSS() as mem:
        if cold:
            sec = cold_iterations(make, path, iterations)
        else:
            sec, _, _, _ = timed_fit(make, str(path), iterations)
    # (ru_maxrss would carry the high-water mark of the parent over the exec)
    print(json.dumps({"seconds_per_iteration": sec, "peak_rss": mem.peak, "after_imports": mem.extra}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[2_000_000, 20_000_000])
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--covariance-type", nargs="+", default=["full"])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to write the stores")
    parser.add_argument("--cold", action="store_true",
                        help="also measure with the store dropped from the page cache before every read")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fits per type and size; the median ratio to the read is reported")
    parser.add_argument("--fit-only", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_only:
        return fit_only(args.fit_only, args.n_components, args.covariance_type[0], args.iterations,
                        args.cold)
    root = pathlib.Path(tempfile.mkdtemp(prefix="daskgmm-stream-", dir=args.dir))
    d, k, threads = args.n_features, args.n_components, os.cpu_count()
    print(
        f"{d} float32 features, k={k}, chunks of {args.chunk_rows:,} rows, {args.iterations} "
        f"iterations, persist=False, threaded scheduler on {threads} cores"
    )
    modes = ["warm", "cold"] if args.cold else ["warm"]
    results = {}  # (covariance type, mode) -> [(n, median ratio, peak, read, s/it, compute)]
    try:
        for n in args.sizes:
            path = root / f"x{n}.zarr"
            write_store(path, n, d, k, args.chunk_rows)
            stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            print(f"n={n:>12,}: stored {stored / 2**20:,.0f} MiB")
            for cov in args.covariance_type:
                compute = kernel_seconds_per_row(path, k, cov) * n / threads
                for mode in modes:
                    runs = []
                    for _ in range(args.repeats):
                        # The read that the fit is compared with is timed just before it,
                        # so that both see the machine in the same state.
                        read = min(bare_read(path, mode == "cold") for _ in range(2))
                        fit = fit_in_fresh_process(path, k, cov, args.iterations, mode == "cold")
                        runs.append((fit["seconds_per_iteration"] / read, read, fit))
                    ratio, read, fit = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
                    sec, peak = fit["seconds_per_iteration"], fit["peak_rss"]
                    results.setdefault((cov, mode), []).append((n, ratio, peak, read, sec, compute))
                    spread = ""
                    if len(runs) > 1:
                        spread = f", {min(r[0] for r in runs):.2f}-{max(r[0] for r in runs):.2f}x in {len(runs)} runs"
                    print(
                        f"  {cov:>9} {mode}: {sec:6.2f} s/iteration, bare read {read:.2f} s: "
                        f"{ratio:4.2f}x read{spread}; kernel alone {compute:5.2f} s "
                        f"({(read + compute) / read:4.2f}x read with it); peak RSS "
                        f"{peak / 2**20:4.0f} MiB ({fit['after_imports'] / 2**20:.0f} during the fit)"
                    )
            shutil.rmtree(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for (cov, mode), ((n1, _, m1, _, _, _), (n2, ratio, m2, r2, _, c2)) in results.items():
        print(
            f"{cov} ({mode}): peak RSS {m2 / m1:.2f}x for {n2 / n1:.0f}x the rows; at {n2:,} rows "
            f"an iteration takes {ratio:.2f}x the bare read (read + kernel alone: "
            f"{(r2 + c2) / r2:.2f}x)"
        )


def fit_in_fresh_process(path, k, covariance_type, iterations, cold):
    command = [sys.executable, __file__, "--fit-only", str(path), "--n-components", str(k),
               "--covariance-type", covariance_type, "--iterations", str(iterations)]
    done = subprocess.run(command + ["--cold"] * cold, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


if __name__ == "__main__":
    main()
