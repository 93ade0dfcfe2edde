"""Diagonal covariances: one variance per feature and component (diag), or one per
component (spherical). Their second moments are the diagonals, (K, D) for both."""

from __future__ import annotations

import numpy as np

from .. import fused
from .base import CovarianceType, Expansion, ill_defined, sum_squares

__all__ = ["DIAG", "SPHERICAL", "Diagonal"]


class _DiagonalExpansion(Expansion):
    """Diagonal and spherical precisions ``p_k``, features ``f(x) = [x~^2, x~, 1]``::

        sum_j p_kj (x~_j - d_kj)^2 = [p_k, -2 p_k d_k, sum_j p_kj d_kj^2] . f(x)
    """

    def __init__(self, shift, delta, coef, dtype=np.float64):
        super().__init__(shift, delta)
        self.coef = coef
        k, d = delta.shape
        self.row_bytes = (2 * d + 1) * 8  # the features
        # its two products, (K, 2D + 1) by (2D + 1, rows) and back, kept small (K=8,
        # D=16: 3,787 rows, not 7,943): 0.75-0.77x the time on one thread and on two
        # processes, 0.92-1.00x on two threads (paired A/B)
        self.max_rows = self.small_product_rows(k * (2 * d + 1), dtype)

    fused_rows = 1024

    @classmethod
    def of(cls, means, precisions_cholesky, offset, dtype):
        shift, delta = cls.split_means(means)
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        p = np.broadcast_to(np.square(pc if pc.ndim == 2 else pc[:, None]), delta.shape)
        const = (p * np.square(delta)).sum(axis=1)
        if not cls.close_enough(const):
            return None
        # -0.5 * distance + offset in one product: the offset joins the constant feature.
        coef = -0.5 * np.concatenate([p, -2.0 * p * delta, const[:, None]], axis=1)
        coef[:, -1] += offset
        return cls(shift, delta, coef, dtype)

    def features(self, block, ws):
        d = block.shape[1]
        f = ws("features", (2 * d + 1, block.shape[0]))
        np.subtract(block.T, self.shift[:, None], out=f[d : 2 * d])
        np.square(f[d : 2 * d], out=f[:d])
        f[2 * d] = 1.0
        return f

    def log_prob(self, features, ws, out):
        return np.dot(self.coef, features, out=out)

    def new_sums(self):
        k, d = self.delta.shape
        return {"features": np.zeros((k, 2 * d + 1))}

    def accumulate(self, features, resp, ws, sums, weight=None):
        sums["features"] += np.dot(resp, features.T)  # sum r x~^2, sum r x~, sum r

    def fused(self, block, weight, lse, sums):
        fused.diagonal_chunk(block, weight, self.shift, self.coef, self.fused_rows, lse,
                             sums["features"])

    def finish(self, sums):
        """``N_k``, ``s_k`` and the diagonal of ``S_k``, centred on the means."""
        d = self.delta.shape[1]
        f = sums["features"]
        nk, sx = f[:, 2 * d], f[:, d : 2 * d]
        sk = sx - nk[:, None] * self.delta
        Sk = f[:, :d] - 2.0 * self.delta * sx + nk[:, None] * np.square(self.delta)
        return nk, sk, Sk


class Diagonal(CovarianceType):
    """``diag`` (``spherical=False``) or ``spherical``."""

    def __init__(self, spherical: bool):
        self.spherical = spherical
        self.name = "spherical" if spherical else "diag"
        self.unit_ndim = 0 if spherical else 1

    def shape(self, n_components, n_features):
        return (n_components,) if self.spherical else (n_components, n_features)

    def second_moment_shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * (1 if self.spherical else n_features)

    def cholesky_diagonal(self, precisions_cholesky):
        return np.asarray(precisions_cholesky)

    def log_det_cholesky(self, precisions_cholesky, n_features):
        log_pc = np.log(np.asarray(precisions_cholesky, dtype=np.float64))
        return n_features * log_pc if self.spherical else log_pc.sum(axis=1)

    def precision_cholesky(self, covariances, reg_covar=None):
        cov = np.asarray(covariances, dtype=np.float64)
        bad = np.flatnonzero(~(cov > 0).reshape(len(cov), -1).all(axis=1))  # NaN too
        if bad.size:
            raise ill_defined(bad.tolist(), reg_covar)
        return 1.0 / np.sqrt(cov)

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(np.asarray(precisions, dtype=np.float64))

    def precisions(self, precisions_cholesky):
        return np.asarray(precisions_cholesky, dtype=np.float64) ** 2

    def covariances(self, precisions_cholesky):
        return 1.0 / np.asarray(precisions_cholesky, dtype=np.float64) ** 2

    def check_precisions(self, precisions):
        bad = np.count_nonzero(precisions <= 0)
        if bad:
            raise ValueError(
                f"'{self.name} precision' should be positive: precisions_init has {bad} "
                "value(s) <= 0"
            )

    def sample(self, rng, means, covariances, counts):
        d = means.shape[1]
        return [
            m + rng.standard_normal(size=(int(s), d)) * np.sqrt(c)
            for m, c, s in zip(means, covariances, counts)
        ]

    def m_step_covariances(self, nk, shift, Sk, reg_covar):
        diag = Sk / nk[:, None] - shift**2 + reg_covar
        return diag.mean(axis=1) if self.spherical else diag

    def mahalanobis(self, diff, precisions_cholesky, ws):
        y = ws("y", diff.shape, diff.dtype)
        if self.spherical:
            np.copyto(y, diff)
        else:
            np.multiply(diff, precisions_cholesky[:, None, :], out=y)
        maha = sum_squares(y, ws("maha", diff.shape[:2], diff.dtype))
        if self.spherical:
            maha *= np.square(precisions_cholesky)[:, None]
        return maha

    def second_moment(self, diff, r_t, ws):
        wd = ws("weighted", diff.shape, diff.dtype)
        np.square(diff, out=wd)
        return np.matmul(r_t[:, None, :], wd)[:, 0, :]

    def precision_times(self, precisions_cholesky, vectors):
        p = self.precisions(precisions_cholesky)
        return (p[:, None] if self.spherical else p) * vectors

    def shift_second_moment(self, Sk, nk, sk, delta):
        Sk += 2.0 * delta * sk + nk[:, None] * np.square(delta)

    def add_own_second_moment(self, Sk, k, moment):
        Sk[k] += np.diagonal(moment)

    def expansion(self, means, precisions_cholesky, offset, dtype, reg_covar=0.0,
                  chunk_rows=None):
        return _DiagonalExpansion.of(means, precisions_cholesky, offset, dtype)


DIAG = Diagonal(spherical=False)
SPHERICAL = Diagonal(spherical=True)
