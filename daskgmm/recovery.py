"""Collapsed components recovered instead of fatal.

An M-step whose covariance is not positive definite after ``reg_covar`` raises
scikit-learn's ill-defined-covariance error. Two remedies, each an option:

jitter
    The covariance is nearly singular because the data are collinear, or large
    against their spread: a jitter relative to that covariance's own variance
    scale (the mean of its diagonal) is added to its diagonal, from ``eps``
    times the scale up by factors of 10 to at most 1% of it, until the Cholesky
    factorisation succeeds. The amount is kept (:func:`jitter_floors`) and
    only ever raised, like a ``reg_covar`` of that component.
reseed
    The component collapsed: onto a singleton or duplicated points, its
    variance scale is zero against the others' (or jitter up to 1% did not
    help). It is re-seeded on the row that the model explained worst in the
    E-step just made (:class:`WorstRows`, tracked in the same pass), with the
    pooled covariance of the healthy components and weight ``1/K`` (the weights
    renormalised). Where no row is known (an initialisation), the component
    keeps its mean and takes the pooled covariance. After ``K`` re-seeds in a
    run, a component collapsed onto a point keeps it, with a jitter relative
    to the other components' scale.

Each remedy is reported as an event (a dict) that the EM loop warns about and
records. Where no remedy applies (the options off, a tied covariance that
jitter cannot fix, every component collapsed) scikit-learn's error remains.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import fused
from .covariance import COVARIANCE
from .covariance.base import IllDefinedCovariance
from .errors import RecoveryWarning

__all__ = [
    "MAX_JITTER",
    "Recovery",
    "factorised",
    "jitter_floors",
    "merge_worst",
    "warn_recovered",
    "WorstRows",
]

#: The largest jitter, relative to a covariance's variance scale.
MAX_JITTER = 1e-2


@dataclass(frozen=True)
class Recovery:
    """Which remedies are on."""

    jitter: bool = True
    reseed: bool = True

    @property
    def any(self) -> bool:
        return self.jitter or self.reseed


def _variance_scale(cov, units) -> np.ndarray:
    if cov.unit_ndim == 0:
        return units.copy()
    if cov.unit_ndim == 1:
        return units.mean(axis=1)
    return np.diagonal(units, axis1=1, axis2=2).mean(axis=1)


def _with_jitter(cov, units, amounts) -> np.ndarray:
    out = units.copy()
    if cov.unit_ndim == 2:
        d = units.shape[-1]
        out[:, np.arange(d), np.arange(d)] += amounts[:, None]
    else:
        out += amounts.reshape(amounts.shape + (1,) * cov.unit_ndim)
    return out


def _factorises(cov, units) -> bool:
    try:
        cov.precision_cholesky(cov.from_units(units), None)
    except IllDefinedCovariance:
        return False
    return True


def _reference_scales(cov, units, weights, eps):
    """The scale that each unit's jitter is relative to, and which units collapsed
    onto a point: its own variance scale, or for a collapsed unit (a scale not
    above ``eps`` times the others', or not finite) the weighted mean scale of
    the others."""
    scale = _variance_scale(cov, units)
    ok = np.isfinite(scale) & (scale > 0)
    w = np.asarray(weights, dtype=np.float64)[ok]
    pooled = float(np.dot(w, scale[ok]) / w.sum()) if ok.any() and w.sum() > 0 else 0.0
    collapsed = ~ok | (scale <= eps * pooled)
    return np.where(collapsed, pooled, scale), collapsed


def _jittered(cov, units, eps, bad, floors, reference, collapsed):
    """Each ``bad`` unit with the least jitter that lets it factorise, escalating
    by factors of 10 from ten times its floor (or from ``eps`` times its
    ``reference`` scale) to :data:`MAX_JITTER` times that scale; the units left
    bad, and the events."""
    events, left = [], []
    for k in bad:
        amount = reference[k] * eps if floors[k] == 0 else floors[k] * 10.0
        while reference[k] > 0 and amount <= MAX_JITTER * reference[k]:
            trial = _with_jitter(cov, units[k : k + 1], np.array([amount]))
            if _factorises(cov, trial):
                units[k] = trial[0]
                events.append({"action": "jitter", "component": k if cov.per_component else None,
                               "amount": float(amount + floors[k]),
                               "relative": float((amount + floors[k]) / reference[k]),
                               "relative_to": "others" if collapsed[k] else "own"})
                break
            amount *= 10.0
        else:
            left.append(k)
    return units, left, events


def jitter_floors(recoveries, n_units: int) -> np.ndarray:
    """The jitter that each unit keeps, an absolute amount added to its diagonal:
    the largest it needed so far, reset when its component is re-seeded. Kept
    fixed between escalations, it acts as a ``reg_covar`` of that component (a
    jitter that came and went, or followed the variance scale, would make the
    lower bound jump between iterations)."""
    floors = np.zeros(n_units)
    for e in recoveries:
        k = e["component"] or 0
        floors[k] = max(floors[k], e["amount"]) if e["action"] == "jitter" else 0.0
    return floors


def factorised(covariance_type: str, means, covariances, weights, reg_covar: float, eps: float,
               recovery: Recovery | None, worst: np.ndarray | None = None, history=()):
    """``(means, covariances, weights, precisions_cholesky, events)``: the Cholesky
    factors of the precisions, after the remedies that ``recovery`` allows where
    a covariance is not positive definite.

    ``worst``: rows that the model explained worst, worst first (the candidates
    for re-seeding). ``history``: the run's earlier events. From them, each
    unit keeps the largest jitter it needed (only a larger one is a new event),
    and at most ``K`` re-seeds are made in a run: a component that collapses
    onto a point after that (a genuine outlier draws one back every time) keeps
    it, with a jitter relative to the other components' scale.
    """
    cov = COVARIANCE[covariance_type]
    if recovery is None or not recovery.any:
        return means, covariances, weights, cov.precision_cholesky(covariances, reg_covar), []
    units = cov.units(covariances)
    reference, collapsed = _reference_scales(
        cov, units, weights if cov.per_component else [1.0], eps
    )
    floors = jitter_floors(history, len(units)) if recovery.jitter else np.zeros(len(units))
    if floors.any():
        units = _with_jitter(cov, units, floors)
    try:
        covariances = cov.from_units(units)
        return means, covariances, weights, cov.precision_cholesky(covariances, reg_covar), []
    except IllDefinedCovariance as err:
        first_error, bad = err, list(err.units)
    can_reseed = recovery.reseed and cov.per_component
    budget = len(units) - sum(e["action"] != "jitter" for e in history) if can_reseed else 0
    reseed = [k for k in bad if collapsed[k]][: max(budget, 0)]
    events: list[dict] = []
    rest = [k for k in bad if k not in reseed]
    if recovery.jitter:
        units, rest, events = _jittered(cov, units, eps, rest, floors, reference, collapsed)
    reseed += rest if can_reseed else []
    healthy = np.setdiff1d(np.arange(len(units)), reseed)
    if (rest and not can_reseed) or (reseed and not healthy.size):
        raise first_error
    if reseed:
        w = np.asarray(weights, dtype=np.float64)
        pooled = np.tensordot(w[healthy] / w[healthy].sum(), units[healthy], axes=1)
        means, weights = np.array(means, dtype=np.float64), w.copy()
        candidates = iter(() if worst is None else worst)
        for k in sorted(reseed):
            units[k] = pooled
            row = next(candidates, None)
            if row is not None:
                means[k] = row
            weights[k] = 1.0 / len(weights)
            events.append({"action": "reseed" if row is not None else "pooled covariance",
                           "component": int(k), "amount": None, "relative": None,
                           "relative_to": None})
        weights = weights / weights.sum()
    covariances = cov.from_units(units)
    return means, covariances, weights, cov.precision_cholesky(covariances, reg_covar), events


class WorstRows:
    """The ``count`` rows of lowest log-likelihood of a chunk, tracked sub-block by
    sub-block while the E-step has them in cache: a row is kept only if it is no
    better than the ``count``-th worst kept so far, and :meth:`result` gives the
    ``count`` worst of those. Ties go to the earlier row, so the choice is the
    same however the chunk is cut. Rows whose log-likelihood is not finite (NaN
    rows) or whose sample weight is not positive are left out. Per sub-block
    this is one compiled sweep (:func:`fused.lowest_rows`, 0.1 ms for 125,000
    rows; ``np.partition`` took 1.8) and allocates next to nothing (a Dask
    worker gives freed memory back to the system at once, and faults it in again)."""

    def __init__(self, count: int):
        self.count = count
        self._ll, self._index = [], []
        self._held = 0
        self._bound = np.inf  # the count-th lowest kept, once there are count

    def add(self, log_lik: np.ndarray, start: int, rows=None, weight=None) -> None:
        """The log-likelihoods of a sub-block's rows: those from ``start`` on in
        the chunk, or the rows ``start + rows``; ``weight``: their sample weights."""
        pos = fused.lowest_rows(log_lik, fused.NO_WEIGHT if weight is None else weight,
                                self.count)
        ll = log_lik[pos]
        keep = ll <= self._bound
        if not keep.all():
            pos, ll = pos[keep], ll[keep]
        if not len(pos):
            return
        self._ll.append(ll)
        self._index.append(start + (pos if rows is None else rows[pos]))
        self._held += len(ll)
        if self._held > 4 * self.count:
            ll, index = self._lowest()
            self._ll, self._index, self._held = [ll], [index], len(ll)
            if len(ll) == self.count:
                self._bound = ll[-1]

    def _lowest(self):
        """The ``count`` lowest held, by (value, index), in that order."""
        ll, index = np.concatenate(self._ll), np.concatenate(self._index)
        order = np.lexsort((index, ll))[: self.count]
        return ll[order], index[order]

    def result(self, rows: np.ndarray) -> np.ndarray:
        """A (count, 1 + D) array of ``[log_lik, row]``, worst first, padded with
        +inf log-likelihoods."""
        out = np.full((self.count, 1 + rows.shape[1]), np.inf)
        if not self._ll:
            return out
        ll, index = self._lowest()
        out[: len(ll), 0] = ll
        out[: len(ll), 1:] = rows[index]
        return out


def merge_worst(parts: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` worst of stacked :meth:`WorstRows.result` outputs, worst first, and
    distinct (a row collapsed onto duplicates is not a seed twice)."""
    parts = parts.reshape(-1, parts.shape[-1])
    parts = parts[np.isfinite(parts[:, 0])]
    order = np.lexsort((np.arange(len(parts)), parts[:, 0]))
    seen, out = set(), []
    for i in order:
        key = parts[i, 1:].tobytes()
        if key not in seen:
            seen.add(key)
            out.append(parts[i, 1:])
        if len(out) == count:
            break
    return np.array(out).reshape(len(out), parts.shape[-1] - 1)


def warn_recovered(event: dict, init: int | None, reg_covar: float) -> None:
    """A :class:`RecoveryWarning` naming the component, the iteration and the remedy."""
    where = "the initialisation" if event.get("iteration") is None else f"iteration {event['iteration']}"
    if init is not None:
        where += f" of initialisation {init}"
    what = ("the tied covariance" if event["component"] is None
            else f"the covariance of component {event['component']}")
    problem = f"{what} was not positive definite after reg_covar={reg_covar:g}"
    if event["action"] == "jitter":
        scale = ("the other components' mean variance scale, as it collapsed onto a point"
                 if event.get("relative_to") == "others" else "its variance scale")
        remedy = f"added {event['amount']:.3g} ({event['relative']:.0e} of {scale}) to its diagonal"
    elif event["action"] == "reseed":
        remedy = ("the component collapsed and was re-seeded on the row the model explained "
                  "worst, with the pooled covariance (the lower bound may drop once)")
    else:
        remedy = "the component collapsed; it keeps its mean and takes the pooled covariance"
    warnings.warn(f"{where}: {problem}; {remedy}.", RecoveryWarning, stacklevel=4)
