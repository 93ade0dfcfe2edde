"""The chunk kernels of an EM pass, one per expansion of a covariance type
(:class:`~daskgmm.covariance.Expansion`), and the sweeps over a chunk's scores.

Each kernel walks its chunk in sub-blocks of ``block_rows`` rows. For each, it
builds the features of its expansion (float64; rows as columns, but as rows in
:func:`diagonal_chunk`), takes the weighted log-probabilities from them with
BLAS (``np.dot``: scipy's BLAS, called from the compiled code), turns them into
responsibilities in place (:func:`~daskgmm.fused.logsumexp.normalise`), and
adds the sub-block's sums with BLAS again. It writes each row's
log-likelihood; a row with a non-finite value gets NaN there and adds nothing
to the sums. The caller counts those rows, sums the scores and finishes the
statistics, once per chunk.
"""

from __future__ import annotations

import numba
import numpy as np

from .base import JIT, block, drop_bad, finite_row, scratch
from .logsumexp import normalise

__all__ = [
    "diagonal_chunk",
    "finite_sum",
    "full_chunk",
    "full_quadratic_chunk",
    "lowest_rows",
    "tied_chunk",
]


@numba.njit(**JIT)
def _load(X, pos, block_rows, shift, buffer, row0, stage, at, lse, compact):
    """The next sub-block of rows from ``pos``, less ``shift``, as columns:
    ``buffer`` holds a (rows, m) array of which rows ``row0`` to ``row0 + D``
    are written, in float64; ``at[:m]`` the rows' indices. Returns ``(m, pos)``,
    ``pos`` the row after those read.

    Without ``compact``, the next ``block_rows`` rows (a chunk without NaN pays
    no check), read along the rows (6x faster than along the features). With
    it (set once a sub-block of the chunk had a bad row), the rows whose values
    are all finite, until ``block_rows`` of them (the others get a NaN
    log-likelihood and are left out of the work): each checked and copied
    whole to ``stage`` (block_rows, D), which is read as above. The sub-blocks
    stay as long as without (rows gathered value by value into shorter ones were
    measured 1.2x the time per row)."""
    n, d = X.shape
    src, first = X, pos
    if compact:
        m = 0
        while m < block_rows and pos < n:
            x = X[pos]
            if finite_row(x):
                for j in range(d):
                    stage[m, j] = x[j]
                at[m] = pos
                m += 1
            else:
                lse[pos] = np.nan
            pos += 1
        src, first = stage, 0
    else:
        m = min(block_rows, n - pos)
        for i in range(m):
            at[i] = pos + i
        pos += m
    for j in range(d):
        s = shift[j]
        base = (row0 + j) * m
        for i in range(m):
            buffer[base + i] = src[first + i, j] - s
    return m, pos


@numba.njit(**JIT)
def diagonal_chunk(X, weight, shift, coef, block_rows, lse, sums):
    """Diagonal and spherical (:class:`~daskgmm.covariance.diagonal._DiagonalExpansion`):
    features ``[x~^2, x~, 1]``, ``sums += resp [x~^2, x~, 1]`` (K, 2D + 1).

    Unlike the other kernels, the features are rows here, (rows, 2D + 1), each
    written from its row of the chunk in one sweep along it (the products take
    them transposed): the chunk is not transposed. Against the features as
    columns (:func:`_load`'s strided reads of the chunk), on chunks of 100,000
    and 250,000 rows x 16, K=8, on a CPU without AVX-512 (paired, medians of
    40): 0.87-0.93x the time on one thread, 0.88-0.92x on two at once. Once a
    sub-block had a bad row, a row with a value that is not finite is left out
    (NaN log-likelihood), as in :func:`_load`."""
    n, d = X.shape
    k = coef.shape[0]
    w = 2 * d + 1
    f_buf, wlp_buf = np.empty(w * block_rows), np.empty(k * block_rows)
    mx, tot, scale, bad, at = scratch(block_rows)
    compact = False
    pos = 0
    while pos < n:
        m = 0
        while m < block_rows and pos < n:
            x = X[pos]
            if compact and not finite_row(x):
                lse[pos] = np.nan
                pos += 1
                continue
            r = f_buf[m * w : (m + 1) * w]
            for j in range(d):
                v = x[j] - shift[j]
                r[j] = v * v
                r[d + j] = v
            r[2 * d] = 1.0
            at[m] = pos
            m += 1
            pos += 1
        if m == 0:
            continue
        f, wlp = block(f_buf, m, w), block(wlp_buf, k, m)
        np.dot(coef, f.T, wlp)
        if normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            for i in range(m):
                if bad[i]:
                    f[i, :] = 0.0  # its responsibilities are 0 already; 0 NaN would not be
            compact = True
        sums += np.dot(wlp, f)


