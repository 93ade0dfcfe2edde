"""Full covariance: one (D, D) covariance per component."""

from __future__ import annotations

import numpy as np

from .base import (
    CovarianceType,
    check_symmetric_positive_definite,
    cholesky_of_precisions,
    cholesky_of_precisions_from_covariances,
    covariances_of_cholesky,
    sum_squares,
)

__all__ = ["FULL", "Full"]


class Full(CovarianceType):
    """Full covariance has no expansion: centring the rows on each mean and one
    stacked product per sub-block runs faster on two threads than whitening all
    components in one product plus the packed second moments (measured: the
    expanded kernel was 1.25x faster on one thread, but its many small products
    over packed features scaled 1.05-1.1x on two, against 1.3-1.8x)."""

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

    def add_own_second_moment(self, Sk, k, own, weighted):
        Sk[k] += np.dot(weighted.T, own)


FULL = Full()
