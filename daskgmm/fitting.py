"""Several initialisations run to convergence in lockstep, with checkpoints: the fit as a whole.

The loop of scikit-learn's ``BaseMixture.fit_predict`` (``n_init`` starts, the
best lower bound kept), around :func:`daskgmm.em.run_em`. All initial
parameters are drawn first (EM draws nothing, so for scikit-learn's methods
they are those that its initialise-run-initialise-run loop draws; k-means||
draws them together, one pass per round for all); then the EM runs of all
initialisations advance together, one read of the data per iteration for all
of them. The state is saved to a :class:`daskgmm.checkpoint.Checkpoint` once
they are drawn and every ``checkpoint_every`` iterations, and resumed from
it: a resumed fit takes exactly the steps an uninterrupted one would (same
random draws, same parameters), so its result is bitwise the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .em import IterationInfo
from .params import EMResult, GMMParams

__all__ = ["FitHooks", "fit_initialisations"]


@dataclass
class FitHooks:
    """What the caller does around the loop (progress output); all optional."""

    init_start: Callable[[int], None] | None = None
    iteration: Callable[[IterationInfo], None] | None = None
    init_end: Callable[[int, EMResult], None] | None = None


def _best(runs: list[EMResult]) -> int:
    """scikit-learn's rule: the first run, then any with a higher lower bound (a run
    without iterations, ``max_iter=0``, replaces the one before: the last is kept)."""
    best = 0
    for i, run in enumerate(runs[1:], start=1):
        if not runs[best].lower_bounds or run.lower_bound > runs[best].lower_bound:
            best = i
    return best


def fit_initialisations(
    *,
    n_init: int,
    max_iter: int,
    random_state: np.random.RandomState,
    initialise: Callable[[int], list[GMMParams]],
    run: Callable[..., list[EMResult]],
    warm: tuple[GMMParams, float] | None = None,
    saver: ckpt.Checkpoint | None = None,
    checkpoint_every: int = 1,
    hooks: FitHooks | None = None,
) -> EMResult:
    """The best of ``n_init`` EM runs.

    ``initialise(count)`` draws ``count`` sets of initial parameters (from
    ``random_state``);
    ``run(runs, previous_bounds=, callback=)`` runs EM on all of them in
    lockstep (:func:`daskgmm.em.run_em`). ``warm`` (parameters and lower bound
    of an earlier fit) replaces the initialisation (scikit-learn's
    ``warm_start``; then ``n_init`` is 1). With ``max_iter == 0`` the last
    initialisation is returned, not iterated.
    """
    hooks = hooks or FitHooks()
    state = saver.load() if saver is not None else None
    runs: list[EMResult] = []
    if state is not None:
        random_state.set_state(state.rng_state)
        runs = list(state.runs)
        if state.status == "done":
            return runs[state.best]

    def save(runs, best=None):
        if saver is not None:
            saver.save(
                ckpt.FitState(
                    list(runs),
                    random_state.get_state(),
                    "running" if best is None else "done",
                    best,
                )
            )

    previous_bounds = None
    if warm is not None:
        runs, previous_bounds = [EMResult(warm[0], [], 0, False)], [warm[1]]
    if len(runs) < n_init:
        if hooks.init_start:
            for i in range(len(runs), n_init):
                hooks.init_start(i)
        runs += [EMResult(p, [], 0, False) for p in initialise(n_init - len(runs))]
        save(runs)

    def callback(now: list[EMResult], infos: list[IterationInfo]) -> None:
        if hooks.iteration:
            for info in infos:
                hooks.iteration(info)
        # The end of the fit is saved below.
        running = any(not r.converged and r.n_iter < max_iter for r in now)
        if running and max(info.n_iter for info in infos) % checkpoint_every == 0:
            save(now)

    runs = run(runs, previous_bounds=previous_bounds, callback=callback)
    if hooks.init_end:
        for i, result in enumerate(runs):
            hooks.init_end(i, result)
    best = _best(runs)
    save(runs, best)
    return runs[best]
