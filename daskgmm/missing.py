"""Rows with missing features (NaN), marginalised: the per-chunk math, pure NumPy.

For a row with observed features ``o`` and missing features ``m``, under a
component of mean ``mu``, covariance ``S`` and precision ``P = S^-1``
(Ghahramani & Jordan 1994)::

    log p(x_o | k)    = log N(x_o | mu_o, S_oo)
    E[x_m | x_o, k]   = mu_m + S_mo S_oo^-1 (x_o - mu_o) = mu_m - P_mm^-1 P_mo (x_o - mu_o)
    Cov[x_m | x_o, k] = S_mm - S_mo S_oo^-1 S_om     = P_mm^-1

The E-step takes the responsibilities from the first; the statistics take the
row with its missing part filled by the second (``x^``) and add the third to
the second moments. Everything is computed from the precision, whose block on
the missing features is all that a pattern needs factorised (``|m| x |m|``,
small when few features are missing), not the ``|o| x |o|`` marginal
covariance:

* with ``d = x^ - mu`` (the filled row, centred) and ``g = P d0`` where ``d0``
  is ``d`` with zeros at ``m``, the missing part of ``d`` is
  ``t = -P_mm^-1 g_m``, and the marginal's squared Mahalanobis distance is
  ``(x_o - mu_o)^T S_oo^-1 (x_o - mu_o) = d^T P d = d0 . g + t . g_m``;
* ``log det S_oo = log det S + log det P_mm``.

So a row costs one product with ``P`` per component (as a complete row's
distance does) and a ``|m|``-sized solve. Rows are grouped by their number of
missing features, and within that by pattern: each pattern's ``P_mm`` of every
component is inverted once per chunk, all patterns at once (batched LAPACK).
Diagonal covariances (diag, spherical) need no factorisation: ``t = 0``
(``E[x_m | x_o] = mu_m``) and the conditional covariance is the variances of
``m``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Marginal", "has_missing"]

_LOG_2PI = math.log(2.0 * math.pi)


def has_missing(block: np.ndarray) -> np.ndarray:
    """Rows with at least one NaN, (rows,) bool."""
    return np.isnan(block).any(axis=1)


class _Group:
    """Rows with missing features, and what their marginals need.

    Dense types: rows that miss the same number ``c`` of features; ``idx``
    (rows, c) the features each misses, ``pattern`` the row of ``patterns``
    (n_patterns, c) that it is, and per pattern and unit ``P_mm^-1`` (``inv``)
    and ``log det P_mm`` (``logdet``). Diagonal types: any rows, ``miss`` their
    (rows, D) mask (no pattern needs a factorisation). ``rows``: their indices.
    """

    def __init__(self, rows, idx=None, pattern=None, patterns=None, inv=None, logdet=None,
                 miss=None):
        self.rows, self.idx, self.pattern, self.miss = rows, idx, pattern, miss
        self.patterns, self.inv, self.logdet = patterns, inv, logdet

    def __getitem__(self, sl: slice) -> _Group:
        """The group's rows ``sl`` (the per-pattern arrays shared)."""
        def part(a):
            return None if a is None else a[sl]

        return _Group(self.rows[sl], part(self.idx), part(self.pattern), self.patterns, self.inv,
                      self.logdet, part(self.miss))


def _pattern_codes(miss: np.ndarray) -> np.ndarray:
    """One sortable key per row's missing-feature mask: an int64 of its bits, or
    its packed bytes beyond 62 features."""
    if miss.shape[1] <= 62:
        return np.dot(miss.astype(np.int64), np.left_shift(np.int64(1), np.arange(miss.shape[1])))
    packed = np.ascontiguousarray(np.packbits(miss, axis=1))
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


