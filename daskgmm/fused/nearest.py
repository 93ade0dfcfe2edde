"""The compiled kernels of the k-means (:mod:`daskgmm.kmeans`): each row's
nearest centre, and the statistics of a hard assignment of diagonal layout."""

from __future__ import annotations

import numba
import numpy as np

from .base import JIT

__all__ = [
    "assignment_diagonal_sums",
    "nearest",
]


@numba.njit(**JIT)
def nearest(X, coef_t, centers, label, d2, diff):
    """For each row of ``X``, the centre of least ``[x, 1] . coef_t[:, c]`` (``coef_t``
    (D + 1, C): ``[-2 c, |c|^2]``, the squared distance less ``|x|^2``; the first of
    equal ones, as NumPy's ``argmin``), its index in ``label``, the rows less it in
    the first D columns of ``diff`` (any after them are left as they are) and the
    exact squared distance to it in ``d2`` (float64). A row with a NaN or an
    infinity gets a non-finite ``d2``."""
    n, d = X.shape
    count = coef_t.shape[1]
    rows = 512
    f, r = np.empty((rows, d + 1)), np.empty((rows, count))
    for start in range(0, n, rows):
        nb = min(rows, n - start)
        if nb < rows:
            f, r = np.empty((nb, d + 1)), np.empty((nb, count))
        for i in range(nb):
            for j in range(d):
                f[i, j] = X[start + i, j]
            f[i, d] = 1.0
        np.dot(f, coef_t, r)
        for i in range(nb):
            # branch-free (selects, not jumps that the data mispredict); a row with a
            # NaN or an infinity takes the exact rule below
            best, low, check = 0, r[i, 0], r[i, 0] - r[i, 0]
            for c in range(1, count):
                v = r[i, c]
                check += v - v
                take = v < low
                best = c if take else best
                low = v if take else low
            if check != 0.0:
                best, low = 0, r[i, 0]
                if low == low:
                    for c in range(1, count):
                        v = r[i, c]
                        if v < low:
                            best, low = c, v
                        elif v != v:  # NaN: NumPy's argmin takes the first
                            best = c
                            break
            label[start + i] = best
            s = 0.0
            for j in range(d):
                t = f[i, j] - centers[best, j]
                diff[start + i, j] = t
                s += t * t
            d2[start + i] = s


@numba.njit(**JIT)
def assignment_diagonal_sums(diff, label, d2, weight, nk, sk, Sk):
    """The statistics of a hard assignment for the diagonal layout of ``S_k``
    (diag, spherical: (K, D)): for each row of finite ``d2``, ``nk[l] += w``,
    ``sk[l] += w diff``, ``Sk[l] += w diff^2`` (``l`` its label, ``w`` its weight,
    1 without), in the rows' order."""
    weighted = len(weight) > 0
    for i in range(len(label)):
        if not np.isfinite(d2[i]):
            continue
        c = label[i]
        w = weight[i] if weighted else 1.0
        nk[c] += w
        for j in range(diff.shape[1]):
            t = diff[i, j]
            sk[c, j] += w * t
            Sk[c, j] += w * t * t