@numba.njit(**JIT)
def tied_chunk(X, weight, shift, pc_t, coef, block_rows, lse, sums, outer):
    """Tied (:class:`~daskgmm.covariance.tied._TiedExpansion`): ``|U^T x~|^2`` and
    ``[x~, 1]``; ``sums += resp [x~, 1]^T`` (K, D + 1), ``outer += sum w x~ x~^T``."""
    n, d = X.shape
    k = coef.shape[0]
    weighted = len(weight) > 0
    f_buf, z_buf = np.empty((d + 1) * block_rows), np.empty(d * block_rows)
    wlp_buf = np.empty(k * block_rows)
    mx, tot, scale, bad, at = scratch(block_rows)
    stage = np.empty((block_rows, d), X.dtype)  # rows kept, once compacting
    compact = False
    pos = 0
    while pos < n:
        m, pos = _load(X, pos, block_rows, shift, f_buf, 0, stage, at, lse, compact)
        if m == 0:
            continue
        f, z, wlp = block(f_buf, d + 1, m), block(z_buf, d, m), block(wlp_buf, k, m)
        f[d, :] = 1.0
        x = f[:d]
        np.dot(pc_t, x, z)
        np.dot(coef, f, wlp)
        for i in range(m):
            mx[i] = 0.0
        for j in range(d):
            for i in range(m):
                mx[i] += z[j, i] * z[j, i]
        for c in range(k):
            for i in range(m):
                wlp[c, i] -= 0.5 * mx[i]
        if normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            drop_bad(f, m, bad)
            compact = True
        sums += np.dot(wlp, f.T)
        if weighted:  # the responsibilities of a row sum to its weight
            for j in range(d):
                for i in range(m):
                    z[j, i] = x[j, i] * (0.0 if bad[i] else weight[at[i]])
            outer += np.dot(z, x.T)
        else:
            outer += np.dot(x, x.T)


@numba.njit(**JIT)
def full_chunk(X, weight, shift, stacked, offset, block_rows, lse, sums, packed):
    """Full (:class:`~daskgmm.covariance.full._FullExpansion`): the rows whitened
    by all components in one product of ``[x~, 1]`` with ``stacked`` (K D, D + 1);
    ``sums += resp [x~, 1]^T`` (K, D + 1) and ``packed += resp vech(x~ x~^T)^T``
    (K, D (D + 1) / 2: the upper triangle of each ``sum r_k x~ x~^T``, row by row),
    one product for all components with the D (D + 1) / 2 products of each row
    (0.67x the time of K products of ``r_k x~`` with ``x~``)."""
    n, d = X.shape
    k = offset.shape[0]
    p_count = d * (d + 1) // 2
    f_buf, y_buf = np.empty((d + 1) * block_rows), np.empty(k * d * block_rows)
    wlp_buf, v_buf = np.empty(k * block_rows), np.empty(p_count * block_rows)
    mx, tot, scale, bad, at = scratch(block_rows)
    stage = np.empty((block_rows, d), X.dtype)  # rows kept, once compacting
    compact = False
    pos = 0
    while pos < n:
        m, pos = _load(X, pos, block_rows, shift, f_buf, 0, stage, at, lse, compact)
        if m == 0:
            continue
        f, y = block(f_buf, d + 1, m), block(y_buf, k * d, m)
        wlp, v = block(wlp_buf, k, m), block(v_buf, p_count, m)
        f[d, :] = 1.0
        np.dot(stacked, f, y)
        for c in range(k):
            for i in range(m):
                wlp[c, i] = 0.0
            for j in range(c * d, (c + 1) * d):
                for i in range(m):
                    wlp[c, i] += y[j, i] * y[j, i]
            for i in range(m):
                wlp[c, i] = offset[c] - 0.5 * wlp[c, i]
        if normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            drop_bad(f, m, bad)
            compact = True
        sums += np.dot(wlp, f.T)
        p = 0
        for a in range(d):
            for b in range(a, d):
                for i in range(m):
                    v[p, i] = f[a, i] * f[b, i]
                p += 1
        packed += np.dot(wlp, v.T)


