"""Whole fits with default settings: daskgmm against scikit-learn, in one run.

Each estimator fits the same in-memory data from its own default start
('kmeans': scikit-learn's on all rows, daskgmm's on a sample of 2,500 rows a
component, 20,000 to 100,000, where there are more than 100,000) to convergence, with the same
``random_state``. For each data set and covariance type it prints the wall
time, daskgmm's passes over the data (those of the initialisation and of EM
separately, counted as chunk reads on the threaded scheduler), the EM
iterations and the final lower bound of each, and the ratios. With
``--accelerate`` daskgmm also fits with ``accelerate=True`` from the same start,
and two ratios of EM passes are printed: plain EM's to convergence over the
accelerated run's, and the passes each needs to reach plain EM's final lower
bound within ``tol`` (plain EM's over the accelerated run's). ``--tol`` sets
``tol`` for both libraries (default: scikit-learn's 1e-3).

    python benchmarks/bench_fit.py                       # 1,000,000 x 16, k=8
    python benchmarks/bench_fit.py --n-samples 200000    # quicker
    python benchmarks/bench_fit.py --accelerate --tol 1e-5
"""

from __future__ import annotations

import argparse
import threading
import time
import warnings

import dask
import dask.array as da
import numpy as np


def make_data(n, d, k, overlapping, seed=0):
    """k clusters; 'overlapping': centres close against unequal spreads."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5 if overlapping else 12.0, size=(k, d))
    spreads = rng.uniform(0.5, 2.0, size=k) if overlapping else np.ones(k)
    labels = rng.integers(k, size=n)
    A = rng.normal(size=(k, d, d)) * 0.2 + np.eye(d)
    X = np.einsum("nd,nde->ne", rng.standard_normal((n, d)), A[labels]) * spreads[labels, None]
    return X + centres[labels]


class CountedReads:
    """A Dask array over X whose chunk reads are counted (threaded scheduler)."""

    def __init__(self, X, chunk_rows):
        self.lock, self.count = threading.Lock(), 0
        self.source = da.from_array(X, chunks=(chunk_rows, X.shape[1]))
        self.array = self.source.map_blocks(self._read, dtype=X.dtype)

    def _read(self, block):
        with self.lock:
            self.count += 1
        return block

    @property
    def passes(self):
        return self.count / self.source.numblocks[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--covariance-type", nargs="+", default=["full", "diag"])
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--accelerate", action="store_true",
                        help="also fit with accelerate=True and compare the EM passes")
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args()

    from sklearn.mixture import GaussianMixture as SK

    from daskgmm import GaussianMixture

    n, d, k = args.n_samples, args.n_features, args.n_components
    # the compiled kernels are loaded (or compiled, once per installation) at their first
    # use in a process: a small fit of each type first, timed apart, not in the table
    t0 = time.perf_counter()
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore")
        small = make_data(20_000, d, k, True, seed=args.random_state)
        for cov in args.covariance_type:
            GaussianMixture(k, covariance_type=cov, random_state=0, persist=False).fit(
                da.from_array(small, chunks=(5_000, d)))
    print(f"first use of the compiled kernels in this process (small fits, not in the table): "
          f"{time.perf_counter() - t0:.2f} s")
    print(f"{n:,} x {d}, k={k}, default settings (tol={args.tol:g}), "
          f"random_state={args.random_state}, "
          f"chunks of {args.chunk_rows:,} rows, threaded scheduler")
    header = (f"{'data':<12} {'cov':<5} {'daskgmm s':>9} {'sklearn s':>9} {'speed-up':>8} "
              f"{'init passes':>11} {'EM passes':>9} {'sk iter':>7} "
              f"{'daskgmm bound':>14} {'sklearn bound':>14} {'bound diff':>10}")
    print(header)
    for overlapping in (False, True):
        X = make_data(n, d, k, overlapping, seed=args.random_state)
        name = "overlapping" if overlapping else "separated"
        for cov in args.covariance_type:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reads = CountedReads(X, args.chunk_rows)
                with dask.config.set(scheduler="threads"):
                    t0 = time.perf_counter()
                    gm = GaussianMixture(k, covariance_type=cov, random_state=args.random_state,
                                         tol=args.tol, persist=False).fit(reads.array)
                    ours = time.perf_counter() - t0
                t0 = time.perf_counter()
                sk = SK(k, covariance_type=cov, random_state=args.random_state,
                        tol=args.tol).fit(X)
                theirs = time.perf_counter() - t0
            em_passes = gm.n_iter_
            init_passes = reads.passes - em_passes
            print(f"{name:<12} {cov:<5} {ours:9.2f} {theirs:9.2f} {theirs / ours:7.2f}x "
                  f"{init_passes:11.2f} {em_passes:9d} {sk.n_iter_:7d} "
                  f"{gm.lower_bound_:14.6f} {sk.lower_bound_:14.6f} "
                  f"{gm.lower_bound_ - sk.lower_bound_:10.2e}")
            if args.accelerate:
                with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    fast = GaussianMixture(k, covariance_type=cov, random_state=args.random_state,
                                           tol=args.tol, persist=False,
                                           accelerate=True).fit(reads.source)
                    fast_s = time.perf_counter() - t0
                reach, plain_reach = (
                    next((i + 1 for i, b in enumerate(run.lower_bounds_)
                          if b >= gm.lower_bound_ - args.tol), None) for run in (fast, gm))
                print(f"{'  accelerated':<12} {cov:<5} {fast_s:9.2f} {'':>9} {theirs / fast_s:7.2f}x "
                      f"{'':>11} {fast.n_iter_:9d} {'':>7} {fast.lower_bound_:14.6f} {'':>14} "
                      f"{fast.lower_bound_ - sk.lower_bound_:10.2e}   "
                      f"{em_passes / fast.n_iter_:.2f}x fewer passes to convergence; "
                      f"plain EM's bound after {reach} passes against {plain_reach}"
                      + (f" ({plain_reach / reach:.2f}x)" if reach else ""))
    print("speed-up: scikit-learn's wall time / daskgmm's; bound diff: daskgmm - scikit-learn "
          "(per sample; positive is better)")


if __name__ == "__main__":
    main()
