"""k-means|| initialisation against scikit-learn's 'kmeans', in one run.

Same data (well-separated clusters of unequal sizes), several seeds. For each
initialisation: the final lower bound of the fit that follows (mean over seeds),
the time of the initialisation alone (a fit with ``max_iter=0``; scikit-learn's
includes one E-step), and the number of passes over the data it made (daskgmm:
counted chunk reads divided by the number of chunks; scikit-learn: its KMeans
makes k seeding passes plus one per Lloyd iteration).

    python benchmarks/bench_init.py
"""

from __future__ import annotations

import argparse
import threading
import time
import warnings

import dask.array as da
import numpy as np


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=6.0, size=(k, d))
    p = rng.uniform(0.2, 1.0, size=k)
    lab = rng.choice(k, size=n, p=p / p.sum())
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 1.5, size=(k, 1))[lab] + means[lab]
    return X


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--n-components", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()

    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    from daskgmm import GaussianMixture

    n, d, k = args.n_samples, args.n_features, args.n_components
    X = make_data(n, d, k)
    lock, reads = threading.Lock(), [0]

    def count(block):
        with lock:
            reads[0] += 1
        return block

    src = da.from_array(X, chunks=(args.chunk_rows, d))
    Xd = src.map_blocks(count, dtype=X.dtype, meta=np.empty((0, 0)))
    print(f"data: {n:,} x {d}, {k} clusters of unequal sizes, {src.numblocks[0]} chunks; {args.seeds} seeds")
    rows = {"daskgmm k-means||": [], "scikit-learn kmeans": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(args.seeds):
            reads[0] = 0
            t0 = time.perf_counter()
            GaussianMixture(k, init_params="k-means||", max_iter=0, random_state=seed,
                            persist=False).fit(Xd)
            t_init = time.perf_counter() - t0
            passes = reads[0] / src.numblocks[0]
            lb = GaussianMixture(k, init_params="k-means||", random_state=seed,
                                 max_iter=500).fit(X).lower_bound_
            rows["daskgmm k-means||"].append((lb, t_init, passes))

            t0 = time.perf_counter()
            SKGaussianMixture(k, max_iter=0, random_state=seed).fit(X)
            t_init = time.perf_counter() - t0
            km = KMeans(k, n_init=1, random_state=np.random.RandomState(seed)).fit(X)
            lb = SKGaussianMixture(k, random_state=seed, max_iter=500).fit(X).lower_bound_
            rows["scikit-learn kmeans"].append((lb, t_init, k + km.n_iter_))
    print(f"{'':22s} {'lower bound (mean)':>19s} {'min':>10s} {'init s (median)':>16s} {'passes':>7s}")
    for name, vals in rows.items():
        a = np.array(vals)
        print(f"{name:22s} {a[:, 0].mean():19.5f} {a[:, 0].min():10.5f} {np.median(a[:, 1]):16.3f} {np.median(a[:, 2]):7.1f}")
    ours = np.array(rows["daskgmm k-means||"])[:, 0].mean()
    ref = np.array(rows["scikit-learn kmeans"])[:, 0].mean()
    print(f"mean lower bound, daskgmm - scikit-learn: {ours - ref:+.5f} per sample")


if __name__ == "__main__":
    main()
