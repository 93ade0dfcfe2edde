"""Fused chunk kernels: the E-step and the statistics of a whole chunk in one
compiled function that holds no GIL (numba, ``nogil=True``).

Each kernel walks its chunk in sub-blocks of ``block_rows`` rows. For each, it
builds the features of its :class:`~daskgmm.covariance.Expansion` (float64;
rows as columns, but as rows in :func:`diagonal_chunk`), takes the weighted
log-probabilities from them with BLAS
(``np.dot``: scipy's BLAS, called from the compiled code), turns them into
responsibilities by log-sum-exp in place, and adds the sub-block's sums with
BLAS again. It writes each row's log-likelihood; a row with a non-finite value
gets NaN there and adds nothing to the sums. The caller counts those rows,
sums the scores and finishes the statistics, once per chunk.

Why compiled: the NumPy kernels made a score of calls per sub-block, each a
hand-over of the GIL, and two threads ran them 1.0-1.6x faster than one. Here
a chunk is one call: the threads of a process run their chunks in parallel
(measured 1.9-2.0x), and the elementwise work between the products runs in
cache, in one sweep, without temporaries.

``exp`` is computed here (Cody-Waite reduction and a degree-13 polynomial, to
within one unit in the last place of NumPy's), because the compiled ``exp`` of
the C library is a scalar call, 5 times slower than this loop, which the
compiler vectorises; so is each row's ``log`` (:func:`_log`), 2.5 ns a value
against 7-9 for the C library's. Responsibilities under ``1.5e-304`` are set to
exactly 0, as in :func:`daskgmm.kernels._normalise_in_place`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = [
    "NO_WEIGHT",
    "assignment_diagonal_sums",
    "dense_marginal_rows",
    "diagonal_chunk",
    "diagonal_marginal_rows",
    "finite_sum",
    "full_chunk",
    "full_quadratic_chunk",
    "lowest_rows",
    "nan_patterns",
    "nearest",
    "pattern_factors",
    "pattern_moments",
    "shared_marginal_rows",
    "tied_chunk",
]

#: The ``weight`` argument of a kernel for rows without sample weights.
NO_WEIGHT = np.empty(0)

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 1.5 * 2**52: added to ``x log2(e)``, rounds it to an integer held in the low bits
_ROUND = 6755399441055744.0
#: ``log(1.5e-304)``: responsibilities below it are set to 0 (see kernels._FLUSHED)
_CUT = math.log(1.5) - 700.0
_JIT = {"nogil": True, "cache": True, "fastmath": {"contract"}}
#: ... and for loops with a division that must vectorise: numba's default
#: ("python") checks every divisor for zero, a branch that keeps the loop scalar
_VECTOR_JIT = {**_JIT, "error_model": "numpy"}
#: fdlibm's (e_log.c) coefficients of ``log(1 + f) = f - hfsq + s (hfsq + R(s^2))``
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_U20, _U32 = np.uint64(20), np.uint64(32)
_MANTISSA_HI, _LOW_WORD = np.uint64(0x000FFFFF), np.uint64(0xFFFFFFFF)
#: added to the high mantissa bits, carries into bit 20 where the mantissa is >= sqrt(2)
_SQRT2_CARRY, _BIT20 = np.uint64(0x95F64), np.uint64(0x100000)
_ONE_HI, _TWO52 = np.uint64(0x3FF00000), np.uint64(0x4330000000000000)


@numba.njit(inline="always", **_JIT)
def _exp_poly(r):
    """exp(r) for |r| <= log(2) / 2: Taylor to degree 13, by Horner."""
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


@intrinsic
def _bits(typingctx, x):
    """The bits of a float64 as a uint64 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint64))
    return types.uint64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, b):
    """The float64 whose bits are the uint64 ``b``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.uint64), codegen


@numba.njit(inline="always", **_VECTOR_JIT)
def _log(x):
    """log(x) for a positive normal float64, branch-free so that a loop of it
    vectorises: fdlibm's ``e_log`` (its general case, within one unit in the
    last place; 8% of values in [1, 8] differ from NumPy's ``log`` by one),
    with the exponent and mantissa taken from the bits. The compiled ``log`` of
    the C library is a scalar call: 7.3-8.8 ns a value against 2.5 here."""
    b = _bits(x)
    hi = b >> _U32
    mant = hi & _MANTISSA_HI
    carry = (mant + _SQRT2_CARRY) & _BIT20  # mantissa >= sqrt(2): halve it, k + 1
    k = _from_bits(((hi >> _U20) + (carry >> _U20)) | _TWO52) - (4503599627370496.0 + 1023.0)
    f = _from_bits(((mant | (carry ^ _ONE_HI)) << _U32) | (b & _LOW_WORD)) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG[1] + w * (_LG[3] + w * _LG[5]))
    t2 = z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6])))
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + (t2 + t1)) + k * _LN2_LO)) - f)


@numba.njit(**_VECTOR_JIT)
def _logs(x, n, out):
    """``out[:n] = log(x[:n])`` (:func:`_log`), for positive normal values; what
    it writes for others is not a logarithm."""
    for i in range(n):
        out[i] = _log(x[i])


@numba.njit(**_JIT)
def _normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale):
    """Weighted log-probs ``wlp[:, :nb]`` into responsibilities (times the rows'
    sample weights, if any), in place; ``lse[at[i]]`` the row's log-sum-exp
    (``weight[at[i]]`` its weight).
    Rows whose log-probs have a NaN or no finite maximum get NaN there, zero
    responsibilities and ``bad[i]`` set. Returns whether there was one."""
    k = wlp.shape[0]
    for i in range(nb):
        mx[i] = wlp[0, i]
    for c in range(1, k):
        for i in range(nb):
            v = wlp[c, i]
            m = mx[i]
            mx[i] = v if (v > m or v != v) else m
    for i in range(nb):
        tot[i] = 0.0
    bits = scale.view(np.int64)
    for c in range(k):
        row = wlp[c]
        for i in range(nb):
            x = row[i] - mx[i]
            y = x if x > -708.0 else -708.0
            t = y * _LOG2E + _ROUND
            n = t - _ROUND
            p = _exp_poly((y - n * _LN2_HI) - n * _LN2_LO)
            row[i] = p if x >= _CUT else 0.0  # NaN: 0 (the row is bad anyway)
            scale[i] = t
        for i in range(nb):  # 2**n from n, held in the low 32 bits of t
            bits[i] = (np.int64(np.int32(bits[i] & 0xFFFFFFFF)) + 1023) << 52
        for i in range(nb):
            e = row[i] * scale[i]
            row[i] = e
            tot[i] += e
    any_bad = False
    weighted = len(weight) > 0
    _logs(tot, nb, scale)  # tot in [1, K] for the rows kept: the maximum's term is 1
    for i in range(nb):
        m = mx[i]
        if np.isfinite(m):
            lse[at[i]] = scale[i] + m
            inv = 1.0 / tot[i]
            tot[i] = inv * weight[at[i]] if weighted else inv
            bad[i] = False
        else:
            lse[at[i]] = np.nan
            tot[i] = 0.0
            bad[i] = True
            any_bad = True
    for c in range(k):
        for i in range(nb):
            wlp[c, i] *= tot[i]
    return any_bad


@numba.njit(inline="always", **_JIT)
def _finite_row(x):
    """Whether every value of the row ``x`` is finite (one sum, no branch a value)."""
    check = 0.0
    for v in x:
        check += v - v  # 0, or NaN where a value is not finite
    return check == 0.0


@numba.njit(**_JIT)
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
            if _finite_row(x):
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


@numba.njit(**_JIT)
def _block(buffer, rows, cols):
    """A (rows, cols) C-contiguous array at the start of a flat work ``buffer``."""
    return buffer[: rows * cols].reshape((rows, cols))


@numba.njit(**_JIT)
def _scratch(block_rows):
    """The per-row work arrays of :func:`_normalise` and the rows' positions."""
    return (np.empty(block_rows), np.empty(block_rows), np.empty(block_rows),
            np.empty(block_rows, dtype=np.bool_), np.empty(block_rows, dtype=np.intp))


