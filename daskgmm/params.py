"""Mixture parameters, the M-step on summed statistics, and conversions.

Everything here is small: O(K D^3) work on arrays of parameter size, done on
the client. Shapes follow scikit-learn for each ``covariance_type``:

==========  ===================  ===========================
type        covariances          precisions_cholesky
==========  ===================  ===========================
full        (K, D, D)            (K, D, D) upper triangular
tied        (D, D)               (D, D) upper triangular
diag        (K, D)               (K, D)
spherical   (K,)                 (K,)
==========  ===================  ===========================
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from .errors import EmptyComponentWarning
from .kernels import StatsLayout

__all__ = [
    "COVARIANCE_TYPES",
    "GMMParams",
    "SufficientStatistics",
    "m_step",
    "params_from_statistics",
    "precision_cholesky_from_covariances",
    "precision_cholesky_from_precisions",
    "covariances_from_precision_cholesky",
    "precisions_from_cholesky",
    "n_parameters",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

#: A component whose total responsibility is below this is treated as empty.
EMPTY_COMPONENT_MASS = 1e-8


@dataclass(frozen=True)
class GMMParams:
    """The parameters of one Gaussian mixture (scikit-learn shapes).

    Float64 during a fit; :meth:`astype` gives the estimator's attributes in
    the data's dtype, as scikit-learn keeps float32 models for float32 data.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def kernel_args(self) -> tuple:
        """Positional arguments that the chunk kernels take after the block."""
        return (self.weights, self.means, self.precisions_cholesky, self.covariance_type)

    def astype(self, dtype) -> "GMMParams":
        """The same parameters with every array cast to ``dtype``."""
        return GMMParams(
            *(np.asarray(a, dtype=dtype) for a in
              (self.weights, self.means, self.covariances, self.precisions_cholesky)),
            self.covariance_type,
        )

    @classmethod
    def from_precisions_cholesky(cls, weights, means, precisions_cholesky, covariance_type):
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        return cls(
            np.asarray(weights, dtype=np.float64),
            np.asarray(means, dtype=np.float64),
            covariances_from_precision_cholesky(pc, covariance_type),
            pc,
            covariance_type,
        )


@dataclass(frozen=True)
class SufficientStatistics:
    """Summed statistics of a pass over the data, centred on ``centers``."""

    log_lik_sum: float
    n_samples: int
    n_nonfinite: int
    nk: np.ndarray
    sk: np.ndarray
    Sk: np.ndarray
    centers: np.ndarray

    @classmethod
    def from_vector(cls, vec: np.ndarray, centers: np.ndarray, covariance_type: str):
        centers = np.asarray(centers, dtype=np.float64)
        parts = StatsLayout(*centers.shape, covariance_type).split(np.asarray(vec))
        return cls(
            log_lik_sum=parts["log_lik_sum"],
            n_samples=int(parts["n_samples"]),
            n_nonfinite=int(parts["n_nonfinite"]),
            nk=parts["nk"],
            sk=parts["sk"],
            Sk=parts["Sk"],
            centers=centers,
        )


# ---------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------


def _ill_defined(components, reg_covar=None):
    which = ", ".join(str(int(k)) for k in components)
    reg = "" if reg_covar is None else f" after adding reg_covar={reg_covar:g}"
    return ValueError(
        f"Fitting the mixture model failed because the covariance of component(s) {which} "
        f"is not positive definite{reg} (for instance caused by singleton or collapsed "
        "samples). Try to decrease the number of components, increase reg_covar, or "
        "scale the input data."
    )


