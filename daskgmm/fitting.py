"""Several initialisations, each run to convergence, with checkpoints: the fit as a whole.

The loop of scikit-learn's ``BaseMixture.fit_predict`` (``n_init`` starts, the
best lower bound kept), around :func:`daskgmm.em.run_em`, with the state saved
to a :class:`daskgmm.checkpoint.Checkpoint` after each initialisation and every
``checkpoint_every`` iterations, and resumed from it: a resumed fit takes
exactly the steps an uninterrupted one would (same random draws, same
parameters), so its result is bitwise the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .em import EMResult, IterationInfo
from .params import GMMParams

__all__ = ["FitHooks", "fit_initialisations"]


@dataclass
class FitHooks:
    """What the caller does around the loop (progress output); all optional."""

    init_start: Callable[[int], None] | None = None
    iteration: Callable[[IterationInfo], None] | None = None
    init_end: Callable[[EMResult], None] | None = None


def _astuple(result: EMResult | None):
    if result is None:
        return None
    return (result.params, list(result.lower_bounds), result.n_iter, result.converged)


def _better(best: EMResult | None, result: EMResult) -> EMResult:
    """scikit-learn's rule: the first result, then any with a higher lower bound."""
    if best is None or not best.lower_bounds or result.lower_bound > best.lower_bound:
        return result
    return best


def fit_initialisations(
    *,
    n_init: int,
    max_iter: int,
    random_state: np.random.RandomState,
    initialise: Callable[[], GMMParams],
    run: Callable[..., EMResult],
    warm: tuple[GMMParams, float] | None = None,
    saver: ckpt.Checkpoint | None = None,
    checkpoint_every: int = 1,
    hooks: FitHooks | None = None,
) -> EMResult:
    """The best of ``n_init`` EM runs.

    ``initialise()`` draws initial parameters (from ``random_state``);
    ``run(params, lower_bound=, lower_bounds=, start_iter=, callback=)`` runs EM.
    ``warm`` (parameters and lower bound of an earlier fit) replaces the
    initialisation (scikit-learn's ``warm_start``; then ``n_init`` is 1).
    With ``max_iter == 0`` the last initialisation is returned, not iterated.
    """
    hooks = hooks or FitHooks()
    state = saver.load() if saver is not None else None
    best: EMResult | None = None
    first = 0
    if state is not None:
        random_state.set_state(state.rng_state)
        first = state.init
        if state.best is not None:
            best = EMResult(*state.best)
        if state.status == "done":
            return best

    def save(init, n_iter, params, lower_bounds, status="running"):
        if saver is not None:
            saver.save(
                ckpt.FitState(
                    init, n_iter, params, list(lower_bounds), random_state.get_state(),
                    _astuple(best), status,
                )
            )

    for i in range(first, n_init):
        if hooks.init_start:
            hooks.init_start(i)
        lower_bounds: list[float] = []
        start_iter = 0
        if state is not None and state.init == i and state.params is not None:
            params, lower_bounds, start_iter = state.params, state.lower_bounds, state.n_iter
        elif warm is not None:
            params = warm[0]
        else:
            params = initialise()
            save(i, 0, params, [])
        if lower_bounds:
            lower_bound = lower_bounds[-1]
        else:
            lower_bound = warm[1] if warm is not None else -math.inf

        if max_iter == 0:
            best = EMResult(params, [], 0, False)  # scikit-learn keeps the last one
        else:
            so_far = list(lower_bounds)

            def callback(info: IterationInfo, i=i, so_far=so_far) -> None:
                so_far.append(info.lower_bound)
                if hooks.iteration:
                    hooks.iteration(info)
                # The end of an initialisation is saved below.
                last = info.converged or info.n_iter == max_iter
                if info.n_iter % checkpoint_every == 0 and not last:
                    save(i, info.n_iter, info.params, so_far)

            result = run(
                params,
                lower_bound=lower_bound,
                lower_bounds=lower_bounds,
                start_iter=start_iter,
                callback=callback,
            )
            if hooks.init_end:
                hooks.init_end(result)
            best = _better(best, result)
        save(i + 1, 0, None, [], "done" if i == n_init - 1 else "running")
    return best
