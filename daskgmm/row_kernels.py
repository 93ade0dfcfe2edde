"""Per-row results of a chunk under a mixture: log-probabilities, densities,
responsibilities, labels, held-out scores and imputations. Pure NumPy, no Dask;
built from :mod:`daskgmm.blocks`. Rows with NaN get theirs from their observed
features where the caller asks (``marginalize``, :mod:`daskgmm.missing`).
"""

from __future__ import annotations

import numpy as np

from .blocks import Model, Workspace, as_2d, marginal_sub_blocks, normalise_in_place
from .patterns import has_missing

__all__ = [
    "chunk_impute",
    "chunk_labels",
    "chunk_log_prob",
    "chunk_responsibilities",
    "chunk_score_samples",
    "chunk_split_scores",
]


def _map_rows(block, weights, means, precisions_cholesky, covariance_type, per_block, width, dtype,
              marginalize=False):
    """A per-row result, sub-block by sub-block. Rows with a non-finite value get
    ``-1`` (integer results) or NaN: they have no label, probability or density.
    With ``marginalize``, rows with NaN get theirs from their observed features
    (a row with none: from the weights alone)."""
    block = as_2d(block)
    model = Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    n = block.shape[0]
    shape = (n,) if width is None else (n, model.n_components)
    out = np.empty(shape, dtype=dtype)
    step = model.block_rows
    with Workspace.of_thread() as ws:
        incomplete = []
        for start in range(0, n, step):
            sub = block[start : start + step]
            wlp = model.log_prob_and_work(sub, ws)[0]
            part = per_block(wlp)
            bad = ~np.isfinite(sub).all(axis=1)
            if bad.any():
                part[bad] = -1 if np.dtype(dtype).kind == "i" else np.nan
                if marginalize:
                    incomplete.append(np.flatnonzero(has_missing(sub)) + start)
            out[start : start + step] = part
        incomplete = np.concatenate(incomplete) if incomplete else ()
        if len(incomplete):
            rows = block[incomplete]
            for group, wlp, _ in marginal_sub_blocks(model, rows, ws):
                part = per_block(wlp)
                if np.dtype(dtype).kind == "i":
                    part[~np.isfinite(wlp).all(axis=0)] = -1
                out[incomplete[group.rows]] = part
        return out


def chunk_log_prob(block, weights, means, precisions_cholesky, covariance_type, marginalize=False):
    """Weighted log-probabilities ``log w_k + log N(x | k)``, shape (rows, K)."""
    return _map_rows(block, weights, means, precisions_cholesky, covariance_type,
                     lambda w: w.T, "K", np.float64, marginalize)


def chunk_score_samples(block, weights, means, precisions_cholesky, covariance_type,
                        marginalize=False):
    """Log-likelihood of each row under the mixture, shape (rows,)."""
    return _map_rows(block, weights, means, precisions_cholesky, covariance_type,
                     normalise_in_place, None, np.float64, marginalize)


def chunk_split_scores(block, weights, means, precisions_cholesky, covariance_type,
                       sample_weight=None, marginalize=False):
    """The log-likelihood of the chunk's rows under the mixture, summed under each
    column of ``sample_weight`` (rows, m): ``[sum_n w_nj log p(x_n) for j] + [sum_n
    w_nj for j]``, a (1, 2m) row; without weights, m = 1 and every row weighs 1.
    Rows without a density (a non-finite value; with ``marginalize``, no observed
    feature) count in neither sum, as in ``GaussianMixture.score``. A search scores
    its fitted and its held-out rows in one pass (their weights as two columns).
    """
    block = as_2d(block)
    ll = chunk_score_samples(block, weights, means, precisions_cholesky, covariance_type,
                             marginalize)
    counted = np.isfinite(ll)
    if marginalize:
        counted &= ~np.isnan(block).all(axis=1)
    w = (np.ones((block.shape[0], 1)) if sample_weight is None
         else np.asarray(sample_weight, dtype=np.float64).reshape(block.shape[0], -1))
    w = np.where(counted[:, None], w, 0.0)
    return np.concatenate([np.dot(np.where(counted, ll, 0.0), w), w.sum(axis=0)])[None, :]


def chunk_responsibilities(block, weights, means, precisions_cholesky, covariance_type,
                           marginalize=False):
    """Posterior probability of each component for each row, shape (rows, K)."""

    def resp(wlp):
        normalise_in_place(wlp)
        return wlp.T

    return _map_rows(block, weights, means, precisions_cholesky, covariance_type, resp, "K",
                     np.float64, marginalize)


def chunk_labels(block, weights, means, precisions_cholesky, covariance_type, marginalize=False):
    """Most probable component of each row, shape (rows,), int64."""
    return _map_rows(block, weights, means, precisions_cholesky, covariance_type,
                     lambda w: w.argmax(axis=0), None, np.int64, marginalize)


def chunk_impute(block, weights, means, precisions_cholesky, covariance_type):
    """The rows with each NaN replaced by its conditional expectation under the
    mixture, ``sum_k r_nk E[x_m | x_o, k]`` (a copy, in the block's dtype)."""
    block = as_2d(block)
    out = np.array(block, copy=True)
    incomplete = np.flatnonzero(has_missing(block))
    if not len(incomplete):
        return out
    model = Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    rows = block[incomplete]
    marginal = model.marginal()
    with Workspace.of_thread() as ws:
        for group, wlp, work in marginal_sub_blocks(model, rows, ws, marginal):
            normalise_in_place(wlp)
            expected = marginal.expected(group, work, wlp, ws)
            r = incomplete[group.rows]
            out[r] = np.where(np.isnan(out[r]), expected, out[r])
        return out
