"""Weighted log-probabilities into responsibilities and per-row log-sum-exps,
compiled (:func:`normalise`).

``exp`` is computed here (Cody-Waite reduction and a degree-13 polynomial, to
within one unit in the last place of NumPy's), because the compiled ``exp`` of
the C library is a scalar call, 5 times slower than this loop, which the
compiler vectorises; so is each row's ``log`` (:func:`_log`), 2.5 ns a value
against 7-9 for the C library's. Responsibilities under ``1.5e-304`` are set to
exactly 0, as in :func:`daskgmm.blocks.normalise_in_place`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .base import JIT, VECTOR_JIT

__all__ = ["logs", "normalise"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 1.5 * 2**52: added to ``x log2(e)``, rounds it to an integer held in the low bits
_ROUND = 6755399441055744.0
#: ``log(1.5e-304)``: responsibilities below it are set to 0 (see blocks._FLUSHED)
_CUT = math.log(1.5) - 700.0
#: fdlibm's (e_log.c) coefficients of ``log(1 + f) = f - hfsq + s (hfsq + R(s^2))``
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_U20, _U32 = np.uint64(20), np.uint64(32)
_MANTISSA_HI, _LOW_WORD = np.uint64(0x000FFFFF), np.uint64(0xFFFFFFFF)
#: added to the high mantissa bits, carries into bit 20 where the mantissa is >= sqrt(2)
_SQRT2_CARRY, _BIT20 = np.uint64(0x95F64), np.uint64(0x100000)
_ONE_HI, _TWO52 = np.uint64(0x3FF00000), np.uint64(0x4330000000000000)


@numba.njit(inline="always", **JIT)
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


@numba.njit(inline="always", **VECTOR_JIT)
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


@numba.njit(**VECTOR_JIT)
def logs(x, n, out):
    """``out[:n] = log(x[:n])`` (:func:`_log`), for positive normal values; what
    it writes for others is not a logarithm."""
    for i in range(n):
        out[i] = _log(x[i])


@numba.njit(**JIT)
def normalise(wlp, nb, weight, at, lse, bad, mx, tot, scale):
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
    logs(tot, nb, scale)  # tot in [1, K] for the rows kept: the maximum's term is 1
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
