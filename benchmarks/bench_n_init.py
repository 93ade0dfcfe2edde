"""Several initialisations in lockstep: one pass over a Zarr store per iteration for all.

A compressed float32 Zarr array is written to disk; then, streamed
(``persist=False``) on the threaded scheduler, ``--n-init`` initialisations
fitted together are timed against one alone (what each of them cost when they
ran one after another, each with its own pass per iteration). Seconds per
iteration are medians of the E-step passes, timed where the EM calls them;
``--cold`` drops the store from the page cache before every pass, as for data
larger than memory. The k-means|| initialisation (8 passes however many
initialisations) is timed the same way, as a whole, with the store in the
page cache.

    python benchmarks/bench_n_init.py                       # 5,000,000 x 16, k=8, diag, n_init=3
    python benchmarks/bench_n_init.py --cold --covariance-type full
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
import warnings
from unittest import mock

import dask
from bench_stream import evict, write_store

import daskgmm
from daskgmm import em


def seconds_per_pass(path, k, covariance_type, n_init, iterations, cold):
    """Median seconds of one E-step pass of a streamed fit with ``n_init`` initialisations."""
    original, times = em.expectation, []

    def timed(X, params, *args, **kwargs):
        if cold:
            evict(path)
        t0 = time.perf_counter()
        out = original(X, params, *args, **kwargs)
        times.append((time.perf_counter() - t0, len(params)))
        return out

    gm = daskgmm.GaussianMixture(
        k, covariance_type=covariance_type, n_init=n_init, init_params="random_from_data",
        max_iter=iterations, tol=0.0, persist=False, random_state=0,
    )
    with mock.patch.object(em, "expectation", timed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dask.config.set(scheduler="threads"):
            gm.fit(str(path))
    return statistics.median(t for t, n in times if n == n_init)


def init_seconds(path, k, covariance_type, n_init):
    """Seconds of the k-means|| initialisation of ``n_init`` initialisations (no EM)."""
    gm = daskgmm.GaussianMixture(k, covariance_type=covariance_type, n_init=n_init, max_iter=0,
                                 init_params="k-means||", persist=False, random_state=0)
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        gm.fit(str(path))
        return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=5_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--covariance-type", default="diag")
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--cold", action="store_true", help="read from storage at every pass")
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to write the store")
    args = parser.parse_args()
    n, k, n_init = args.n_samples, args.n_components, args.n_init
    with tempfile.TemporaryDirectory(prefix="daskgmm-n-init-", dir=args.dir) as root:
        path = pathlib.Path(root) / "x.zarr"
        write_store(path, n, args.n_features, k, args.chunk_rows)
        print(
            f"{n:,} x {args.n_features} float32, k={k}, {args.covariance_type}, "
            f"{'read from storage' if args.cold else 'store in the page cache'} at every pass"
        )
        run = dict(k=k, covariance_type=args.covariance_type, iterations=args.iterations, cold=args.cold)
        one = seconds_per_pass(path, n_init=1, **run)
        together = seconds_per_pass(path, n_init=n_init, **run)
        init_one = init_seconds(path, k, args.covariance_type, 1)
        init_together = init_seconds(path, k, args.covariance_type, n_init)
    print(f"  1 initialisation:             {one:6.2f} s per iteration")
    print(f"  {n_init} initialisations, lockstep: {together:6.2f} s per iteration "
          f"(one after another: {n_init * one:.2f} s)")
    print(f"  k-means|| initialisation: 1 in {init_one:.2f} s, {n_init} together in "
          f"{init_together:.2f} s (one after another: {n_init * init_one:.2f} s)")
    print(f"lockstep speed-up for n_init={n_init}: {n_init * one / together:.2f}x per EM iteration, "
          f"{n_init * init_one / init_together:.2f}x for the initialisation")


if __name__ == "__main__":
    main()
