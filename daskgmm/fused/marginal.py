"""The compiled kernels of rows with missing features (NaN), integrated out
(:class:`daskgmm.missing.Marginal`): the rows' patterns of missing features, the
factors and moments of each pattern, and the E-step and statistics of the rows.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .base import JIT, drop_bad, scratch
from .logsumexp import normalise

__all__ = [
    "dense_marginal_rows",
    "diagonal_marginal_rows",
    "nan_patterns",
    "pattern_factors",
    "pattern_moments",
    "shared_marginal_rows",
]


@numba.njit(**JIT)
def diagonal_marginal_rows(X, index, weight, shift, coef, block_rows, lse, sums, empty):
    """Diagonal and spherical rows ``X[index]`` with missing features (NaN),
    integrated out (:class:`daskgmm.missing.Marginal`, its diagonal form):
    features ``[x~0^2, x~0, o, 1]`` (``x~0`` zero at the missing features, ``o``
    one where observed), ``sums += resp [x~0^2, x~0, o, 1]^T`` (K, 3D + 1).
    ``lse``, ``weight``: one per index. A row with no feature observed is bad
    (NaN, nothing added) and ``empty``; so is a row with an infinity, but not
    empty."""
    n, d = len(index), X.shape[1]
    k = coef.shape[0]
    f = np.empty((3 * d + 1, block_rows))
    wlp = np.empty((k, block_rows))
    stage = np.empty((block_rows, d), X.dtype)
    mx, tot, scale, bad, at = scratch(block_rows)
    for start in range(0, n, block_rows):
        nb = min(block_rows, n - start)
        if nb < block_rows:
            f, wlp = np.empty((3 * d + 1, nb)), np.empty((k, nb))
        for i in range(nb):  # each row copied whole, then read along the rows
            x = X[index[start + i]]
            for j in range(d):
                stage[i, j] = x[j]
        seen = tot  # the observed features per row, before normalise
        seen[:nb] = 0.0
        for j in range(d):
            s = shift[j]
            for i in range(nb):
                t = stage[i, j] - s
                o = 0.0 if t != t else 1.0  # NaN: missing
                t = 0.0 if t != t else t
                f[d + j, i] = t
                f[j, i] = t * t
                f[2 * d + j, i] = o
                seen[i] += o
        f[3 * d, :nb] = 1.0
        for i in range(nb):
            empty[start + i] = seen[i] == 0.0
        np.dot(coef, f, wlp)
        for i in range(nb):
            if empty[start + i]:  # no feature observed: the row is bad
                wlp[0, i] = np.nan
        for i in range(nb):
            at[i] = start + i
        if normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale):
            drop_bad(f, nb, bad)
        sums += np.dot(wlp, f.T)


@numba.njit(**JIT)
def _gathered_centred(X, index, start, nb, centre, out):
    """``out[i] = X[index[start + i]] - centre`` for ``i < nb``, in float64, with
    zeros at the missing features (NaN)."""
    for i in range(nb):
        x = X[index[start + i]]
        for j in range(X.shape[1]):
            v = x[j] - centre[j]
            out[i, j] = 0.0 if v != v else v


@numba.njit(**JIT)
def nan_patterns(X, index):
    """The patterns of NaN of the rows ``X[index]`` (up to 64 features), read in
    place (no gathered copy of the rows): ``(ids, codes, order)``, the pattern of
    each row (numbered in the order they first appear), each pattern's mask as
    an integer (bit ``j`` set where feature ``j`` is NaN; uint64) and the rows
    sorted by pattern, stable. One sweep with a hash table of the masks, then a
    counting sort."""
    n, d = len(index), X.shape[1]
    size = 16
    while size < 2 * n:
        size *= 2
    keys = np.empty(size, dtype=np.uint64)
    slots = np.full(size, -1, dtype=np.intp)
    ids = np.empty(n, dtype=np.intp)
    codes = np.empty(n, dtype=np.uint64)
    one = np.uint64(1)
    mask = np.uint64(size - 1)
    count = 0
    for i in range(n):
        x = X[index[i]]
        code = np.uint64(0)
        for j in range(d):
            if x[j] != x[j]:
                code |= one << np.uint64(j)
        h = ((code * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(29)) & mask
        while slots[h] >= 0 and keys[h] != code:
            h = (h + one) & mask
        if slots[h] < 0:
            slots[h] = count
            keys[h] = code
            codes[count] = code
            count += 1
        ids[i] = slots[h]
    starts = np.zeros(count + 1, dtype=np.intp)
    for i in range(n):
        starts[ids[i] + 1] += 1
    for p in range(count):
        starts[p + 1] += starts[p]
    order = np.empty(n, dtype=np.intp)
    for i in range(n):
        order[starts[ids[i]]] = i
        starts[ids[i]] += 1
    return ids, codes[:count], order


@numba.njit(**JIT)
def pattern_factors(precisions, masks, mu_precision, mu_p_mu, patterns, inv, logdet, h, q):
    """For each pattern ``p`` of missing features (``masks`` (P, D) bool) and each
    unit ``u`` (``precisions`` (U, D, D)): ``patterns[p, :c]`` its ``c`` missing
    features in order, ``inv[p, u]`` the inverse of ``P_u`` on them and
    ``logdet[p, u]`` its log-determinant, by a Cholesky factorisation (NaN where
    rounding makes it fail). ``patterns`` (P, C) and ``inv`` (P, U, C, C) are
    padded to the most ``C`` missing, ``inv`` with zeros. With one shared
    precision (``mu_precision`` (K, D) the rows ``P mu~_k``, ``mu_p_mu`` their
    products with ``mu~_k``; none: empty), also the terms of
    :meth:`daskgmm.missing_shared.SharedPrecision._shared_terms`: ``h`` (P, C, K), zero-padded,
    and ``q`` (P, K)."""
    n_patterns, d = masks.shape
    units, width = precisions.shape[0], patterns.shape[1]
    low = np.empty((width, width))
    for p in range(n_patterns):
        c = 0
        for j in range(d):
            if masks[p, j]:
                patterns[p, c] = j
                c += 1
        for j in range(c, width):  # padding: any feature (its terms are zero)
            patterns[p, j] = patterns[p, 0]
        for u in range(units):
            a = precisions[u]
            total = 0.0
            for j in range(c):  # L L^T = a[m, m], column by column
                s = a[patterns[p, j], patterns[p, j]]
                for e in range(j):
                    s -= low[j, e] * low[j, e]
                total += math.log(s) if s > 0.0 else np.nan
                low[j, j] = math.sqrt(s) if s > 0.0 else np.nan
                for i in range(j + 1, c):
                    s = a[patterns[p, i], patterns[p, j]]
                    for e in range(j):
                        s -= low[i, e] * low[j, e]
                    low[i, j] = s / low[j, j]
            logdet[p, u] = total
            out = inv[p, u]
            for j in range(c):  # L^-1 in place of L's lower triangle, column by column
                low[j, j] = 1.0 / low[j, j]
                for i in range(j + 1, c):
                    s = 0.0
                    for e in range(j, i):
                        s -= low[i, e] * low[e, j]
                    low[i, j] = s / low[i, i]
            for i in range(c):  # L^-T L^-1
                for j in range(i + 1):
                    s = 0.0
                    for e in range(i, c):
                        s += low[e, i] * low[e, j]
                    out[i, j] = s
                    out[j, i] = s
        for k in range(mu_precision.shape[0]):
            s_q = mu_p_mu[k]
            for e in range(c):
                s = 0.0
                for b in range(c):
                    s += inv[p, 0, e, b] * mu_precision[k, patterns[p, b]]
                h[p, e, k] = s
                s_q -= s * mu_precision[k, patterns[p, e]]
            q[p, k] = s_q


@numba.njit(**JIT)
def pattern_moments(patterns, sizes, mass, inv, h, dense, at_m):
    """What :meth:`daskgmm.missing.Marginal.finish` adds per pattern (``patterns``,
    ``sizes`` as in :func:`dense_marginal_rows`, ``mass`` (P, K) the summed
    responsibilities): into ``dense`` (K, D, D), the conditional covariances
    ``sum_p M_pk P_mm^-1`` at the missing features (one precision for all,
    ``inv`` (P, 1, c, c): into ``dense[0]``, the masses summed over the
    components); with one shared precision (``h`` (P, c, K), else empty),
    ``H = sum_pk M_pk h_pk h_pk^T`` into ``dense[0]`` and
    ``sum_pk M_pk h_pk`` at the missing features into ``at_m`` (D, K)."""
    k = mass.shape[1]
    per_component = inv.shape[1] == k
    shared = h.shape[2] > 0
    for p in range(len(sizes)):
        c = sizes[p]
        pat = patterns[p]
        if per_component:
            for u in range(k):
                mp = mass[p, u]
                for e in range(c):
                    for b in range(c):
                        dense[u, pat[e], pat[b]] += mp * inv[p, u, e, b]
        else:
            mp = 0.0
            for u in range(k):
                mp += mass[p, u]
            for e in range(c):
                for b in range(c):
                    dense[0, pat[e], pat[b]] += mp * inv[p, 0, e, b]
        if shared:
            for e in range(c):
                for u in range(k):
                    v = mass[p, u] * h[p, e, u]
                    at_m[pat[e], u] += v
                    for b in range(c):
                        dense[0, pat[e], pat[b]] += v * h[p, b, u]


@numba.njit(**JIT)
def _fill_missing(y, a, nb, pattern, start, patterns, sizes, inv, t, quad):
    """Rows ``y`` (zero at their missing features ``m``) and ``a = y P``: with
    ``t = -P_mm^-1 a_m`` (``inv[p]`` the row's pattern's ``P_mm^-1``, its
    ``sizes[p]`` first rows and columns),
    ``quad[i] = y . a + t . a_m``, the squared distance over the observed
    features, and ``y[m] = t``, the conditional mean less the centre."""
    for i in range(nb):
        p = pattern[start + i]
        c = sizes[p]
        q = 0.0
        for j in range(y.shape[1]):
            q += y[i, j] * a[i, j]
        for e in range(c):
            s = 0.0
            for b in range(c):
                s -= inv[p, e, b] * a[i, patterns[p, b]]
            t[e] = s
        for e in range(c):
            q += t[e] * a[i, patterns[p, e]]
            y[i, patterns[p, e]] = t[e]
        quad[i] = q


@numba.njit(**JIT)
def dense_marginal_rows(X, index, pattern, patterns, sizes, inv, const, means, precisions,
                        weight, block_rows, lse, nk, sk, Sk, mass):
    """Rows ``X[index]`` of a full-covariance mixture with missing features
    (NaN), integrated out (:class:`daskgmm.missing.Marginal`, its dense form,
    one precision per component). ``pattern[i]``: the row of ``patterns``
    (P, c) that row ``i`` misses, its first ``sizes[p]`` entries (the rest
    padding); ``inv`` (P, K, c, c): ``P_mm^-1`` of each pattern and component;
    ``const`` (K, P): the terms of the log-densities that do not depend on the row.

    With ``d0 = x - m_k`` (zero at the missing features) and ``g = P_k d0``, the
    row's squared distance over its observed features is ``d0 . g + t . g_m``
    and its conditional mean at the missing ones is ``m_k + t``,
    ``t = -P_mm^-1 g_m``. Adds ``N_k``, ``s_k``, ``S_k`` of the rows filled
    with it (centred on the means) and the responsibilities per pattern to
    ``mass`` (P, K), from which :meth:`~daskgmm.missing.Marginal.finish` adds the
    conditional covariances. Bad rows (an infinity) get NaN and add nothing."""
    n, d = len(index), X.shape[1]
    k = means.shape[0]
    c = patterns.shape[1]
    diff = np.empty((k, block_rows, d))
    g = np.empty((block_rows, d))
    w = np.empty((block_rows, d))
    wlp = np.empty((k, block_rows))
    t, quad = np.empty(c), np.empty(block_rows)
    mx, tot, scale, bad, at = scratch(block_rows)
    for start in range(0, n, block_rows):
        nb = min(block_rows, n - start)
        if nb < block_rows:
            diff, g = np.empty((k, nb, d)), np.empty((nb, d))
            w, wlp = np.empty((nb, d)), np.empty((k, nb))
        for u in range(k):
            mu = means[u]
            dk = diff[u]
            _gathered_centred(X, index, start, nb, mu, dk)
            np.dot(dk, precisions[u], g)  # P symmetric: rows of d0 P
            _fill_missing(dk, g, nb, pattern, start, patterns, sizes, inv[:, u], t, quad)
            for i in range(nb):
                wlp[u, i] = const[u, pattern[start + i]] - 0.5 * quad[i]
        for i in range(nb):
            at[i] = start + i
        normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale)
        for u in range(k):
            dk = diff[u]
            r = wlp[u]
            for i in range(nb):
                ri = r[i]
                nk[u] += ri
                mass[pattern[start + i], u] += ri
                for j in range(d):
                    v = dk[i, j] * ri if ri != 0.0 else 0.0  # bad rows: 0, not 0 x inf
                    w[i, j] = v
                    sk[u, j] += v
            for i in range(nb):
                if r[i] == 0.0:
                    for j in range(d):
                        dk[i, j] = 0.0
            su = Sk[u]  # added to in place: ``Sk[u] += ...`` is a slice assignment, whose
            su += np.dot(w[:nb].T, dk)  # shape-mismatch message numba compiles (5 s)


@numba.njit(**JIT)
def shared_marginal_rows(X, index, pattern, patterns, sizes, inv, const, shift, precision,
                         mu_precision, mu_shifted, weight, block_rows, lse, nk, sk, Sk, mass):
    """Rows ``X[index]`` of a tied mixture with missing features (NaN), integrated
    out with the one shared precision ``P`` (:mod:`daskgmm.missing_shared`'s
    ``_evaluate_shared`` and ``_accumulate_shared``, whose notation this follows): ``pattern``,
    ``patterns``, ``sizes`` as in :func:`dense_marginal_rows`, ``inv`` (P, c, c)
    the ``P_mm^-1`` of each pattern, ``const`` (K, P) with ``-q_pk / 2``,
    ``mu_precision`` the rows ``P mu~_k``. Adds ``N_k``, ``s_k``, the tied ``S``
    but for the parts in ``z`` alone, and the responsibilities per pattern to
    ``mass`` (P, K), which :meth:`~daskgmm.missing.Marginal.finish` completes.

    With the gap ``E = w g`` of a row of weight ``w`` (zero but at its missing
    features, ``P_mm^-1 (R^T P mu~)_m``), the second moments' part in ``y``,
    ``w y y^T + y E^T + E y^T``, is ``z z^T - w g g^T`` with
    ``z = sqrt(w) (y + g)``: one product ``Z^T Z`` per sub-block, and ``g g^T``
    added at the missing features alone."""
    n, d = len(index), X.shape[1]
    k = mu_precision.shape[0]
    c = patterns.shape[1]
    weighted = len(weight) > 0
    y = np.empty((block_rows, d))
    a = np.empty((block_rows, d))
    wlp = np.empty((k, block_rows))
    quad = np.empty(block_rows)
    u = np.empty(c)
    gaps = np.zeros((d, d))  # sum w g g^T
    mx, tot, scale, bad, at = scratch(block_rows)
    for start in range(0, n, block_rows):
        nb = min(block_rows, n - start)
        if nb < block_rows:
            y, a, wlp = np.empty((nb, d)), np.empty((nb, d)), np.empty((k, nb))
        _gathered_centred(X, index, start, nb, shift, y)
        np.dot(y, precision, a)  # P symmetric: rows of P y
        _fill_missing(y, a, nb, pattern, start, patterns, sizes, inv, u, quad)
        np.dot(mu_precision, y.T, wlp)  # (P y) . mu~_k
        for i in range(nb):
            p = pattern[start + i]
            h = 0.5 * quad[i]
            for u_ in range(k):
                wlp[u_, i] += const[u_, p] - h
        for i in range(nb):
            at[i] = start + i
        normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale)
        for i in range(nb):
            if bad[i]:
                for j in range(d):
                    y[i, j] = 0.0
        ry = np.dot(wlp, y)  # (K, D)
        sk += ry
        np.dot(wlp.T, mu_precision, a)  # R^T P mu~ (a spent), at m: beta
        for i in range(nb):  # y into z
            p = pattern[start + i]
            wi = (0.0 if bad[i] else weight[start + i]) if weighted else 1.0
            if wi == 0.0:
                for j in range(d):
                    y[i, j] = 0.0
                continue
            ci = sizes[p]
            for e in range(ci):
                s = 0.0
                for b in range(ci):
                    s += inv[p, e, b] * a[i, patterns[p, b]]
                u[e] = s  # E at m
            iw = 1.0 / wi
            for e in range(ci):
                ue = u[e] * iw
                for b in range(ci):
                    gaps[patterns[p, e], patterns[p, b]] += ue * u[b]
            if weighted:
                root = math.sqrt(wi)
                for j in range(d):
                    y[i, j] *= root
                for e in range(ci):
                    y[i, patterns[p, e]] += u[e] / root
            else:
                for e in range(ci):
                    y[i, patterns[p, e]] += u[e]
        cross = np.dot(ry.T, mu_shifted)
        Sk += np.dot(y.T, y) - cross - cross.T
        for i in range(nb):
            p = pattern[start + i]
            for u_ in range(k):
                r = wlp[u_, i]
                nk[u_] += r
                mass[p, u_] += r
    Sk -= gaps