class Marginal:
    """A mixture's marginals and conditionals for rows with missing features.

    ``offset``: ``log w_k + log N``'s constant for complete rows
    (``log w_k + log|det U_k| - D/2 log 2 pi``, (K,)). ``precisions``: the
    dense precisions, one (D, D) per unit (component, or the one tied matrix).
    """

    def __init__(self, means, precisions_cholesky, cov, offset):
        self.means = np.asarray(means, dtype=np.float64)
        self.n_components, self.n_features = self.means.shape
        self.cov = cov
        self.offset = offset
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        self.diagonal = cov.unit_ndim < 2
        if self.diagonal:
            # (K, D) precisions: the squares of the Cholesky factors' diagonals
            p = np.broadcast_to(np.reshape(pc, (self.n_components, -1)) ** 2, self.means.shape)
            self.precision_diag = np.ascontiguousarray(p)
            self.log_precision = np.log(self.precision_diag)
        else:
            units = cov.units(pc)  # (U, D, D), U = K or 1
            self.precisions = np.matmul(units, np.swapaxes(units, 1, 2))

    # ------------------------------------------------------------ patterns

    def groups(self, block: np.ndarray) -> list[_Group]:
        """The rows of ``block`` (all with a NaN): for dense types grouped by their
        number of missing features, with what each pattern needs."""
        miss = np.isnan(block)
        if self.diagonal:
            return [_Group(np.arange(len(block)), miss=miss)]
        count = miss.sum(axis=1)
        codes = _pattern_codes(miss)
        out = []
        for c in np.unique(count):
            rows = np.flatnonzero(count == c)
            idx = np.nonzero(miss[rows])[1].reshape(len(rows), c)
            _, first, pattern = np.unique(codes[rows], return_index=True, return_inverse=True)
            patterns = idx[first]
            # P_mm of every pattern and unit: (n_patterns, U, c, c)
            sub = np.swapaxes(self.precisions[:, patterns[:, :, None], patterns[:, None, :]], 0, 1)
            logdet = np.linalg.slogdet(sub)[1]
            out.append(_Group(rows, idx, pattern.reshape(-1), patterns, np.linalg.inv(sub), logdet))
        return out

    # ------------------------------------------------------------- per row

    def evaluate(self, x: np.ndarray, group: _Group, ws) -> tuple[np.ndarray, np.ndarray]:
        """Weighted log-probabilities (K, n) of rows ``x`` (one group's, NaN at their
        missing features) and the rows filled with their conditional expectations,
        centred on each mean: (K, n, D) float64."""
        k, d = self.means.shape
        n = len(x)
        diff = ws("m_diff", (k, n, d))
        np.subtract(x[None], self.means[:, None, :], out=diff, dtype=np.float64)
        wlp = ws("m_wlp", (k, n))
        if self.diagonal:
            miss = group.miss
            diff[:, miss] = 0.0  # E[x_m | x_o, k] = mu_m
            sq = ws("m_sq", (k, n, d))
            np.square(diff, out=sq)
            maha = np.matmul(sq, self.precision_diag[:, :, None])[:, :, 0]
            logdet = np.dot(self.log_precision, miss.T.astype(np.float64))  # (K, n)
            n_missing = miss.sum(axis=1)
        else:
            rows = np.arange(n)[:, None]
            diff[:, rows, group.idx] = 0.0  # d0: zero at the missing features
            g = np.matmul(diff, self.precisions)  # P symmetric: rows of d0 P
            maha = np.einsum("knd,knd->kn", diff, g)
            gm = g[:, rows, group.idx]  # (K, n, c)
            inv = group.inv[group.pattern]  # (n, U, c, c)
            if inv.shape[1] == 1:  # tied: one P_mm^-1 per row
                t = -np.einsum("nij,knj->kni", inv[:, 0], gm)
            else:
                t = -np.einsum("nkij,knj->kni", inv, gm)
            maha += np.einsum("kni,kni->kn", t, gm)
            diff[:, rows, group.idx] = t
            logdet = group.logdet[group.pattern].T  # (U, n): broadcast over K for tied
            n_missing = group.idx.shape[1]
        np.multiply(maha, -0.5, out=wlp)
        wlp += self.offset[:, None]
        wlp -= 0.5 * logdet
        wlp += (0.5 * _LOG_2PI) * n_missing
        return wlp, diff

    def conditional_moment(self, group: _Group, resp: np.ndarray) -> np.ndarray:
        """``sum_n r_nk Cov[x_m | x_o, k]`` in the layout of the type's second moments,
        for one group's rows of responsibilities ``resp`` (K, n)."""
        k, d = self.means.shape
        if self.diagonal:  # the variances of the missing features; (K, D) is the layout
            return np.dot(resp, group.miss.astype(np.float64)) / self.precision_diag
        n_patterns = group.inv.shape[0]
        mass = np.zeros((n_patterns, k))  # responsibility summed per pattern
        for j in range(k):
            mass[:, j] = np.bincount(group.pattern, weights=resp[j], minlength=n_patterns)
        patterns = group.patterns
        inv = group.inv if group.inv.shape[1] == k else np.broadcast_to(
            group.inv, (n_patterns, k) + group.inv.shape[2:])
        contrib = mass[:, :, None, None] * inv  # (P, K, c, c)
        flat = (np.arange(k)[None, :, None, None] * d * d
                + patterns[:, None, :, None] * d + patterns[:, None, None, :])
        dense = np.bincount(flat.ravel(), weights=contrib.ravel(), minlength=k * d * d)
        return self.cov.moment_of_dense(dense.reshape(k, d, d))
