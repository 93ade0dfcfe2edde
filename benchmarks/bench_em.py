"""EM iteration speed and peak memory: daskgmm against scikit-learn, in one run.

Both estimators fit the same in-memory data from the same initial parameters,
with ``tol=0`` and a fixed number of iterations. Seconds per iteration are the
median of the per-iteration times that each prints with ``verbose=2``
(scikit-learn's format, which daskgmm keeps). daskgmm runs on the threaded
scheduler, then on a LocalCluster of one single-threaded worker process per
core (Dask's default cluster on a small machine), then on threads again writing
a checkpoint every iteration, and with sample weights; peak memory is the
largest resident size of this process seen during the fit, above the resident
size just before it (not shown for the worker processes).

    python benchmarks/bench_em.py                      # 1,000,000 x 16, k=8, full
    python benchmarks/bench_em.py --n-samples 200000   # quicker
    python benchmarks/bench_em.py --covariance-type diag --skip-processes
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile
import threading
import time
import warnings

import numpy as np
import psutil


class PeakRSS:
    """Largest resident set size of this process while the block runs (sampled)."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.proc = psutil.Process()

    def __enter__(self):
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def extra(self):
        return self.peak - self.base


def make_data(n, d, k, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=8.0, size=(k, d))
    lab = rng.integers(k, size=n)
    X = rng.standard_normal((n, d))
    X *= rng.uniform(0.5, 1.5, size=(k, d))[lab]
    X += means[lab]
    return X.astype(dtype, copy=False), means


