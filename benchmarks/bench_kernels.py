"""The per-chunk E-step and statistics against the machine's floor and scikit-learn, in one run.

First the GEMM peak of this machine is measured (square products of
``--gemm-size``, float32 and float64, one thread and two), and the two-thread
scaling the machine gives at that moment to work that shares nothing: a
compiled loop over 512 values held in L1 (no memory traffic, no GIL), one
thread against two at once; on a VM whose second core is shared with other
guests this is where the kernels' scaling is to be judged (also taken again
right after each kernel's, the column ``loop``). Then, for each
covariance type and dtype, on the same in-memory rows and parameters:

* daskgmm: ``kernels.chunk_statistics`` (log-probabilities, responsibilities and
  the sufficient statistics of one chunk, as an EM pass runs it: with the
  default ``reg_covar``) on one thread;
* the same on two threads at once, each on its own chunk: whether the kernel's
  BLAS calls and work arrays let threads run in parallel (scaling 2.00x is
  perfect);
* the floor: the kernel's minimum multiply-adds at the one-thread GEMM peak
  of the data's dtype, or one streaming pass over the chunk in memory where
  that is longer. Full: ``K D^2`` (whitening) + ``K D (D + 1) / 2``
  (symmetric second moments) per row; tied: ``D^2 + 2 K D``; diag and
  spherical: ``4 K D`` (distances and statistics over ``x^2`` and ``x``);
* scikit-learn: the work of one EM iteration on the same rows
  (``_estimate_log_prob_resp`` and ``_m_step``), one thread.

Seconds per 1,000,000 rows, medians of ``--repeats`` runs.

    python benchmarks/bench_kernels.py
    python benchmarks/bench_kernels.py --rows 500000 --covariance-type diag
"""

from __future__ import annotations

import argparse
import functools
import statistics
import threading
import time

import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

from daskgmm import kernels
from daskgmm.covariance import COVARIANCE

TYPES = ["full", "tied", "diag", "spherical"]


def multiply_adds_per_row(covariance_type, k, d):
    return {
        "full": k * d * d + k * d * (d + 1) // 2,
        "tied": d * d + 2 * k * d,
        "diag": 4 * k * d,
        "spherical": 4 * k * d,
    }[covariance_type]


#: GaussianMixture's default ``reg_covar``, which an EM pass hands to the kernel
REG_COVAR = 1e-6


