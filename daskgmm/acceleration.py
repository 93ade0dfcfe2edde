"""Fewer EM passes: squared extrapolation (SQUAREM) with a monotone safeguard.

Varadhan & Roland (2008), "Simple and globally convergent methods for
accelerating the convergence of any EM algorithm", scheme SqS3. Each pass
evaluates one point: its E-step gives the lower bound ``L`` and the plain EM
update ``F``. A cycle starts from a point ``theta0`` (the *base*) and its plain
step ``theta1 = F(theta0)``; the pass at ``theta1`` gives ``theta2 = F(theta1)``.
With ``r = theta1 - theta0`` and ``v = theta2 - 2 theta1 + theta0``, the next
point is

    theta' = theta0 + 2 alpha r + alpha^2 v,   alpha = |r| / |v|, in [1, step_max]

(``alpha == 1`` gives ``theta2`` itself). Its pass gives ``L(theta')``:

* not below ``L(theta1)``: accepted; ``theta'`` is the next cycle's base, and
  its update ``F(theta')`` the next point (so a cycle costs two passes);
* below: rejected; the next point is ``theta2``, the plain EM step from
  ``theta1``, which EM guarantees not to lower the bound, and the cycle goes on
  from ``theta1``. The pass that evaluated ``theta'`` is the price.

``step_max`` grows by ``MSTEP`` each time ``alpha`` reaches it and shrinks by
as much after a rejection (the defaults of the authors' R package). A
convergence test (``|change| < tol``) is made on a plain EM step, whose change
means what it means in plain EM, and on an accepted jump of ``alpha`` at most
:data:`NEAR_PLAIN`: such a point lies on the line of the two plain steps,
``theta1 + s (theta2 - theta1)`` to first order with ``s = 2 alpha - 1`` (at
most 2), and its change from ``L(theta1)`` is the one plain EM tests at that
pass, over a step no shorter; a longer jump can land across the optimum with
an equal bound. Near the optimum the step lengths come close to 1 (1.11 and
1.004 in the last cycles of a fit of 1,000,000 x 16 rows, full), so without this
such a cycle took the pass of its jump and another for the plain step after
it, where plain EM would have stopped. A run ends on the plain EM update of
its last accepted point.

The step is taken in unconstrained coordinates, so every point is a valid
mixture: log-weights (renormalised), means, and the covariances' Cholesky
factors with log-diagonals (log-variances for diag and spherical).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .covariance.base import IllDefinedCovariance
from .params import GMMParams

__all__ = ["MAX_STEP", "MSTEP", "NEAR_PLAIN", "STAGES", "Acceleration", "extrapolate",
           "next_point"]

#: Factor by which the largest step length grows when reached, and shrinks after a
#: rejection; the largest it can become.
MSTEP = 4.0
MAX_STEP = MSTEP ** 8
#: The largest step length of a jump whose acceptance is also a convergence test.
NEAR_PLAIN = 1.5

#: What the next pass of an accelerated run evaluates: the plain EM update of the
#: base ("plain"), or an extrapolated point ("jump").
STAGES = ("plain", "jump")


@dataclass(frozen=True)
class Acceleration:
    """Where an accelerated run stands besides the point it evaluates next.

    ``plain``: the plain EM update of the last accepted point (the fallback, and
    the result if the run ends now); ``bound``: the lower bound the next point's
    is compared with (that of ``base`` before a plain step, of the point before
    the jump before a jump); ``stage``: see :data:`STAGES`; ``base``: the point
    whose plain EM update is ``plain``; ``step_max``: the largest step length;
    ``alpha``: the step length of the jump evaluated next (stage "jump"; None
    in a checkpoint written before it was kept: that jump tests nothing).
    """

    plain: GMMParams
    bound: float
    stage: str
    base: GMMParams
    step_max: float = 1.0
    alpha: float | None = None


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


def step_length(base: GMMParams, point: GMMParams, update: GMMParams) -> float:
    """SqS3's ``|r| / |v|`` for ``point = F(base)``, ``update = F(point)``."""
    a, b, c = _free(base), _free(point), _free(update)
    r = math.sqrt(sum(float(np.sum((y - x) ** 2)) for x, y in zip(a, b)))
    v = math.sqrt(sum(float(np.sum((z - 2 * y + x) ** 2)) for x, y, z in zip(a, b, c)))
    return r / v if v > 0 else math.inf


def extrapolate(base: GMMParams, point: GMMParams, update: GMMParams,
                alpha: float) -> GMMParams | None:
    """``base + 2 alpha r + alpha^2 v`` in unconstrained coordinates (None if that
    is not a valid mixture: overflow, a covariance not positive definite);
    ``alpha == 1`` gives ``update``."""
    a, b, c = _free(base), _free(point), _free(update)
    with np.errstate(over="ignore", invalid="ignore"):
        return _from_free([x + 2 * alpha * (y - x) + alpha ** 2 * (z - 2 * y + x)
                           for x, y, z in zip(a, b, c)], update)


def next_point(point: GMMParams, bound: float, update: GMMParams, state: Acceleration | None,
               settled: bool) -> tuple[GMMParams, Acceleration, bool, bool]:
    """After evaluating ``point`` (lower bound ``bound``, plain EM update
    ``update``): the point to evaluate next, the new state, whether ``point``
    was accepted, and whether the run has converged.

    ``state`` None: ``point`` is a run's start. A plain EM step is always
    accepted, as in plain EM: at the optimum its bound can fall below the last
    one by rounding, and rejecting it would return to the same point for ever.

    ``settled``: the bound changed by less than ``tol`` from ``state.bound``.
    That ends the run after a plain EM step, or an accepted jump of a step
    length at most :data:`NEAR_PLAIN`.
    """
    if state is None:
        return update, Acceleration(update, bound, "plain", point), True, settled
    step_max = state.step_max
    if state.stage == "jump":
        if bound < state.bound:  # rejected: the plain step instead
            return state.plain, Acceleration(state.plain, state.bound, "plain", state.base,
                                             max(1.0, step_max / MSTEP)), False, False
        near_plain = state.alpha is not None and state.alpha <= NEAR_PLAIN
        return update, Acceleration(update, bound, "plain", point, step_max), True, \
            settled and near_plain
    if settled:  # a plain step: point = F(state.base)
        return update, Acceleration(update, bound, "plain", point, step_max), True, True
    alpha = min(max(step_length(state.base, point, update), 1.0), step_max)
    if alpha == step_max:
        step_max = min(step_max * MSTEP, MAX_STEP)
    jump = extrapolate(state.base, point, update, alpha) if alpha > 1.0 else None
    if jump is None:
        return update, Acceleration(update, bound, "plain", point, step_max), True, False
    return jump, Acceleration(update, bound, "jump", point, step_max, alpha), True, False