@numba.njit(**_JIT)
def _drop_bad(f, nb, bad):
    """Zero the feature columns of bad rows (their responsibilities are zero
    already, and 0 times NaN would not be)."""
    for j in range(f.shape[0]):  # along the rows: a masked sweep, not a column each
        for i in range(nb):
            f[j, i] = 0.0 if bad[i] else f[j, i]


@numba.njit(**_JIT)
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
    mx, tot, scale, bad, at = _scratch(block_rows)
    compact = False
    pos = 0
    while pos < n:
        m = 0
        while m < block_rows and pos < n:
            x = X[pos]
            if compact and not _finite_row(x):
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
        f, wlp = _block(f_buf, m, w), _block(wlp_buf, k, m)
        np.dot(coef, f.T, wlp)
        if _normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            for i in range(m):
                if bad[i]:
                    f[i, :] = 0.0  # its responsibilities are 0 already; 0 NaN would not be
            compact = True
        sums += np.dot(wlp, f)


@numba.njit(**_JIT)
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
    mx, tot, scale, bad, at = _scratch(block_rows)
    for start in range(0, n, block_rows):
        nb = min(block_rows, n - start)
        if nb < block_rows:
            f, wlp = np.empty((3 * d + 1, nb)), np.empty((k, nb))
        for i in range(nb):  # each row copied whole, then read along the rows
            x = X[index[start + i]]
            for j in range(d):
                stage[i, j] = x[j]
        seen = tot  # the observed features per row, before _normalise
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
        if _normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale):
            _drop_bad(f, nb, bad)
        sums += np.dot(wlp, f.T)


