"""A model search streamed from Zarr, against its floor and against the models fitted one by one.

A compressed float32 Zarr array (8 clusters) is written to disk; then, on the
threaded scheduler in this process, with ``persist=False`` (every pass reads
and decompresses the store):

* the search: ``GaussianMixtureSearch(range(1, 11), 'all')`` (40 models, default
  settings, ``random_state=0``): wall time, passes over the data (chunk reads
  counted), the longest fit's iterations and the sum of all;
* its floor: the arithmetic of every model plus one bare read of the store per
  pass. A model's arithmetic is that of its kernels on in-memory chunks, timed
  with both cores busy (two chunks at once, one per thread, as in a pass) and
  scaled to all rows: its initial assignment statistics (the last k-means||
  pass), its E-step + statistics times its iterations, and its scoring; the
  k-means|| rounds' own arithmetic (distances to at most ~100 candidates) is left
  out of the floor, which is thus a little low. The EM passes are also compared
  with their part of the floor alone;
* the same models fitted one after another (``GaussianMixture`` with the same
  parameters, each its own k-means||): wall time and passes. ``--separate N``
  fits only N of them, spread over the grid, and scales their time to all (said so).

    python benchmarks/bench_search.py                       # 2,000,000 x 16, 40 models
    python benchmarks/bench_search.py --n-samples 500000 --separate 8
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import shutil
import statistics
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
from bench_kernels import REG_COVAR
from bench_stream import bare_read, starting_point, write_store
from threadpoolctl import threadpool_limits

import daskgmm
from daskgmm import kernels, kmeans, row_kernels
from daskgmm.covariance import COVARIANCE, COVARIANCE_TYPES


class CountedReads:
    """The store as a Dask array whose chunk reads are counted (threaded scheduler)."""

    def __init__(self, path):
        self.source = da.from_zarr(str(path))
        self.count = 0
        self._lock = threading.Lock()
        self.array = self.source.map_blocks(self._read, dtype=self.source.dtype)

    def _read(self, block):
        with self._lock:
            self.count += 1
        return block

    def passes(self) -> float:
        passes, self.count = self.count / self.source.numblocks[0], 0
        return passes


def two_thread_seconds(kernel, blocks, repeats=3) -> float:
    """Seconds per chunk of ``kernel`` with both cores busy, as in a pass: the median
    wall time of the chunks ``blocks`` run at once, one per thread (BLAS on one
    thread each), divided by their number."""
    times = []
    with threadpool_limits(1), ThreadPoolExecutor(len(blocks)) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(kernel, blocks))
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(blocks)


def model_kernels(blocks, k, covariance_type) -> dict:
    """Seconds per chunk, both cores busy, of the three kernels a model runs: its
    initial assignment statistics, an E-step + statistics, and the final scoring."""
    start = starting_point(da.from_array(blocks[0], chunks=blocks[0].shape), k, covariance_type)
    pc = COVARIANCE[covariance_type].precision_cholesky_from_precisions(start["precisions_init"])
    args = (start["weights_init"], start["means_init"], pc, covariance_type)
    return {
        "assign": two_thread_seconds(lambda b: kmeans.chunk_assignment_statistics(
            b, start["means_init"], covariance_type), blocks),
        "em": two_thread_seconds(  # as an EM pass runs it
            lambda b: kernels.chunk_statistics(b, *args, reg_covar=REG_COVAR), blocks),
        "score": two_thread_seconds(lambda b: row_kernels.chunk_split_scores(b, *args), blocks),
    }


class PassTimes(logging.Handler):
    """The seconds of every EM pass of a search, from its per-pass log lines."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds = []

    def emit(self, record):
        if record.msg.startswith("pass %d"):
            self.seconds.append(record.args[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--max-components", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--separate", type=int, default=None, metavar="N",
                        help="fit only N models, spread over the grid, one by one (default: all)")
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to write the store")
    args = parser.parse_args()
    n, d, threads = args.n_samples, args.n_features, os.cpu_count()
    ks, types = range(1, args.max_components + 1), list(COVARIANCE_TYPES)
    models = [(k, t) for t in types for k in ks]
    root = pathlib.Path(tempfile.mkdtemp(prefix="daskgmm-search-", dir=args.dir))
    path = root / "x.zarr"
    print(f"{n:,} x {d} float32 from Zarr (chunks of {args.chunk_rows:,} rows), {len(models)} "
          f"models (K=1..{args.max_components} x {len(types)} types), persist=False, threaded "
          f"scheduler on {threads} cores")
    try:
        write_store(path, n, d, 8, args.chunk_rows)
        data = CountedReads(path)
        with dask.config.set(scheduler="threads"), warnings.catch_warnings():
            warnings.simplefilter("ignore", daskgmm.ConvergenceWarning)
            read = min(bare_read(path) for _ in range(2))
            passes = PassTimes()
            logging.getLogger("daskgmm.search").addHandler(passes)
            logging.getLogger("daskgmm.search").setLevel(logging.INFO)
            t0 = time.perf_counter()
            search = daskgmm.GaussianMixtureSearch(ks, types, random_state=0,
                                                   persist=False).fit(data.array)
            search_seconds = time.perf_counter() - t0
            search_passes = data.passes()
            table = search.results_
            longest, total = int(table["n_iter"].max()), int(table["n_iter"].sum())
            blocks = [np.asarray(b) for b in dask.compute(*(data.source.blocks[i] for i in range(2)))]
            per_chunk = {(k, t): model_kernels(blocks, k, t) for k, t in models}
            scale = n / len(blocks[0])
            em = sum(row.n_iter * per_chunk[row.n_components, row.covariance_type]["em"]
                     for row in table.itertuples()) * scale
            init = sum(c["assign"] for c in per_chunk.values()) * scale
            score = sum(c["score"] for c in per_chunk.values()) * scale
            arithmetic = init + em + score
            floor = arithmetic + search_passes * read
            em_seconds = sum(passes.seconds)
            em_floor = em + longest * read
            print(f"bare read of the store: {read:.2f} s")
            print(f"search: {search_seconds:.1f} s, {search_passes:.1f} passes (k-means|| + the "
                  f"longest fit's {longest} iterations + 1 scoring pass; the fits' iterations sum "
                  f"to {total}); best {search.best_params_}")
            print(f"floor: arithmetic of every model {arithmetic:.1f} s (start {init:.1f}, EM "
                  f"{em:.1f}, scoring {score:.1f}) + {search_passes:.1f} reads x {read:.2f} s = "
                  f"{floor:.1f} s; search / floor: {search_seconds / floor:.2f}x")
            print(f"EM passes: {em_seconds:.1f} s against their floor {em_floor:.1f} s: "
                  f"{em_seconds / em_floor:.2f}x; start and scoring: "
                  f"{search_seconds - em_seconds:.1f} s against "
                  f"{floor - em_floor:.1f} s: {(search_seconds - em_seconds) / (floor - em_floor):.2f}x")
            # a spread of the grid: the models differ in cost by type and size
            step = max(1, len(models) // args.separate) if args.separate else 1
            chosen = models[::step][: args.separate or None]
            t0 = time.perf_counter()
            for k, t in chosen:
                daskgmm.GaussianMixture(k, covariance_type=t, random_state=0,
                                        persist=False).fit(data.array)
            separate = time.perf_counter() - t0
            separate_passes = data.passes()
            what = "" if len(chosen) == len(models) else (
                f" ({len(chosen)} spread over the grid fitted, scaled by {len(models) / len(chosen):.1f})")
            scaled = separate * len(models) / len(chosen)
            scaled_passes = separate_passes * len(models) / len(chosen)
        print(f"separate fits: {scaled:.1f} s, {scaled_passes:.0f} passes{what}")
        print(f"search speed-up over separate fits: {scaled / search_seconds:.2f}x in time, "
              f"{scaled_passes / search_passes:.1f}x fewer reads")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
