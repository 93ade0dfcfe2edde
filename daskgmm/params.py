"""Parameter and statistics records, and the M-step on summed statistics.

Everything here is small: O(K D^3) work on arrays of parameter size, done on
the client. The math of each covariance type is in :mod:`daskgmm.covariance`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .covariance import COVARIANCE, COVARIANCE_TYPES, CovarianceType
from .errors import EmptyComponentWarning
from .recovery import Recovery, factorised

__all__ = [
    "COVARIANCE_TYPES",
    "EMResult",
    "EMPTY_COMPONENT_MASS",
    "GMMParams",
    "StatsLayout",
    "SufficientStatistics",
    "information_criteria",
    "m_step",
    "params_from_statistics",
]

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
    def cov(self) -> CovarianceType:
        return COVARIANCE[self.covariance_type]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def precisions(self) -> np.ndarray:
        return self.cov.precisions(self.precisions_cholesky)

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
            COVARIANCE[covariance_type].covariances(pc),
            pc,
            covariance_type,
        )


@dataclass(frozen=True)
class EMResult:
    """Where the EM of one initialisation stands: its parameters, the lower bound
    of every iteration so far, and whether it has converged."""

    params: GMMParams
    lower_bounds: list[float]
    n_iter: int
    converged: bool
    #: collapsed components recovered so far (see :mod:`daskgmm.recovery`), each a
    #: dict with the ``iteration`` whose M-step recovered it
    recoveries: tuple = ()
    #: an accelerated run's fallback (:class:`daskgmm.acceleration.Acceleration`),
    #: None for plain EM and for a run that has stopped
    acceleration: object = None

    @property
    def lower_bound(self) -> float:
        return self.lower_bounds[-1] if self.lower_bounds else -math.inf

    @property
    def reseeded_last(self) -> bool:
        """Whether the last M-step re-seeded a component: the next lower bound is
        then not compared with the last (it may be lower)."""
        return any(e["iteration"] == self.n_iter and e["action"] != "jitter"
                   for e in self.recoveries)


@dataclass(frozen=True)
class StatsLayout:
    """Where each statistic sits in the flat float64 vector of one chunk.

    The vector is ``[log_lik_sum, n_rows, n_nonfinite, total_weight, n_empty, N (K),
    s (K*D), S (...)]`` so that summing vectors of chunks sums every statistic.
    ``total_weight`` is the sum of the sample weights of the rows that count
    (their number, without sample weights); ``n_empty`` counts the rows whose
    every feature is missing (NaN), which count for nothing when missing values
    are marginalised.
    """

    HEADER = 5

    n_components: int
    n_features: int
    covariance_type: str

    @property
    def second_moment_shape(self) -> tuple[int, ...]:
        return COVARIANCE[self.covariance_type].second_moment_shape(
            self.n_components, self.n_features
        )

    @property
    def size(self) -> int:
        k, d = self.n_components, self.n_features
        return self.HEADER + k + k * d + math.prod(self.second_moment_shape)

    def split(self, vec: np.ndarray) -> dict[str, np.ndarray | float]:
        """The parts of ``vec``; the arrays are views into it."""
        k, d = self.n_components, self.n_features
        i = self.HEADER
        nk = vec[i : i + k]
        i += k
        sk = vec[i : i + k * d].reshape(k, d)
        i += k * d
        Sk = vec[i:].reshape(self.second_moment_shape)
        return {
            "log_lik_sum": float(vec[0]),
            "n_samples": float(vec[1]),
            "n_nonfinite": float(vec[2]),
            "total_weight": float(vec[3]),
            "n_empty": float(vec[4]),
            "nk": nk,
            "sk": sk,
            "Sk": Sk,
        }


@dataclass(frozen=True)
class SufficientStatistics:
    """Summed statistics of a pass over the data, centred on ``centers``.

    ``n_samples`` counts rows; ``total_weight`` sums the sample weights of the
    rows that count (their number without weights): the lower bound is
    ``log_lik_sum / total_weight``, the weighted mean log-likelihood.
    """

    log_lik_sum: float
    n_samples: int
    n_nonfinite: int
    total_weight: float
    nk: np.ndarray
    sk: np.ndarray
    Sk: np.ndarray
    centers: np.ndarray
    #: the rows that the model explained worst, worst first (None: not tracked)
    worst: np.ndarray | None = None
    #: rows whose every feature is missing (NaN): left out when marginalising
    n_empty: int = 0

    @classmethod
    def from_vector(cls, vec: np.ndarray, centers: np.ndarray, covariance_type: str):
        centers = np.asarray(centers, dtype=np.float64)
        parts = StatsLayout(*centers.shape, covariance_type).split(np.asarray(vec))
        return cls(
            log_lik_sum=parts["log_lik_sum"],
            n_samples=int(parts["n_samples"]),
            n_nonfinite=int(parts["n_nonfinite"]),
            total_weight=parts["total_weight"],
            nk=parts["nk"],
            sk=parts["sk"],
            Sk=parts["Sk"],
            centers=centers,
            n_empty=int(parts["n_empty"]),
        )

    @classmethod
    def of_points(cls, points: np.ndarray, total_weight: float, covariance_type: str):
        """One row per component, each the whole of its component (scikit-learn's
        'k-means++' and 'random_from_data' starts: N_k = 1, no spread)."""
        points = np.asarray(points, dtype=np.float64)
        layout = StatsLayout(*points.shape, covariance_type)
        vec = np.zeros(layout.size)
        vec[1] = vec[3] = total_weight
        layout.split(vec)["nk"][:] = 1.0
        return cls.from_vector(vec, points, covariance_type)


def params_from_statistics(
    stats: SufficientStatistics,
    reg_covar: float,
    covariance_type: str,
    *,
    eps: float,
    previous: GMMParams | None = None,
    normalise_weights: bool = True,
    recovery: Recovery | None = None,
    events: list | None = None,
    history: tuple = (),
) -> GMMParams:
    """Parameters maximising the expected log-likelihood given the statistics.

    ``eps`` is the machine epsilon of the data's dtype: like scikit-learn,
    ``10 * eps`` is added to every ``N_k``. With ``normalise_weights`` the weights
    are ``N_k / sum(N_k)`` (the M-step); without, ``N_k / total_weight``
    (scikit-learn's initialisation from responsibilities: ``N_k / n``).

    A component whose ``N_k`` is below :data:`EMPTY_COMPONENT_MASS` is empty:
    an :class:`EmptyComponentWarning` names it, and it keeps the ``previous``
    mean and covariance (its weight goes to ~0), which leaves the lower bound
    non-decreasing. Without ``previous`` it keeps the centre its statistics
    were taken around, with covariance ``reg_covar * I``.

    A covariance that is not positive definite raises scikit-learn's error,
    unless ``recovery`` allows a remedy (:func:`daskgmm.recovery.factorised`,
    given the run's ``history`` of them); the remedies taken
    are appended to ``events``.
    """
    cov = COVARIANCE[covariance_type]
    nk = stats.nk + 10 * eps
    shift = stats.sk / nk[:, None]
    means = stats.centers + shift
    covariances = cov.m_step_covariances(nk, shift, stats.Sk, reg_covar)
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
            means = np.where(empty[:, None], previous.means, means)
            covariances = cov.keep_previous(covariances, previous.covariances, empty)
    weights = nk / (nk.sum() if normalise_weights else stats.total_weight)
    means, covariances, weights, pc, taken = factorised(
        covariance_type, means, covariances, weights, reg_covar, eps, recovery, stats.worst,
        history,
    )
    if events is not None:
        events.extend(taken)
    return GMMParams(weights, means, covariances, pc, covariance_type)


def m_step(stats: SufficientStatistics, previous: GMMParams, reg_covar: float, *, eps: float,
           recovery: Recovery | None = None, events: list | None = None,
           history: tuple = ()):
    """The M-step: new parameters from the statistics of an E-step under ``previous``
    (``recovery``, ``events``, ``history``: see :func:`params_from_statistics`)."""
    return params_from_statistics(
        stats, reg_covar, previous.covariance_type, eps=eps, previous=previous,
        recovery=recovery, events=events, history=history,
    )


def information_criteria(mean_log_likelihood: float, n: float, n_parameters: int):
    """``(bic, aic)`` of a model whose mean log-likelihood over ``n`` samples (their
    total sample weight) is ``mean_log_likelihood``, as scikit-learn computes them."""
    log_likelihood = mean_log_likelihood * n
    return (-2 * log_likelihood + n_parameters * math.log(n),
            -2 * log_likelihood + 2 * n_parameters)