@numba.njit(**_JIT)
def tied_chunk(X, weight, shift, pc_t, coef, block_rows, lse, sums, outer):
    """Tied (:class:`~daskgmm.covariance.tied._TiedExpansion`): ``|U^T x~|^2`` and
    ``[x~, 1]``; ``sums += resp [x~, 1]^T`` (K, D + 1), ``outer += sum w x~ x~^T``."""
    n, d = X.shape
    k = coef.shape[0]
    weighted = len(weight) > 0
    f_buf, z_buf = np.empty((d + 1) * block_rows), np.empty(d * block_rows)
    wlp_buf = np.empty(k * block_rows)
    mx, tot, scale, bad, at = _scratch(block_rows)
    stage = np.empty((block_rows, d), X.dtype)  # rows kept, once compacting
    compact = False
    pos = 0
    while pos < n:
        m, pos = _load(X, pos, block_rows, shift, f_buf, 0, stage, at, lse, compact)
        if m == 0:
            continue
        f, z, wlp = _block(f_buf, d + 1, m), _block(z_buf, d, m), _block(wlp_buf, k, m)
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
        if _normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            _drop_bad(f, m, bad)
            compact = True
        sums += np.dot(wlp, f.T)
        if weighted:  # the responsibilities of a row sum to its weight
            for j in range(d):
                for i in range(m):
                    z[j, i] = x[j, i] * (0.0 if bad[i] else weight[at[i]])
            outer += np.dot(z, x.T)
        else:
            outer += np.dot(x, x.T)


@numba.njit(**_JIT)
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
    mx, tot, scale, bad, at = _scratch(block_rows)
    stage = np.empty((block_rows, d), X.dtype)  # rows kept, once compacting
    compact = False
    pos = 0
    while pos < n:
        m, pos = _load(X, pos, block_rows, shift, f_buf, 0, stage, at, lse, compact)
        if m == 0:
            continue
        f, y = _block(f_buf, d + 1, m), _block(y_buf, k * d, m)
        wlp, v = _block(wlp_buf, k, m), _block(v_buf, p_count, m)
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
        if _normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            _drop_bad(f, m, bad)
            compact = True
        sums += np.dot(wlp, f.T)
        p = 0
        for a in range(d):
            for b in range(a, d):
                for i in range(m):
                    v[p, i] = f[a, i] * f[b, i]
                p += 1
        packed += np.dot(wlp, v.T)