@numba.njit(**JIT)
def full_quadratic_chunk(X, weight, shift, quad, block_rows, lse, sums):
    """Full, as quadratic forms (:class:`~daskgmm.covariance.full._FullExpansion`):
    with the features ``v = [vech(x~ x~^T), x~, 1]`` (D (D + 1) / 2 + D + 1 per
    row, the products of the upper triangle row by row), the weighted
    log-probabilities of all components are one product ``quad v`` (``quad``
    (K, len(v)): each ``-(x~ - d_k)^T P_k (x~ - d_k) / 2 + offset_k`` expanded),
    and ``sums += resp v^T`` the sums of ``vech(x~ x~^T)``, ``x~`` and 1 (in two
    products: one of more than 144 columns takes 2.4x the time, in the BLAS
    measured). 2 D (D + 1) / 2 + 2 (D + 1) multiply-adds per row and component,
    against D (D + 1) + D (D + 1) / 2 + D + 1 for :func:`full_chunk`, in two
    products whose inner dimension is long (v's length, the rows)."""
    n, d = X.shape
    k = quad.shape[0]
    p_count = d * (d + 1) // 2
    rows = p_count + d + 1
    v_buf, wlp_buf = np.empty(rows * block_rows), np.empty(k * block_rows)
    mx, tot, scale, bad, at = scratch(block_rows)
    stage = np.empty((block_rows, d), X.dtype)  # rows kept, once compacting
    # views added to in place: ``sums[:, :p] += ...`` would be a slice assignment,
    # whose shape-mismatch message numba compiles (5 s of the first compile)
    moments, firsts = sums[:, :p_count], sums[:, p_count:]
    compact = False
    pos = 0
    while pos < n:
        m, pos = _load(X, pos, block_rows, shift, v_buf, p_count, stage, at, lse, compact)
        if m == 0:
            continue
        v, wlp = block(v_buf, rows, m), block(wlp_buf, k, m)
        f = v[p_count:]
        f[d, :] = 1.0
        p = 0
        for a in range(d):
            for b in range(a, d):
                for i in range(m):
                    v[p, i] = f[a, i] * f[b, i]
                p += 1
        np.dot(quad, v, wlp)
        if normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            drop_bad(v, m, bad)
            compact = True
        moments += np.dot(wlp, v[:p_count].T)
        firsts += np.dot(wlp, f.T)


@numba.njit(**JIT)
def finite_sum(score, kept, weight):
    """The sum of the entries of ``score`` where ``kept`` (times ``weight``, if not
    empty), the sum of their weights (or their number) and the number of the
    others, in one sweep (no compressed copy)."""
    weighted = len(weight) > 0
    total, mass, bad = 0.0, 0.0, 0
    for i in range(len(score)):
        if kept[i]:
            w = weight[i] if weighted else 1.0
            total += score[i] * w
            mass += w
        else:
            bad += 1
    return total, mass, bad


@numba.njit(**JIT)
def lowest_rows(log_lik, weight, count):
    """The positions of the ``count`` entries of ``log_lik`` that are lowest, in
    order of (value, position), among those that are finite and whose ``weight``
    (if not empty) is positive: one sweep that keeps them sorted in a buffer of
    ``count`` (most entries cost one comparison). Fewer if fewer qualify."""
    weighted = len(weight) > 0
    vals = np.empty(count)
    pos = np.empty(count, dtype=np.intp)
    held = 0
    for i in range(len(log_lik)):
        v = log_lik[i]
        if not (v - v == 0.0) or (weighted and not weight[i] > 0.0):  # NaN or +-inf
            continue
        if held == count:
            if not v < vals[count - 1]:  # ties go to the earlier row
                continue
            j = count - 1
        else:
            j = held
            held += 1
        while j > 0 and vals[j - 1] > v:
            vals[j] = vals[j - 1]
            pos[j] = pos[j - 1]
            j -= 1
        vals[j] = v
        pos[j] = i
    return pos[:held]
