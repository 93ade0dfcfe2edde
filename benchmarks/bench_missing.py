"""An EM iteration with missing values marginalised, against one on complete data.

On ``--rows`` x 16 rows and K=8, for each covariance type and dtype, the
per-chunk E-step and statistics (``kernels.chunk_statistics``, one thread, in
memory) are timed on:

* the complete rows (``missing='raise'``'s kernel);
* the same rows with ``marginalize=True`` (no NaN: the overhead of the option,
  target under 3%);
* the same rows where ``--fraction`` of them (20%) miss 1 to 4 of the 16
  features, drawn at random (up to 2,516 patterns), ``marginalize=True``:
  target at most 1.5x the complete iteration.

Seconds per 1,000,000 rows, medians of ``--repeats`` runs of the three in turn
(a drift of the machine's speed affects them alike), and the ratios.

Then whole EM iterations of ``GaussianMixture`` (``--fit-rows`` x 16 in memory,
chunks of ``--rows``, from the same means), on the threaded scheduler on every
core and on a LocalCluster of one single-threaded worker process per core
(``--scheduler``): seconds per iteration on the complete rows and on the same
rows with holes, each the median of the iterations' times (``verbose=2``) over
``--fit-repeats`` fits of ``--iterations`` iterations, the two fitted in turn.

    python benchmarks/bench_missing.py
    python benchmarks/bench_missing.py --rows 500000 --covariance-type full
    python benchmarks/bench_missing.py --fit-rows 0      # the kernels only
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import warnings

import dask
import dask.array as da
import numpy as np
from bench_em import timed_fit, worker_processes
from bench_kernels import REG_COVAR, TYPES, problem
from threadpoolctl import threadpool_limits

import daskgmm
from daskgmm import kernels


def with_holes(X, fraction, most, seed=1):
    """``X`` with ``fraction`` of its rows missing 1 to ``most`` features at random."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    rows = np.flatnonzero(rng.random(len(X)) < fraction)
    count = rng.integers(1, most + 1, size=len(rows))
    order = np.argsort(rng.random((len(rows), X.shape[1])), axis=1)
    for c in range(1, most + 1):
        sel = count == c
        X[rows[sel][:, None], order[sel, :c]] = np.nan
    return X


def interleaved_medians(fns, repeats):
    """Median seconds of each of ``fns``, run in turn ``repeats`` times (a drift
    of the machine's speed affects them alike)."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def iteration_seconds(X, means, covariance_type, missing, iterations, chunk_rows, client=None):
    """Median seconds of an EM iteration of ``GaussianMixture`` on ``X`` (in memory:
    on the threaded scheduler, or persisted on the workers of ``client``), from
    ``means``."""
    data = da.from_array(X, chunks=(chunk_rows, X.shape[1]))

    def make(**kw):
        return daskgmm.GaussianMixture(len(means), covariance_type=covariance_type,
                                       means_init=means, missing=missing, **kw)

    if client is not None:
        return timed_fit(make, client.persist(data), iterations)[0]
    with dask.config.set(scheduler="threads"):
        return timed_fit(make, data.persist(), iterations)[0]


def scheduler(name):
    """A context giving None for the threaded scheduler, or the client of
    :func:`bench_em.worker_processes` (``processes``)."""
    return contextlib.nullcontext() if name == "threads" else worker_processes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--components", type=int, default=8)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--most", type=int, default=4, help="most features missing in a row")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--covariance-type", choices=TYPES, action="append")
    ap.add_argument("--dtype", choices=["float64", "float32"], action="append")
    ap.add_argument("--fit-rows", type=int, default=1_000_000,
                    help="rows of the whole-iteration comparison (0: skip it)")
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--fit-repeats", type=int, default=3)
    ap.add_argument("--scheduler", choices=["threads", "processes"], action="append",
                    help="where whole iterations run (default: both)")
    args = ap.parse_args()
    n, d, k = args.rows, args.features, args.components
    per_m = 1e6 / n
    print(f"{n} x {d}, K={k}; {args.fraction:.0%} of rows miss 1-{args.most} features; "
          f"seconds per 1M rows, one thread, median of {args.repeats}")
    print(f"{'':18} {'complete':>9} {'+option':>9} {'overhead':>9} {'with NaN':>9} {'ratio':>7}")
    with threadpool_limits(1):
        for dtype in args.dtype or ["float64", "float32"]:
            for cov in args.covariance_type or TYPES:
                X, params, _ = problem(n, d, k, cov, np.dtype(dtype))
                Xm = with_holes(X, args.fraction, args.most)
                base, opt, holes = interleaved_medians([
                    lambda: kernels.chunk_statistics(X, *params, reg_covar=REG_COVAR),
                    lambda: kernels.chunk_statistics(X, *params, 0, True, reg_covar=REG_COVAR),
                    lambda: kernels.chunk_statistics(Xm, *params, 0, True, reg_covar=REG_COVAR),
                ], args.repeats)
                print(f"{dtype + ' ' + cov:18} {base * per_m:9.3f} {opt * per_m:9.3f} "
                      f"{opt / base - 1:+9.1%} {holes * per_m:9.3f} {holes / base:6.2f}x",
                      flush=True)
    if not args.fit_rows:
        return
    for name in args.scheduler or ["threads", "processes"]:
        where = ("threaded scheduler" if name == "threads" else
                 f"LocalCluster of {os.cpu_count()} single-threaded worker processes")
        print(f"\nEM iterations of GaussianMixture, {args.fit_rows} x {d}, K={k}, chunks of {n} "
              f"rows, {where}; seconds per iteration, median over {args.fit_repeats} fits of "
              f"{args.iterations} iterations")
        print(f"{'':18} {'complete':>9} {'with NaN':>9} {'ratio':>7}")
        with scheduler(name) as client, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the data embedded in the graph, once
            for dtype in args.dtype or ["float64", "float32"]:
                for cov in args.covariance_type or TYPES:
                    X, params, _ = problem(args.fit_rows, d, k, cov, np.dtype(dtype))
                    Xm = with_holes(X, args.fraction, args.most)
                    times = [[], []]
                    for _ in range(args.fit_repeats):
                        for data, missing, t in ((X, "raise", times[0]),
                                                 (Xm, "marginalize", times[1])):
                            t.append(iteration_seconds(data, params[1], cov, missing,
                                                       args.iterations, n, client))
                    full, holes = (statistics.median(t) for t in times)
                    print(f"{dtype + ' ' + cov:18} {full:9.3f} {holes:9.3f} {holes / full:6.2f}x",
                          flush=True)


if __name__ == "__main__":
    main()
