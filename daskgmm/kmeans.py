"""Nearest-centre chunk kernels and the k-means|| rounds: pure NumPy, no Dask.

Used by the initialisations (:mod:`daskgmm.init`): the sampling rounds and the
candidate weighting of k-means||, and the statistics of a hard assignment
(Lloyd passes, the 'kmeans' start).
"""

from __future__ import annotations

import numpy as np

from . import fused
from .blocks import Accumulator, Workspace, as_2d, row_weights
from .kernels import row_uniforms

__all__ = [
    "chunk_assignment_statistics",
    "chunk_kmeans_parallel_round",
    "chunk_nearest_counts",
]

#: Rows per sub-block of the nearest-centre kernels (:class:`_Nearest`).
_NEAREST_ROWS = 8192


class _Nearest:
    """Index of the nearest centre and the squared distance to it, for each row.

    The ranking comes from one float64 GEMM, ``[x, 1] . [-2 c, |c|^2]`` (the
    squared distance less ``|x|^2``, which every centre shares); the distance
    to the chosen centre is then recomputed directly, so that it is exact (zero
    for a row equal to a centre) whatever the offset of the data. Returns the
    labels, the squared distances and the rows less their centre (float64, a
    buffer reused by the next call; with ``ones``, (n, D + 1), a column of ones
    after them). Rows with a NaN or infinity get a non-finite distance.
    """

    def __init__(self, centers, marginalize=False, ones=False):
        self.centers = np.asarray(centers, dtype=np.float64)
        c = self.centers
        self.coef = np.concatenate([-2.0 * c, np.einsum("kd,kd->k", c, c)[:, None]], axis=1)
        self.coef_t = np.ascontiguousarray(self.coef.T)
        self.ws = Workspace()
        self.marginalize = marginalize
        self.ones = ones

    def _diff(self, n, d):
        """The work array of the rows less their centre, and its first ``d`` columns."""
        out = self.ws("diff", (n, d + 1 if self.ones else d))
        if self.ones:
            out[:, d] = 1.0
        return out, out[:, :d]

    def __call__(self, block):
        n, d = block.shape
        if not (self.marginalize and np.isnan(block).any()):  # one compiled call
            label, d2 = np.empty(n, dtype=np.intp), np.empty(n)
            out, _ = self._diff(n, d)
            fused.nearest(block, self.coef_t, self.centers, label, d2, out)
            return label, d2, out
        x = self.ws("x", (n, d + 1))
        x[:, :d] = block
        x[:, d] = 1.0
        ranking = np.dot(x, self.coef.T, out=self.ws("ranking", (n, len(self.coef))))
        missing = np.isnan(block).any(axis=1) if self.marginalize else None
        if missing is not None and missing.any():
            self._observed_ranking(x[missing, :d], ranking, missing)
        label = ranking.argmin(axis=1)
        out, diff = self._diff(n, d)
        np.subtract(x[:, :d], self.centers[label], out=diff)
        d2 = np.einsum("nd,nd->n", diff, diff)
        if missing is not None and missing.any():
            # a missing feature is taken at its centre's value; the distance over
            # the observed ones is scaled to all D (NaN for a row with none)
            sub = diff[missing]
            gap = np.isnan(sub)
            sub[gap] = 0.0
            diff[missing] = sub
            with np.errstate(divide="ignore", invalid="ignore"):
                d2[missing] = (sub * sub).sum(axis=1) * d / (d - gap.sum(axis=1))
        return label, d2, out

    def _observed_ranking(self, rows, ranking, missing):
        """The ranking of rows with NaN, over their observed features:
        ``|x_o - c_o|^2 - |x_o|^2 = -2 x_o . c_o + |c_o|^2``."""
        gap = np.isnan(rows)
        x0 = np.where(gap, 0.0, rows)
        c = self.centers
        ranking[missing] = -2.0 * np.dot(x0, c.T) + np.dot((~gap).astype(np.float64), (c * c).T)