@contextlib.contextmanager
def worker_processes():
    """A client of a LocalCluster of one single-threaded worker process per core:
    Dask's default cluster on a small machine, whose nannies make each worker hand
    freed memory back to the system at once (``MALLOC_TRIM_THRESHOLD_``)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=psutil.cpu_count(), threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def timed_fit(make, X, iters, **fit_kw):
    """Fit with verbose=2 and return (median seconds per iteration, peak extra bytes, model)."""
    est = make(verbose=2, verbose_interval=1, max_iter=iters, tol=0.0)
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(out), PeakRSS() as mem:
            t0 = time.perf_counter()
            est.fit(X, **fit_kw)
            total = time.perf_counter() - t0
    lapses = [float(s) for s in re.findall(r"time lapse ([0-9.]+)s\t ll change", out.getvalue())]
    return float(np.median(lapses)), mem.extra, total, est


def save_seconds(model, repeats=20):
    """Median time of writing one checkpoint state of ``model`` (what each iteration adds)."""
    from daskgmm.checkpoint import Checkpoint, FitState
    from daskgmm.params import EMResult

    params = model._params()
    rng = np.random.RandomState(0)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        saver = Checkpoint(f"{tmp}/c.zarr", identity={"params": {}, "data": {}})
        for i in range(repeats):
            t0 = time.perf_counter()
            saver.save(FitState([EMResult(params, [0.0] * i, i, False)], rng.get_state()))
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def spark_seconds_per_iteration(X, k, iters):
    """Seconds per iteration of Spark MLlib's GaussianMixture on local[2] (same data in
    memory, cached), or None when pyspark cannot be imported."""
    try:
        from pyspark.ml.clustering import GaussianMixture as SparkGMM
        from pyspark.ml.linalg import Vectors
        from pyspark.sql import SparkSession
    except ImportError:
        print("Spark MLlib: pyspark is not importable here; skipped")
        return None
    spark = SparkSession.builder.master("local[2]").config("spark.driver.memory", "8g").getOrCreate()
    try:
        frame = spark.createDataFrame([(Vectors.dense(r),) for r in X], ["features"]).cache()
        frame.count()
        times = []
        for n_iter in (1, 1 + iters):  # the difference leaves out initialisation and set-up
            t0 = time.perf_counter()
            SparkGMM(k=k, maxIter=n_iter, tol=0.0, seed=0).fit(frame)
            times.append(time.perf_counter() - t0)
        return (times[1] - times[0]) / iters
    finally:
        spark.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--covariance-type", default="full",
                        choices=["full", "tied", "diag", "spherical"])
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--skip-processes", action="store_true",
                        help="leave out the fit on a LocalCluster of single-threaded workers")
    parser.add_argument("--spark", action="store_true",
                        help="also time Spark MLlib's GaussianMixture (needs pyspark and Java)")
    args = parser.parse_args()

    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    import daskgmm

    n, d, k = args.n_samples, args.n_features, args.n_components
    X, means = make_data(n, d, k, dtype=np.dtype(args.dtype))
    start = dict(
        weights_init=np.full(k, 1.0 / k),
        means_init=means + 0.5,
        precisions_init={
            "full": np.stack([np.eye(d)] * k),
            "tied": np.eye(d),
            "diag": np.ones((k, d)),
            "spherical": np.ones(k),
        }[args.covariance_type],
    )
    print(
        f"data: {n:,} x {d} {args.dtype} ({X.nbytes / 2**20:.0f} MiB), k={k}, "
        f"{args.covariance_type} covariance, "
        f"{args.iterations} iterations, tol=0; {psutil.cpu_count()} cores"
    )
    common = dict(n_components=k, covariance_type=args.covariance_type, **start)
    ours = timed_fit(lambda **kw: daskgmm.GaussianMixture(**common, **kw), X, args.iterations)
    rows = [("daskgmm (threads)", ours)]
    if not args.skip_processes:
        with worker_processes():
            # the data go to the workers once (the estimator persists NumPy input)
            procs = timed_fit(lambda **kw: daskgmm.GaussianMixture(**common, **kw), X,
                              args.iterations)
        # the workers hold the data: the client's memory tells nothing
        rows.append((f"daskgmm ({psutil.cpu_count()} procs)", procs[:1] + (0,) + procs[2:]))
    with tempfile.TemporaryDirectory() as tmp:
        saving = timed_fit(
            lambda **kw: daskgmm.GaussianMixture(**common, checkpoint=f"{tmp}/ckpt.zarr", **kw),
            X,
            args.iterations,
        )
    rows.append(("  + checkpoint/iter", saving))
    weights = np.random.default_rng(1).gamma(2.0, size=n)
    weighted = timed_fit(lambda **kw: daskgmm.GaussianMixture(**common, **kw), X, args.iterations,
                         sample_weight=weights)
    rows.append(("  + sample_weight", weighted))
    spark = None
    if args.spark and args.covariance_type != "full":
        print("Spark MLlib: its GaussianMixture fits full covariances only; skipped")
    elif args.spark:
        spark = spark_seconds_per_iteration(X, k, args.iterations)
    if not args.skip_sklearn:
        ref = timed_fit(lambda **kw: SKGaussianMixture(**common, **kw), X, args.iterations)
        rows.append(("scikit-learn", ref))
        gap = np.max(np.abs(np.array(ours[3].lower_bounds_) - ref[3].lower_bounds_))
    print(f"{'':20s} {'s/iteration':>12s} {'fit total s':>12s} {'peak extra MiB':>15s} {'x data':>7s}")
    for name, (sec, extra, total, _) in rows:
        print(f"{name:20s} {sec:12.3f} {total:12.2f} {extra / 2**20:15.0f} {extra / X.nbytes:7.2f}")
    print(f"checkpoint overhead per iteration: {100 * (saving[0] / ours[0] - 1):+.1f}% (whole fits; noisy)")
    print(f"sample_weight cost per iteration: {100 * (weighted[0] / ours[0] - 1):+.1f}%")
    if spark is not None:
        print(f"Spark MLlib local[2]: {spark:.3f} s/iteration, {spark / ours[0]:.2f}x daskgmm's")
    write = save_seconds(ours[3])
    print(f"one checkpoint write, timed alone: {1000 * write:.1f} ms (median of 20), "
          f"{100 * write / ours[0]:.1f}% of an iteration")
    if not args.skip_sklearn:
        print(f"speed-up per iteration (scikit-learn / daskgmm): {ref[0] / ours[0]:.2f}x")
        if not args.skip_processes:
            print(f"  on {psutil.cpu_count()} single-threaded worker processes: "
                  f"{ref[0] / procs[0]:.2f}x")
        print(f"largest lower-bound difference between the two: {gap:.2e}")


if __name__ == "__main__":
    main()
