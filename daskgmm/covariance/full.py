"""Full covariance: one (D, D) covariance per component."""

from __future__ import annotations

import numpy as np

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

#: Largest ``eps(dtype) * |U_k^T| |d_k|`` (the size of the terms that the
#: whitening GEMM cancels, beyond those of ``U_k^T (x - m_k)``) for which that
#: GEMM runs in the data's dtype (float32 data); beyond it, in float64.
_LOW_PRECISION_BOUND = 1e-5


class _FullExpansion(Expansion):
    """All components from two GEMMs with features ``[x~, 1]`` (D + 1 rows), and one
    over the packed products ``vech(x~ x~^T)``.

    * E-step: ``z_k = U_k^T (x - m_k) = U_k^T x~ - U_k^T d_k``: one GEMM of the
      stacked ``[U_k^T, -U_k^T d_k]`` (K D, D + 1) with the features, in the
      data's dtype while the extra rounding stays below
      :data:`_LOW_PRECISION_BOUND` (float32 data whose means are not far
      apart in whitened units), else in float64. The squared distance is
      ``|z_k|^2``. Cancellation is linear here (not quadratic, as in an
      expansion of the quadratic form): the extra error of ``z_k`` is about
      ``eps * |U_k^T| |d_k|``.
    * Statistics, in float64: ``N_k`` and ``sum r x~`` from one GEMM with the
      features; the second moments ``sum r vech(x~ x~^T)`` (D (D + 1) / 2 per
      component, not D^2) from one GEMM whose inner dimension is the rows, then
      shifted exactly to each mean.
    """

    def __init__(self, shift, delta, stacked, offset, dtype):
        super().__init__(shift, delta)
        self.stacked = stacked  # (K D, D + 1) in the dtype of the E-step GEMM
        self.offset = offset
        self.dtype = dtype
        d = delta.shape[1]
        self.upper = np.triu_indices(d)
        self.starts = np.concatenate([[0], np.cumsum(np.arange(d, 0, -1))])
        # the features, the whitened coordinates and the packed products
        self.row_bytes = (d + 1) * 8 + stacked.size // (d + 1) * dtype.itemsize + len(self.upper[0]) * 8

    @classmethod
    def of(cls, means, precisions_cholesky, offset, dtype):
        shift, delta = cls.split_means(means)
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        k, d = delta.shape
        stacked = np.empty((k, d, d + 1))
        stacked[:, :, :d] = pc.transpose(0, 2, 1)
        stacked[:, :, d] = -np.einsum("ki,kij->kj", delta, pc)
        if not cls.close_enough(np.square(stacked[:, :, d]).sum(axis=1)):
            return None
        # What U_k^T x~ - U_k^T d_k cancels, beyond what U_k^T (x - m_k) does anyway.
        magnitude = np.einsum("kij,ki->kj", np.abs(pc), np.abs(delta))
        if np.finfo(dtype).eps * magnitude.max(initial=0.0) > _LOW_PRECISION_BOUND:
            dtype = np.dtype(np.float64)
        return cls(shift, delta, stacked.reshape(k * d, d + 1).astype(dtype), offset, dtype)

    def features(self, block, ws):
        d = block.shape[1]
        f = ws("features", (d + 1, block.shape[0]))
        np.subtract(block.T, self.shift[:, None], out=f[:d])
        f[d] = 1.0
        return f

    def log_prob(self, features, ws, out):
        b = features.shape[1]
        k = len(self.offset)
        # (rows, K D): BLAS runs this orientation of the product faster than (K D, rows)
        rows = ws("features_rows", features.shape[::-1], self.dtype)
        np.copyto(rows, features.T, casting="same_kind")
        z = ws("whitened", (b, self.stacked.shape[0]), self.dtype)
        np.dot(rows, self.stacked.T, out=z)
        maha = sum_squares(z.reshape(b, k, -1), ws("maha", (b, k), self.dtype))
        np.multiply(maha.T, -0.5, out=out)
        out += self.offset[:, None]
        return out

    def new_sums(self):
        k, d = self.delta.shape
        return {"features": np.zeros((k, d + 1)), "packed": np.zeros((k, len(self.upper[0])))}

    def accumulate(self, features, resp, ws, sums, weight=None):
        d = self.delta.shape[1]
        x = features[:d]
        sums["features"] += np.dot(resp, features.T)  # sum r x~, sum r
        packed = ws("packed", (len(self.upper[0]), x.shape[1]))
        for i in range(d):
            np.multiply(x[i], x[i:], out=packed[self.starts[i] : self.starts[i + 1]])
        sums["packed"] += np.dot(resp, packed.T)  # sum r vech(x~ x~^T)

    def finish(self, sums):
        """``N_k``, ``s_k`` and ``S_k``, centred on the means."""
        k, d = self.delta.shape
        f = sums["features"]
        nk, sx = f[:, d], f[:, :d]
        second = np.empty((k, d, d))
        second[:, self.upper[0], self.upper[1]] = sums["packed"]
        second[:, self.upper[1], self.upper[0]] = sums["packed"]
        cross = sx[:, :, None] * self.delta[:, None, :]
        second -= cross + cross.transpose(0, 2, 1)
        second += nk[:, None, None] * self.delta[:, :, None] * self.delta[:, None, :]
        return nk, sx - nk[:, None] * self.delta, second


class Full(CovarianceType):
    name = "full"

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    second_moment_shape = shape

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) / 2.0

    def log_det_cholesky(self, precisions_cholesky, n_features):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)

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

    def add_own_second_moment(self, Sk, k, own, weighted):
        Sk[k] += np.dot(weighted.T, own)

    def expansion(self, means, precisions_cholesky, offset, dtype):
        return _FullExpansion.of(means, precisions_cholesky, offset, dtype)


FULL = Full()