@numba.njit(**_JIT)
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
    mx, tot, scale, bad, at = _scratch(block_rows)
    stage = np.empty((block_rows, d), X.dtype)  # rows kept, once compacting
    compact = False
    pos = 0
    while pos < n:
        m, pos = _load(X, pos, block_rows, shift, v_buf, p_count, stage, at, lse, compact)
        if m == 0:
            continue
        v, wlp = _block(v_buf, rows, m), _block(wlp_buf, k, m)
        f = v[p_count:]
        f[d, :] = 1.0
        p = 0
        for a in range(d):
            for b in range(a, d):
                for i in range(m):
                    v[p, i] = f[a, i] * f[b, i]
                p += 1
        np.dot(quad, v, wlp)
        if _normalise(wlp, m, weight, at, lse, bad, mx, tot, scale):
            _drop_bad(v, m, bad)
            compact = True
        sums[:, :p_count] += np.dot(wlp, v[:p_count].T)
        sums[:, p_count:] += np.dot(wlp, f.T)


@numba.njit(**_JIT)
def _gathered_centred(X, index, start, nb, centre, out):
    """``out[i] = X[index[start + i]] - centre`` for ``i < nb``, in float64, with
    zeros at the missing features (NaN)."""
    for i in range(nb):
        x = X[index[start + i]]
        for j in range(X.shape[1]):
            v = x[j] - centre[j]
            out[i, j] = 0.0 if v != v else v


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def pattern_factors(precisions, masks, mu_precision, mu_p_mu, patterns, inv, logdet, h, q):
    """For each pattern ``p`` of missing features (``masks`` (P, D) bool) and each
    unit ``u`` (``precisions`` (U, D, D)): ``patterns[p, :c]`` its ``c`` missing
    features in order, ``inv[p, u]`` the inverse of ``P_u`` on them and
    ``logdet[p, u]`` its log-determinant, by a Cholesky factorisation (NaN where
    rounding makes it fail). ``patterns`` (P, C) and ``inv`` (P, U, C, C) are
    padded to the most ``C`` missing, ``inv`` with zeros. With one shared
    precision (``mu_precision`` (K, D) the rows ``P mu~_k``, ``mu_p_mu`` their
    products with ``mu~_k``; none: empty), also the terms of
    :meth:`daskgmm.missing.Marginal._shared_terms`: ``h`` (P, C, K), zero-padded,
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
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
    mx, tot, scale, bad, at = _scratch(block_rows)
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
        _normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale)
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
            Sk[u] += np.dot(w[:nb].T, dk)


@numba.njit(**_JIT)
def shared_marginal_rows(X, index, pattern, patterns, sizes, inv, const, shift, precision,
                         mu_precision, mu_shifted, weight, block_rows, lse, nk, sk, Sk, mass):
    """Rows ``X[index]`` of a tied mixture with missing features (NaN), integrated
    out with the one shared precision ``P`` (:meth:`daskgmm.missing.Marginal._evaluate_shared`
    and ``_accumulate_shared``, whose notation this follows): ``pattern``,
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
    mx, tot, scale, bad, at = _scratch(block_rows)
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
        _normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale)
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


@numba.njit(**_JIT)
def nearest(X, coef_t, centers, label, d2, diff):
    """For each row of ``X``, the centre of least ``[x, 1] . coef_t[:, c]`` (``coef_t``
    (D + 1, C): ``[-2 c, |c|^2]``, the squared distance less ``|x|^2``; the first of
    equal ones, as NumPy's ``argmin``), its index in ``label``, the rows less it in
    ``diff`` and the exact squared distance to it in ``d2`` (float64). A row with
    a NaN or an infinity gets a non-finite ``d2``."""
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


@numba.njit(**_JIT)
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
