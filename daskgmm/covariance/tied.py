"""Tied covariance: one (D, D) covariance shared by all components."""

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

__all__ = ["TIED", "Tied"]


class _TiedExpansion(Expansion):
    """One precision ``P = U U^T`` for all components, features ``f(x) = [x~, 1]``::

        (x~ - d_k)^T P (x~ - d_k) = |U^T x~|^2 + [-2 P d_k, d_k^T P d_k] . f(x)

    The first term is shared by all components. The statistics need
    ``sum_n x~ x~^T`` once, since the responsibilities of a row sum to one.
    """

    def __init__(self, shift, delta, pc, coef, dtype=np.float64):
        super().__init__(shift, delta)
        self.pc, self.coef = pc, coef
        k, d = delta.shape
        self.row_bytes = (2 * d + 1) * 8  # the features and U^T x~
        # its largest products, U^T x~ and sum x~ x~^T (D^2 per row), kept small (K=8,
        # D=16: 3,906 rows, not 7,943): 0.85x the time on one thread, 0.86x on two
        # processes, 0.96x on two threads (paired A/B)
        self.max_rows = self.small_product_rows(max(d * d, k * (d + 1)), dtype)

    @classmethod
    def of(cls, means, precisions_cholesky, offset, dtype):
        shift, delta = cls.split_means(means)
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        pd = np.dot(delta, np.dot(pc, pc.T))  # (K, D): P d_k
        const = np.einsum("kd,kd->k", pd, delta)
        if not cls.close_enough(const):
            return None
        # -0.5 * distance + offset in one product: the offset joins the constant feature.
        coef = -0.5 * np.concatenate([-2.0 * pd, const[:, None]], axis=1)
        coef[:, -1] += offset
        return cls(shift, delta, pc, coef, dtype)

    def features(self, block, ws):
        return self.shifted_and_one(block, ws)

    def log_prob(self, features, ws, out):
        d = self.delta.shape[1]
        z = ws("whitened", (d, features.shape[1]))
        np.dot(self.pc.T, features[:d], out=z)
        np.square(z, out=z)
        np.dot(self.coef, features, out=out)
        out -= 0.5 * z.sum(axis=0)
        return out

    def new_sums(self):
        k, d = self.delta.shape
        return {"features": np.zeros((k, d + 1)), "outer": np.zeros((d, d))}

    def accumulate(self, features, resp, ws, sums, weight=None):
        d = self.delta.shape[1]
        x = features[:d]
        sums["features"] += np.dot(resp, features.T)  # sum r x~, sum r
        # sum_k r_nk = 1 (or the row's sample weight): sum_n w_n x~ x~^T once for all k
        sums["outer"] += np.dot(x if weight is None else x * weight, x.T)

    def fused(self, block, weight, lse, sums):
        fused.tied_chunk(block, weight, self.shift, np.ascontiguousarray(self.pc.T), self.coef,
                         self.fused_rows, lse, sums["features"], sums["outer"])

    def finish(self, sums):
        """``N_k``, ``s_k`` and the tied ``S``, centred on the means."""
        d = self.delta.shape[1]
        f = sums["features"]
        nk, sx = f[:, d], f[:, :d]
        sk = sx - nk[:, None] * self.delta
        cross = np.dot(self.delta.T, sx)
        S = sums["outer"] - cross - cross.T + np.dot(self.delta.T * nk, self.delta)
        return nk, sk, S


class Tied(CovarianceType):
    name = "tied"
    per_component = False

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    second_moment_shape = shape

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) / 2.0

    def cholesky_diagonal(self, precisions_cholesky):
        return np.diag(precisions_cholesky)

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(self.cholesky_diagonal(np.asarray(precisions_cholesky, dtype=np.float64))).sum()

    def precision_cholesky(self, covariances, reg_covar=None):
        cov = np.asarray(covariances, dtype=np.float64)
        return cholesky_of_precisions_from_covariances(cov[None], ["(tied)"], reg_covar)[0]

    def precision_cholesky_from_precisions(self, precisions):
        return cholesky_of_precisions(np.asarray(precisions, dtype=np.float64)[None])[0]

    def precisions(self, precisions_cholesky):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return pc @ pc.T

    def covariances(self, precisions_cholesky):
        return covariances_of_cholesky(np.asarray(precisions_cholesky, dtype=np.float64)[None])[0]

    def check_precisions(self, precisions):
        check_symmetric_positive_definite(precisions[None], self.name, lambda i: "precisions_init")

    def sample(self, rng, means, covariances, counts):
        return [rng.multivariate_normal(m, covariances, int(s)) for m, s in zip(means, counts)]

    def m_step_covariances(self, nk, shift, Sk, reg_covar):
        d = shift.shape[1]
        cov = (Sk - np.einsum("k,ki,kj->ij", nk, shift, shift)) / nk.sum()
        cov[np.arange(d), np.arange(d)] += reg_covar
        return cov

    def keep_previous(self, new, old, empty):
        return new  # one covariance for all: an empty component has no part of its own

    def mahalanobis(self, diff, precisions_cholesky, ws):
        y = ws("y", diff.shape, diff.dtype)
        k, b, d = diff.shape
        np.dot(diff.reshape(k * b, d), precisions_cholesky, out=y.reshape(k * b, d))
        return sum_squares(y, ws("maha", diff.shape[:2], diff.dtype))

    def second_moment(self, diff, r_t, ws):
        wd = ws("weighted", diff.shape, diff.dtype)
        np.multiply(diff, r_t[:, :, None], out=wd)
        k, b, d = diff.shape
        return np.dot(wd.reshape(k * b, d).T, diff.reshape(k * b, d))

    def precision_times(self, precisions_cholesky, vectors):
        return np.dot(vectors, self.precisions(precisions_cholesky))

    def shift_second_moment(self, Sk, nk, sk, delta):
        cross = np.dot(sk.T, delta)
        Sk += cross + cross.T + np.dot(delta.T * nk, delta)

    def add_own_second_moment(self, Sk, k, moment):
        Sk += moment

    def expansion(self, means, precisions_cholesky, offset, dtype, reg_covar=0.0,
                  chunk_rows=None):
        return _TiedExpansion.of(means, precisions_cholesky, offset, dtype)


TIED = Tied()