def precision_cholesky_from_covariances(covariances, covariance_type, reg_covar=None):
    """Cholesky factor of the precisions, as scikit-learn computes it."""
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        bad = np.flatnonzero((cov <= 0).reshape(len(cov), -1).any(axis=1))
        if bad.size:
            raise _ill_defined(bad, reg_covar)
        return 1.0 / np.sqrt(cov)
    mats = cov[None] if covariance_type == "tied" else cov
    d = mats.shape[-1]
    out = np.empty_like(mats)
    for k, c in enumerate(mats):
        try:
            chol = linalg.cholesky(c, lower=True)
        except linalg.LinAlgError:
            raise _ill_defined([k] if covariance_type == "full" else ["(tied)"], reg_covar)
        out[k] = linalg.solve_triangular(chol, np.eye(d), lower=True).T
    return out[0] if covariance_type == "tied" else out


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Upper-triangular U with U U^T = precision (scikit-learn's convention)."""
    prec = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return np.sqrt(prec)
    mats = prec[None] if covariance_type == "tied" else prec
    out = np.stack([linalg.cholesky(p[::-1, ::-1], lower=True)[::-1, ::-1] for p in mats])
    return out[0] if covariance_type == "tied" else out


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return pc**2
    return pc @ np.swapaxes(pc, -1, -2)


def covariances_from_precision_cholesky(precisions_cholesky, covariance_type):
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return 1.0 / pc**2
    mats = pc[None] if covariance_type == "tied" else pc
    d = mats.shape[-1]
    inv = np.stack([linalg.solve_triangular(u, np.eye(d), lower=False) for u in mats])
    cov = np.swapaxes(inv, -1, -2) @ inv  # (U U^T)^-1 = U^-T U^-1
    return cov[0] if covariance_type == "tied" else cov


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters, as ``GaussianMixture._n_parameters``."""
    k, d = n_components, n_features
    cov = {
        "full": k * d * (d + 1) / 2.0,
        "diag": k * d,
        "tied": d * (d + 1) / 2.0,
        "spherical": k,
    }[covariance_type]
    return int(cov + d * k + k - 1)


# ---------------------------------------------------------------------------
# M-step
# ---------------------------------------------------------------------------


def _covariances(nk, shift, Sk, reg_covar, covariance_type):
    """Covariances from statistics centred on the old means, ``shift = s_k / N_k``."""
    d = shift.shape[1]
    if covariance_type == "full":
        cov = Sk / nk[:, None, None] - shift[:, :, None] * shift[:, None, :]
        cov[:, np.arange(d), np.arange(d)] += reg_covar
        return cov
    if covariance_type == "tied":
        cov = (Sk - np.einsum("k,ki,kj->ij", nk, shift, shift)) / nk.sum()
        cov[np.arange(d), np.arange(d)] += reg_covar
        return cov
    diag = Sk / nk[:, None] - shift**2 + reg_covar
    return diag if covariance_type == "diag" else diag.mean(axis=1)


def _keep_previous(new, old, empty, covariance_type):
    if covariance_type == "tied" or not empty.any():
        return new
    new = new.copy()
    new[empty] = old[empty]
    return new


def params_from_statistics(
    stats: SufficientStatistics,
    reg_covar: float,
    covariance_type: str,
    *,
    eps: float,
    previous: GMMParams | None = None,
    normalise_weights: bool = True,
) -> GMMParams:
    """Parameters maximising the expected log-likelihood given the statistics.

    ``eps`` is the machine epsilon of the data's dtype: like scikit-learn,
    ``10 * eps`` is added to every ``N_k``. With ``normalise_weights`` the weights
    are ``N_k / sum(N_k)`` (the M-step); without, ``N_k / n_samples``
    (scikit-learn's initialisation from responsibilities).

    A component whose ``N_k`` is below :data:`EMPTY_COMPONENT_MASS` is empty:
    an :class:`EmptyComponentWarning` names it, and it keeps the ``previous``
    mean and covariance (its weight goes to ~0), which leaves the lower bound
    non-decreasing. Without ``previous`` it keeps the centre its statistics
    were taken around, with covariance ``reg_covar * I``.
    """
    nk = stats.nk + 10 * eps
    shift = stats.sk / nk[:, None]
    means = stats.centers + shift
    covariances = _covariances(nk, shift, stats.Sk, reg_covar, covariance_type)
    empty = stats.nk < EMPTY_COMPONENT_MASS
    if empty.any():
        warnings.warn(
            f"Component(s) {', '.join(map(str, np.flatnonzero(empty)))} received no "
            f"samples (total responsibility < {EMPTY_COMPONENT_MASS:g}); "
            + (
                "they keep their previous mean and covariance, and their weight is ~0."
                if previous is not None
                else "their covariance is reg_covar * I."
            ),
            EmptyComponentWarning,
            stacklevel=3,
        )
        if previous is not None:
            means = _keep_previous(means, previous.means, empty, covariance_type)
            covariances = _keep_previous(
                covariances, previous.covariances, empty, covariance_type
            )
    weights = nk / (nk.sum() if normalise_weights else stats.n_samples)
    pc = precision_cholesky_from_covariances(covariances, covariance_type, reg_covar)
    return GMMParams(weights, means, covariances, pc, covariance_type)


def m_step(stats: SufficientStatistics, previous: GMMParams, reg_covar: float, *, eps: float):
    """The M-step: new parameters from the statistics of an E-step under ``previous``."""
    return params_from_statistics(
        stats, reg_covar, previous.covariance_type, eps=eps, previous=previous
    )
