"""Fewer EM passes: adaptive over-relaxed EM with a monotone safeguard.

Salakhutdinov & Roweis (2003), "Adaptive overrelaxed bound optimization
methods". Each pass evaluates one point ``theta_t``: its E-step gives the lower
bound ``L(theta_t)`` and the plain EM update ``F(theta_t)``. Then

* if ``theta_t`` is a plain EM step, or ``L(theta_t)`` is not below the bound
  of the last accepted point, the point is accepted, the step factor grows
  (``omega <- GROWTH * omega``) and the next point is
  ``theta_t + omega * (F(theta_t) - theta_t)``;
* otherwise (an extrapolated point that lowered the bound) it is rejected:
  ``omega`` falls back to 1 and the next point is the plain EM update of the
  last accepted point, which EM guarantees not to lower the bound. The pass
  that evaluated the rejected point is the price.

The step is taken in unconstrained coordinates, so every point is a valid
mixture: log-weights (renormalised), means, and the covariances' Cholesky
factors with log-diagonals (log-variances for diag and spherical). With
``omega == 1`` the next point is ``F(theta_t)`` itself, bitwise plain EM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .covariance.base import IllDefinedCovariance
from .params import GMMParams

__all__ = ["GROWTH", "MAX_OMEGA", "Acceleration", "extrapolate", "next_point"]

#: Factor by which the step grows after an accepted point, and its largest value.
GROWTH = 1.5
MAX_OMEGA = 8.0


@dataclass(frozen=True)
class Acceleration:
    """Where an accelerated run stands besides the point it evaluates next.

    ``plain``: the plain EM update of the last accepted point (the fallback, and
    the result if the run ends now); ``bound``: that point's lower bound;
    ``omega``: the step factor that made the point evaluated next (1: a plain
    EM step).
    """

    plain: GMMParams
    bound: float
    omega: float = 1.0


def _free(p: GMMParams) -> list[np.ndarray]:
    cov = p.cov
    if cov.unit_ndim == 2:
        chol = np.linalg.cholesky(cov.units(p.covariances))
        d = chol.shape[-1]
        chol[:, np.arange(d), np.arange(d)] = np.log(chol[:, np.arange(d), np.arange(d)])
        shape = chol
    else:
        shape = np.log(np.asarray(p.covariances, dtype=np.float64))
    return [np.log(p.weights), np.asarray(p.means, dtype=np.float64), shape]


def _from_free(free: list[np.ndarray], like: GMMParams) -> GMMParams | None:
    log_w, means, shape = free
    w = np.exp(log_w - log_w.max())
    weights = w / w.sum()
    cov = like.cov
    if cov.unit_ndim == 2:
        chol = np.tril(shape)
        d = chol.shape[-1]
        chol[:, np.arange(d), np.arange(d)] = np.exp(chol[:, np.arange(d), np.arange(d)])
        covariances = cov.from_units(chol @ np.swapaxes(chol, -1, -2))
    else:
        covariances = np.exp(shape)
    if not (np.isfinite(weights).all() and np.isfinite(means).all()
            and np.isfinite(covariances).all()):
        return None
    try:
        pc = cov.precision_cholesky(covariances)
    except IllDefinedCovariance:
        return None
    return GMMParams(weights, means, covariances, pc, like.covariance_type)


def extrapolate(point: GMMParams, update: GMMParams, omega: float) -> GMMParams | None:
    """``point + omega * (update - point)`` in unconstrained coordinates (None if
    that is not a valid mixture: overflow, a covariance not positive definite)."""
    a, b = _free(point), _free(update)
    with np.errstate(over="ignore", invalid="ignore"):
        return _from_free([x + omega * (y - x) for x, y in zip(a, b)], update)


def next_point(point: GMMParams, bound: float, update: GMMParams, state: Acceleration | None,
               settled: bool) -> tuple[GMMParams, Acceleration, bool, bool]:
    """After evaluating ``point`` (lower bound ``bound``, plain EM update
    ``update``): the point to evaluate next, the new state, whether ``point``
    was accepted, and whether the run has converged.

    A plain EM step is always accepted, as in plain EM: at the optimum its bound
    can fall below the last one by rounding, and rejecting it would return to
    the same point for ever.

    ``settled``: the bound changed by less than ``tol`` from the last accepted
    point. That ends the run only after a plain EM step: an extrapolated point
    can land across the optimum with an equal bound, so it is followed by a
    plain step first.
    """
    plain_step = state is None or state.omega == 1.0
    if not plain_step and bound < state.bound:  # rejected: the plain step instead
        return state.plain, Acceleration(state.plain, state.bound, 1.0), False, False
    if settled:
        return update, Acceleration(update, bound, 1.0), True, plain_step
    omega = 1.0 if state is None else min(state.omega * GROWTH, MAX_OMEGA)
    jump = extrapolate(point, update, omega) if omega != 1.0 else None
    if jump is None:
        return update, Acceleration(update, bound, 1.0), True, False
    return jump, Acceleration(update, bound, omega), True, False
