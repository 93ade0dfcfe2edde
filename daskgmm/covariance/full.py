"""Full covariance: one (D, D) covariance per component."""

from __future__ import annotations

import numpy as np

from .. import fused
from .base import (
    CovarianceType,
    Expansion,
    check_symmetric_positive_definite,
    cholesky_of_precisions,
    cholesky_of_precisions_from_covariances,
    covariances_of_cholesky,
    sum_squares,
)

__all__ = ["FULL", "Full"]


#: Bound on the growth of the rounding in a sub-block's products in the NumPy loop:
#: their length, the sub-block's rows, which :class:`_FullExpansion` keeps to at most
#: this many. The fused kernel's: its sub-block's rows plus the number of its
#: sub-blocks in the chunk (their sums added one after another).
_PRODUCT_GROWTH = 2048
#: The largest rounding of the expansion's covariances, relative to ``reg_covar``.
_SHARE_OF_REG = 1e-3
#: The largest rounding of a log-density as an expanded quadratic form
#: (:func:`daskgmm.fused.full_quadratic_chunk`), at the rows of its component.
_QUADRATIC_ROUNDING = 1e-8


class _FullExpansion(Expansion):
    """Precisions ``P_k = L_k L_k^T``, features ``f(x) = [x~, 1]`` (rows as columns)::

        (x~ - d_k)^T P_k (x~ - d_k) = |[L_k^T, -L_k^T d_k] f(x)|^2

    One stacked product of the features with the K (D, D + 1) blocks
    ``[L_k^T, -L_k^T d_k]`` whitens every component, with no (K, rows, D) array
    of the rows centred on each mean; the second moments are taken about ``c``
    (``sum_n r_nk x~ x~^T``, a stacked product along the rows) and moved to the
    means once per chunk, in float64. Measured against the centred kernel on
    250,000 x 16, K=8: 0.80x the time on one thread, 0.73x two at once.

    In an EM pass (:meth:`fused`) the log-probabilities are taken instead as the
    quadratic forms expanded on ``v = [vech(x~ x~^T), x~, 1]``, the features the
    second moments need anyway (:func:`daskgmm.fused.full_quadratic_chunk`:
    0.84x the time of the whitening kernel, :func:`daskgmm.fused.full_chunk`).
    Their rounding is about ``len(v)`` epsilons of ``|P_k| (|x~| + |d_k|)^2``
    (``|P_k|`` the Frobenius norm), where the whitening's is of ``|y|^2``: more
    for a component whose covariance is ill-conditioned or far from ``c``. So
    they are taken only where that is at most :data:`_QUADRATIC_ROUNDING` at
    the component's own rows, ``|x~|^2`` about ``|d_k|^2 + trace(S_k)``; else
    the whitening kernel.

    The moments about ``c`` are rounded by about ``|x~|^2`` times epsilon (times
    the products' growth) in absolute terms, not relative to the component's
    own spread: a component collapsing onto a point would not get an exactly
    zero covariance. So the expansion is taken only where that rounding is at
    most ``_SHARE_OF_REG`` of the ``reg_covar`` that the M-step adds anyway
    (``reg_covar > 0``). Its features are float64 whatever the rows' dtype, so
    float32 rows take it too (their centred kernel ran its products in float32).
    """

    max_rows = _PRODUCT_GROWTH
    #: The compiled kernel's sub-block: 153 x 192 float64 features (235 KB) and their
    #: products stay in a 512 KiB L2. On 250,000 x 16, K=8, against 256 rows (paired, five
    #: rounds, on a Zen 3 CPU): 0.91x (float64) and 0.93x (float32) the time on one
    #: thread, 0.90x and 0.93x on two; 128 rows 0.90-0.95x, 64 rows 1.02x.
    fused_rows = 192

    def __init__(self, shift, delta, stacked, offset, quadratic=None):
        super().__init__(shift, delta)
        self.stacked, self.offset, self.quadratic = stacked, offset, quadratic
        k, d = delta.shape
        self.row_bytes = (d + 1 + k * d) * 8  # the features and the whitened rows

    @classmethod
    def of(cls, means, precisions_cholesky, offset, dtype, reg_covar, chunk_rows=None):
        if not reg_covar > 0:
            return None
        shift, delta = cls.split_means(means)
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        low_t = np.swapaxes(pc, 1, 2)  # L_k^T
        whitened_delta = np.einsum("kij,kj->ki", low_t, delta)  # L_k^T d_k
        if not cls.close_enough(np.einsum("ki,ki->k", whitened_delta, whitened_delta)):
            return None
        # |x~|^2 of a component's rows: about |d_k|^2 + trace(S_k), S_k = (L_k L_k^T)^-1
        try:
            inverse = np.linalg.inv(pc)
        except np.linalg.LinAlgError:
            return None
        size = np.einsum("kd,kd->k", delta, delta) + np.einsum("kij,kij->k", inverse, inverse)
        # the growth: a product's length and the partial sums added one after another
        growth = (_PRODUCT_GROWTH if chunk_rows is None
                  else cls.fused_rows + -(-chunk_rows // cls.fused_rows))
        rounding = growth * np.finfo(np.float64).eps * size
        if not (np.isfinite(rounding).all() and rounding.max() <= _SHARE_OF_REG * reg_covar):
            return None
        stacked = np.concatenate([low_t, -whitened_delta[:, :, None]], axis=2)  # (K, D, D + 1)
        offset = np.asarray(offset, dtype=np.float64)
        return cls(shift, delta, stacked, offset,
                   cls._quadratic(stacked, offset, size + np.einsum("kd,kd->k", delta, delta)))

    @staticmethod
    def _quadratic(stacked, offset, reach):
        """``quad`` of :func:`~daskgmm.fused.full_quadratic_chunk`: row k holds
        ``-M_k / 2`` on ``v = [vech(x~ x~^T), x~, 1]`` (the off-diagonal products
        twice), ``M_k = A_k^T A_k`` with ``A_k = [L_k^T, -L_k^T d_k]``, plus
        ``offset_k`` on the 1; None where its rounding, ``len(v) eps |P_k|
        reach_k`` with ``reach_k`` about ``(|x~| + |d_k|)^2 / 2``, could exceed
        :data:`_QUADRATIC_ROUNDING`."""
        k, d = stacked.shape[:2]
        form = np.einsum("kia,kib->kab", stacked, stacked)  # M_k, (K, D + 1, D + 1)
        rows, cols = np.triu_indices(d)
        width = len(rows) + d + 1
        rounding = (width * np.finfo(np.float64).eps
                    * np.sqrt(np.einsum("kab,kab->k", form[:, :d, :d], form[:, :d, :d])) * reach)
        if not (np.isfinite(rounding).all() and rounding.max() <= _QUADRATIC_ROUNDING):
            return None
        twice = np.where(rows == cols, 1.0, 2.0)
        return np.concatenate([-0.5 * twice * form[:, rows, cols], -form[:, :d, d],
                               (offset - 0.5 * form[:, d, d])[:, None]], axis=1)

    def features(self, block, ws):
        return self.shifted_and_one(block, ws)

    def log_prob(self, features, ws, out):
        k, d = self.delta.shape
        y = ws("whitened", (k, d, features.shape[1]))
        np.matmul(self.stacked, features, out=y)
        np.square(y, out=y)
        np.sum(y, axis=1, out=out)
        out *= -0.5
        out += self.offset[:, None]
        return out

    def new_sums(self):
        k, d = self.delta.shape
        return {"features": np.zeros((k, d + 1)), "outer": np.zeros((k, d, d))}

    def accumulate(self, features, resp, ws, sums, weight=None):
        k, d = self.delta.shape
        x = features[:d]
        sums["features"] += np.dot(resp, features.T)  # sum r x~, sum r
        weighted = ws("whitened", (k, d, features.shape[1]))  # the E-step's, spent
        np.multiply(x[None], resp[:, None, :], out=weighted)
        sums["outer"] += np.matmul(weighted, x.T)  # sum r x~ x~^T, per component

    def fused(self, block, weight, lse, sums):
        k, d = self.delta.shape
        p_count = d * (d + 1) // 2
        if self.quadratic is not None:
            both = np.zeros((k, p_count + d + 1))
            fused.full_quadratic_chunk(block, weight, self.shift, self.quadratic,
                                       self.fused_rows, lse, both)
            packed = both[:, :p_count]
            sums["features"] += both[:, p_count:]
        else:
            packed = np.zeros((k, p_count))
            fused.full_chunk(block, weight, self.shift, self.stacked.reshape(k * d, d + 1),
                             self.offset, self.fused_rows, lse, sums["features"], packed)
        upper = np.zeros((k, d, d))
        upper[:, *np.triu_indices(d)] = packed
        sums["outer"] += upper + np.swapaxes(np.triu(upper, 1), 1, 2)

    def finish(self, sums):
        """``N_k``, ``s_k`` and ``S_k``, centred on the means (``c + d_k``)."""
        d = self.delta.shape[1]
        f = sums["features"]
        nk, sx = f[:, d], f[:, :d]
        Sk = sums["outer"].copy()
        FULL.shift_second_moment(Sk, nk, sx, -self.delta)
        return nk, sx - nk[:, None] * self.delta, Sk


class Full(CovarianceType):
    """Full covariance: in an EM pass, the expansion
    (:class:`_FullExpansion`) where its rounding is far below ``reg_covar``;
    else, and for log-probabilities alone, the rows centred on each mean and one
    stacked product per sub-block."""

    name = "full"

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    second_moment_shape = shape

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) / 2.0

    def cholesky_diagonal(self, precisions_cholesky):
        return np.diagonal(precisions_cholesky, axis1=1, axis2=2)

    def log_det_cholesky(self, precisions_cholesky, n_features):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return np.log(self.cholesky_diagonal(pc)).sum(axis=1)

    def precision_cholesky(self, covariances, reg_covar=None):
        cov = np.asarray(covariances, dtype=np.float64)
        return cholesky_of_precisions_from_covariances(cov, range(len(cov)), reg_covar)

    def precision_cholesky_from_precisions(self, precisions):
        return cholesky_of_precisions(np.asarray(precisions, dtype=np.float64))

    def precisions(self, precisions_cholesky):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return pc @ np.swapaxes(pc, -1, -2)

    def covariances(self, precisions_cholesky):
        return covariances_of_cholesky(np.asarray(precisions_cholesky, dtype=np.float64))

    def check_precisions(self, precisions):
        check_symmetric_positive_definite(precisions, self.name, lambda i: f"precisions_init[{i}]")

    def sample(self, rng, means, covariances, counts):
        return [rng.multivariate_normal(m, c, int(s)) for m, c, s in zip(means, covariances, counts)]

    def m_step_covariances(self, nk, shift, Sk, reg_covar):
        d = shift.shape[1]
        cov = Sk / nk[:, None, None] - shift[:, :, None] * shift[:, None, :]
        cov[:, np.arange(d), np.arange(d)] += reg_covar
        return cov

    def mahalanobis(self, diff, precisions_cholesky, ws):
        y = ws("y", diff.shape, diff.dtype)
        np.matmul(diff, precisions_cholesky, out=y)
        return sum_squares(y, ws("maha", diff.shape[:2], diff.dtype))

    def second_moment(self, diff, r_t, ws):
        wd = ws("weighted", diff.shape, diff.dtype)
        np.multiply(diff, r_t[:, :, None], out=wd)
        return np.matmul(wd.transpose(0, 2, 1), diff)

    def precision_times(self, precisions_cholesky, vectors):
        return np.einsum("kij,kj->ki", self.precisions(precisions_cholesky), vectors)

    def shift_second_moment(self, Sk, nk, sk, delta):
        cross = sk[:, :, None] * delta[:, None, :]
        Sk += cross + cross.transpose(0, 2, 1) + nk[:, None, None] * delta[:, :, None] * delta[:, None, :]

    def add_own_second_moment(self, Sk, k, moment):
        Sk[k] += moment

    def expansion(self, means, precisions_cholesky, offset, dtype, reg_covar=0.0,
                  chunk_rows=None):
        return _FullExpansion.of(means, precisions_cholesky, offset, dtype, reg_covar,
                                 chunk_rows)


FULL = Full()