def chunk_kmeans_parallel_round(block, centers, oversampling, seed, round_, sample_weight=None,
                                block_info=None, marginalize=False):
    """One k-means|| round on one chunk: its cost and its sampled rows, in one pass.

    Row x is selected when ``u_x * phi < l * d^2(x, C)`` with ``u_x`` a uniform
    draw fixed by (seed, round, global row index) and ``phi`` the cost of the
    whole data set, which no chunk knows. Since ``phi >= phi_chunk``, every row
    that can be selected satisfies ``u_x * phi_chunk < l * d^2``: the chunk
    returns those (at most ``l`` expected) with ``d^2`` and ``u``, and the client
    applies the exact test once ``phi`` is summed. With ``sample_weight``, ``d^2``
    is weighted (a row of weight w counts as w rows). Returns ``(phi_chunk,
    n_nonfinite, rows, d2, u, row_index)``. With ``marginalize``, rows with NaN
    are measured over their observed features (:class:`_Nearest`) and a selected
    one has its NaN taken from its nearest centre; rows with none are left out,
    not counted as non-finite.
    """
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    row0 = block_info[0]["array-location"][0][0] if block_info else 0
    n, d = block.shape
    phi, bad = 0.0, 0
    keep_rows, keep_d2, keep_u, keep_idx = [], [], [], []
    if n:
        d2 = np.empty(n)
        nearest = _Nearest(centers, marginalize)
        label = np.empty(n, dtype=np.int64)
        for start in range(0, n, _NEAREST_ROWS):
            stop = start + _NEAREST_ROWS
            label[start:stop], d2[start:stop], _ = nearest(block[start:stop])
        finite = np.isfinite(d2)
        empty = np.isnan(block).all(axis=1) if marginalize else False
        bad = int(np.count_nonzero(~finite & ~empty))
        d2[~finite] = 0.0
        if sw is not None:
            d2 *= sw
        phi = float(d2.sum())
        u = row_uniforms(seed, row0, n, 1, stream=round_ + 1)[:, 0]
        sel = np.flatnonzero(u * phi < oversampling * d2)
        chosen = block[sel].astype(np.float64)
        if marginalize:
            gap = np.isnan(chosen)
            chosen[gap] = np.asarray(centers, dtype=np.float64)[label[sel]][gap]
        keep_rows.append(chosen)
        keep_d2.append(d2[sel])
        keep_u.append(u[sel])
        keep_idx.append(sel + row0)
    empty = np.empty(0)
    return (
        phi,
        bad,
        np.concatenate(keep_rows) if keep_rows else np.empty((0, d)),
        np.concatenate(keep_d2) if keep_d2 else empty,
        np.concatenate(keep_u) if keep_u else empty,
        np.concatenate(keep_idx) if keep_idx else np.empty(0, dtype=np.int64),
    )


def chunk_nearest_counts(block, centers, sample_weight=None, marginalize=False):
    """Number (or total sample weight) of the rows nearest to each centre, as a
    (1, n_centers) float64 row."""
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    k = len(centers)
    counts = np.zeros(k)
    nearest = _Nearest(centers, marginalize)
    for start in range(0, block.shape[0], _NEAREST_ROWS):
        label, d2, _ = nearest(block[start : start + _NEAREST_ROWS])
        finite = np.isfinite(d2)
        w = None if sw is None else sw[start : start + _NEAREST_ROWS][finite]
        counts += np.bincount(label[finite], weights=w, minlength=k)
    return counts[None, :]


def chunk_assignment_statistics(block, centers, covariance_type, sample_weight=None,
                                marginalize=False):
    """Statistics of a hard assignment of each row to its nearest centre.

    The same layout as :func:`chunk_statistics` (centred on ``centers``), with
    ``log_lik_sum`` holding the k-means inertia (sum of squared distances).
    Rows are grouped by their centre (:class:`_Nearest`), so that each is
    centred on its own centre only, in float64; for a dense ``S_k`` (full, tied)
    one product per centre of its rows with a column of ones gives ``S_k``,
    ``s_k`` and ``N_k`` at once (0.63x the time of a sum and a product per
    centre, full, 100,000 x 16, 8 centres). ``sample_weight`` weights each
    row's part. With ``marginalize``, a row's missing features are taken at its
    centre's values (the statistics of the start understate their spread) and
    rows with every feature missing are counted (``n_empty``), not used.
    """
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    centers = np.asarray(centers, dtype=np.float64)
    k, d = centers.shape
    acc = Accumulator(k, d, covariance_type)
    dense = acc.cov.unit_ndim == 2
    nearest = _Nearest(centers, marginalize, ones=dense)
    for start in range(0, block.shape[0], _NEAREST_ROWS):
        label, d2, diff = nearest(block[start : start + _NEAREST_ROWS])  # dense: [x - c, 1]
        w = None if sw is None else sw[start : start + _NEAREST_ROWS]
        finite = np.isfinite(d2)  # False for rows with every feature missing
        empty = np.isnan(block[start : start + _NEAREST_ROWS]).all(axis=1) if marginalize else None
        acc.add_score(d2, finite, w, empty)
        if not dense:  # diag, spherical: one compiled sweep in the rows' order
            fused.assignment_diagonal_sums(diff, label, d2, fused.NO_WEIGHT if w is None else w,
                                           acc.nk, acc.sk, acc.Sk)
            continue
        counts = np.bincount(label[finite], minlength=k)
        # rows left out go last; as int16 NumPy sorts by radix (8,192 rows: 0.03 ms
        # against 0.19 for int64 labels), in the same stable order
        key = np.where(finite, label, k).astype(np.int16 if k < 2**15 else np.intp)
        order = np.argsort(key, kind="stable")
        grouped = np.take(diff, order[: counts.sum()], axis=0)
        grouped_w = None if w is None else w[order[: counts.sum()]]
        ends = np.cumsum(counts)
        for j in np.flatnonzero(counts):
            own = grouped[ends[j] - counts[j] : ends[j]]  # [rows of centre j less it, 1]
            weighted = own if grouped_w is None else \
                own * grouped_w[ends[j] - counts[j] : ends[j], None]
            moments = np.dot(weighted.T, own)  # [[sum w x x^T, .], [sum w x, sum w]]
            acc.nk[j] += moments[d, d]
            acc.sk[j] += moments[d, :d]
            acc.cov.add_own_second_moment(acc.Sk, j, moments[:d, :d])
    return acc.result(block.shape[0])