def problem(n, d, k, covariance_type, dtype, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    X = (means[rng.integers(k, size=n)] + rng.standard_normal((n, d))).astype(dtype)
    cov = {
        "full": np.stack([np.eye(d)] * k),
        "tied": np.eye(d),
        "diag": np.ones((k, d)),
        "spherical": np.ones(k),
    }[covariance_type]
    pc = COVARIANCE[covariance_type].precision_cholesky(cov)
    return X, (np.full(k, 1.0 / k), means, pc, covariance_type), cov


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def on_two_threads(fn_a, fn_b):
    threads = [threading.Thread(target=fn) for fn in (fn_a, fn_b)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


@functools.cache
def _compute_loop():
    """The loop of :func:`compute_scaling`, compiled once a run."""
    import numba

    @numba.njit(nogil=True, cache=False)
    def spin(n, out):
        for i in range(out.shape[0]):
            out[i] = 0.1 * i
        for _ in range(n):
            for i in range(out.shape[0]):
                out[i] = out[i] * 0.999999 + 1e-7
        return out[0]

    return spin


def compute_scaling(repeats, n=2_000_000):
    """Two threads at once over one, on a compiled loop in L1 that shares nothing:
    the scaling the machine gives now (2.00x is two free cores)."""
    spin = _compute_loop()
    a, b = np.zeros(512), np.zeros(512)
    spin(10, a)
    one = median_time(lambda: spin(n, a), repeats)
    both = statistics.median(on_two_threads(lambda: spin(n, a), lambda: spin(n, b))
                             for _ in range(repeats))
    return 2 * one / both


def gemm_peak(size, dtype, threads, repeats):
    """FLOP/s of ``np.dot`` on square matrices, BLAS on ``threads`` threads."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size)).astype(dtype) for _ in range(2))
    out = np.empty((size, size), dtype=dtype)
    with threadpool_limits(limits=threads):
        np.dot(a, b, out=out)  # warm up
        seconds = median_time(lambda: np.dot(a, b, out=out), repeats)
    return 2.0 * size**3 / seconds


def streaming_pass(block, repeats):
    """Seconds of one read of ``block`` (a sum over its rows)."""
    return median_time(lambda: np.add.reduce(block, axis=0), repeats)


def sklearn_iteration(X, args, cov):
    weights, means, pc, covariance_type = args
    gm = SkGaussianMixture(len(weights), covariance_type=covariance_type, reg_covar=1e-6)
    gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_ = weights, means, cov, pc

    def run():
        _, log_resp = gm._estimate_log_prob_resp(X)
        gm._m_step(X, log_resp)
        gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_ = weights, means, cov, pc

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000, help="rows per chunk")
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--covariance-type", nargs="+", default=TYPES)
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gemm-size", type=int, default=2048)
    args = parser.parse_args()
    n, d, k = args.rows, args.n_features, args.n_components
    per_m = 1e6 / n

    peak = {}
    print(f"GEMM peak, {args.gemm_size}-square np.dot, GFLOP/s:")
    for dtype in args.dtype:
        one = gemm_peak(args.gemm_size, dtype, 1, args.repeats)
        two = gemm_peak(args.gemm_size, dtype, 2, args.repeats)
        peak[dtype] = one
        print(f"  {dtype}: one thread {one / 1e9:6.1f}, two threads {two / 1e9:6.1f}")
    print(f"two threads at once over one, a compiled loop in L1 that shares nothing: "
          f"{compute_scaling(args.repeats):.2f}x")

    print(f"chunks of {n:,} x {d}, k={k}; seconds per 1,000,000 rows, median of {args.repeats}")
    print(f"{'':8} {'':9} {'daskgmm':>8} {'floor':>7} {'x floor':>8} {'2 threads':>10} "
          f"{'scaling':>8} {'loop':>6} {'sklearn':>8} {'ratio':>6}")
    with threadpool_limits(limits=1):
        for dtype in args.dtype:
            for cov_type in args.covariance_type:
                X, kargs, cov = problem(2 * n, d, k, cov_type, np.dtype(dtype))
                a, b = X[:n], X[n:]
                em = dict(reg_covar=REG_COVAR)
                kernels.chunk_statistics(a, *kargs, **em)  # warm up the work arrays' pages
                ours = median_time(lambda: kernels.chunk_statistics(a, *kargs, **em), args.repeats)
                both = statistics.median(
                    on_two_threads(lambda: kernels.chunk_statistics(a, *kargs, **em),
                                   lambda: kernels.chunk_statistics(b, *kargs, **em))
                    for _ in range(args.repeats)
                )
                loop = compute_scaling(args.repeats)
                gemm_floor = 2.0 * multiply_adds_per_row(cov_type, k, d) * n / peak[dtype]
                floor = max(gemm_floor, streaming_pass(a, args.repeats))
                theirs = median_time(sklearn_iteration(a, kargs, cov), args.repeats)
                print(
                    f"{dtype:8} {cov_type:9} {ours * per_m:8.3f} {floor * per_m:7.3f} "
                    f"{ours / floor:7.2f}x {both * per_m / 2:10.3f} "
                    f"{2 * ours / both:7.2f}x {loop:5.2f}x {theirs * per_m:8.3f} "
                    f"{theirs / ours:5.1f}x"
                )
    print("floor: minimum multiply-adds at the one-thread GEMM peak, or one streaming pass "
          "over the chunk if longer; x floor: daskgmm / floor, one thread; 2 threads: wall "
          "time of two chunks at once, per 1,000,000 rows of the two; scaling: 2 x one "
          "thread / two at once (2.00x is perfect); loop: the same scaling of a compiled loop "
          "in L1 that shares nothing, taken right after (what the machine gives now); "
          "ratio: scikit-learn / daskgmm, one thread")


if __name__ == "__main__":
    main()
