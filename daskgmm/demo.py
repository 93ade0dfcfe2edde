"""Demo data: well-separated Gaussian clusters generated on the spot, as a Dask array."""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask import delayed

__all__ = ["make_blobs"]


def make_blobs(
    n_samples: int = 1_000_000,
    n_features: int = 16,
    n_components: int = 8,
    *,
    separation: float = 8.0,
    chunks: int = 125_000,
    dtype=np.float64,
    random_state: int = 0,
):
    """Gaussian clusters with random means and anisotropic covariances.

    Returns ``(X, labels, means)``: a Dask array of rows (generated chunk by
    chunk on the workers, reproducible for a given ``random_state`` and
    ``chunks``), the true component of each row, and the true means.
    """
    rng = np.random.default_rng(random_state)
    means = rng.normal(scale=separation, size=(n_components, n_features))
    scales = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    rotations = np.stack(
        [np.linalg.qr(rng.normal(size=(n_features, n_features)))[0] for _ in range(n_components)]
    )
    weights = rng.uniform(0.5, 1.5, size=n_components)
    weights /= weights.sum()
    seeds = rng.integers(2**32, size=-(-n_samples // chunks))

    def block(seed, n):
        g = np.random.default_rng(seed)
        lab = g.choice(n_components, size=n, p=weights)
        z = g.standard_normal((n, n_features)) * scales[lab]
        x = np.einsum("nd,nde->ne", z, rotations[lab]) + means[lab]
        return x.astype(dtype), lab

    sizes = [min(chunks, n_samples - i * chunks) for i in range(len(seeds))]
    pairs = [delayed(block, pure=True, nout=2)(int(s), n) for s, n in zip(seeds, sizes)]
    X = da.concatenate(
        [da.from_delayed(x, shape=(n, n_features), dtype=dtype) for (x, _), n in zip(pairs, sizes)]
    )
    labels = da.concatenate(
        [da.from_delayed(y, shape=(n,), dtype=np.int64) for (_, y), n in zip(pairs, sizes)]
    )
    return X, labels, means
