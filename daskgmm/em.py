"""The distributed EM loop: map a chunk kernel, tree-reduce, M-step on the client.

One iteration is one ``compute`` of a small result (the summed statistics) and
reads each chunk of the data once, also when it serves several initialisations
in lockstep. The parameters go into the graph as a single key, so every chunk
task shares them instead of each carrying a copy.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dask.array as da

from . import kernels
from .acceleration import next_point
from .errors import DaskGMMWarning
from .params import EMResult, GMMParams, SufficientStatistics, m_step
from .passes import per_call, summed_statistics
from .recovery import Recovery, warn_recovered

__all__ = ["EMResult", "IterationInfo", "expectation", "run_em"]

logger = logging.getLogger(__name__)

def expectation(
    X: da.Array, params: list[GMMParams], missing: str = "raise",
    sample_weight: da.Array | None = None, n_worst: int | list[int] = 0,
    reg_covar: float = 0.0,
) -> list[SufficientStatistics]:
    """One E-step pass for all the parameter sets (see :func:`summed_statistics`):
    several initialisations, or the models of a search (of any covariance types
    and sizes), run in lockstep cost one read of the data per iteration.
    ``sample_weight``: (n, 1), chunked like the rows of ``X``. ``n_worst``: also
    find the rows each model explains worst (re-seeding); one for all, or a list.
    ``reg_covar``: what the M-step adds to the covariances (see
    :func:`kernels.chunk_statistics`)."""
    n_worst = per_call(n_worst, len(params))
    return summed_statistics(
        X, kernels.chunk_statistics, [(*p.kernel_args, w) for p, w in zip(params, n_worst)],
        [p.means for p in params], [p.covariance_type for p in params], missing,
        weights=sample_weight, n_worst=n_worst,
        options={"reg_covar": reg_covar},
    )


@dataclass(frozen=True)
class IterationInfo:
    """What an iteration of one initialisation reports to callbacks (progress, checkpoints)."""

    n_iter: int
    lower_bound: float
    change: float
    seconds: float  # of the whole pass, which served every running initialisation
    params: GMMParams  # the parameters after this iteration's M-step
    converged: bool
    init: int = 0  # which initialisation


def run_em(
    X: da.Array,
    runs: list[EMResult],
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    eps: float,
    previous_bounds: list[float] | None = None,
    callback: Callable[[list[EMResult], list[IterationInfo]], None] | None = None,
    missing: str = "raise",
    sample_weight: da.Array | None = None,
    recovery: Recovery | None = None,
    accelerate: bool = False,
    log_runs: bool = True,
) -> list[EMResult]:
    """EM for several initialisations in lockstep, each until ``|change| < tol`` or
    ``max_iter`` iterations.

    Each pass over the data serves every initialisation still running; each
    takes exactly the steps it would take alone (same kernels, same chunks, same
    reduction order), so the results are bitwise those of separate runs. The
    lower bound of iteration t is the mean log-likelihood under the parameters
    of that iteration's E-step, exactly as scikit-learn defines it. ``runs``
    may continue earlier ones (resumed from a checkpoint); ``previous_bounds``
    gives the bound that a run's first iteration is compared with (warm start;
    default -inf). ``callback(runs, infos)`` follows every pass. With
    ``missing='drop'``, rows with NaN are left out (see :func:`check_finite`); with
    ``'marginalize'`` their missing features are integrated out.
    ``sample_weight`` weights the rows (see :func:`expectation`); the lower
    bound is then the weighted mean log-likelihood.

    ``recovery``: the remedies for a covariance that is not positive definite
    (:mod:`daskgmm.recovery`); each is warned about (``RecoveryWarning``) and
    recorded in the run's ``recoveries``. After a re-seed the next lower bound
    is not compared with the last: convergence is judged from the one after.

    ``accelerate``: squared extrapolation, SQUAREM (:mod:`daskgmm.acceleration`).
    A run's ``params`` are then the point its next pass evaluates, and its
    ``acceleration`` the cycle's state and fallback; a rejected point's bound is
    recorded too, and the change is measured from the point before. A run that
    stops ends on the plain EM update of its last accepted point.

    ``log_runs``: log a line per run and pass (a search logs per pass instead).
    """
    runs = list(runs)
    bounds = [
        -math.inf if r.reseeded_last
        else r.acceleration.bound if r.acceleration is not None
        else r.lower_bound if r.lower_bounds else b
        for r, b in zip(runs, previous_bounds or [-math.inf] * len(runs))
    ]
    reseed = recovery is not None and recovery.reseed
    while True:
        active = [i for i, r in enumerate(runs) if not r.converged and r.n_iter < max_iter]
        if not active:
            return runs
        t0 = time.perf_counter()
        stats = expectation(X, [runs[i].params for i in active], missing, sample_weight,
                            [runs[i].params.n_components if reseed else 0 for i in active],
                            reg_covar)
        updates = []
        for i, st in zip(active, stats):
            if st.n_empty and runs[i].n_iter == 0:
                warnings.warn(f"{st.n_empty} rows of X have every feature missing (NaN): they "
                              "count for nothing in the fit.", DaskGMMWarning, stacklevel=2)
            lower_bound = st.log_lik_sum / st.total_weight
            events: list[dict] = []
            params = m_step(st, runs[i].params, reg_covar, eps=eps, recovery=recovery,
                            events=events, history=runs[i].recoveries)
            change = lower_bound - bounds[i]
            n_iter = runs[i].n_iter + 1
            events = [{"iteration": n_iter, **e} for e in events]
            reseeded = any(e["action"] != "jitter" for e in events)
            for e in events:
                warn_recovered(e, i if len(runs) > 1 else None, reg_covar)
            state, point = None, params
            if accelerate and not reseeded:
                point, state, _, converged = next_point(
                    runs[i].params, lower_bound, params, runs[i].acceleration, abs(change) < tol
                )
                bounds[i] = state.bound
            else:
                converged = abs(change) < tol and not reseeded
                bounds[i] = -math.inf if reseeded else lower_bound
            if state is not None and (converged or n_iter >= max_iter):
                point, state = state.plain, None  # a run ends on a plain EM update
            runs[i] = EMResult(point, [*runs[i].lower_bounds, lower_bound], n_iter, converged,
                               (*runs[i].recoveries, *events), state)
            updates.append((i, n_iter, lower_bound, change, params, converged))
        seconds = time.perf_counter() - t0
        infos = []
        for i, n_iter, lower_bound, change, params, converged in updates:
            if log_runs:
                logger.info(
                    "iteration %d%s  lower bound %.6f  change %.3g  %.3f s",
                    n_iter,
                    f" (initialisation {i})" if len(runs) > 1 else "",
                    lower_bound,
                    change,
                    seconds,
                )
            infos.append(IterationInfo(n_iter, lower_bound, change, seconds, params, converged, i))
        if callback is not None:
            callback(list(runs), infos)
