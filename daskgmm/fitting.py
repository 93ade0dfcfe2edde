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

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import dask.array as da
import numpy as np

from . import checkpoint as ckpt
from .data import fingerprint
from .em import IterationInfo, run_em
from .errors import DaskGMMWarning
from .init import initial_parameters_given
from .params import EMResult, GMMParams
from .passes import ContentCheck
from .recovery import Recovery
from .safety import check_apart, check_output, what_is_at, writer_lock

__all__ = ["FitData", "FitHooks", "checkpoint_for", "fit_gaussian_mixture", "fit_initialisations"]

#: Estimator parameters that do not change the result of a fit (not checked on resume).
_NOT_IN_IDENTITY = {"verbose", "verbose_interval", "checkpoint", "checkpoint_every",
                    "checkpoint_overwrite", "checkpoint_verify", "persist"}


@dataclass(frozen=True)
class FitData:
    """What a fit reads: the rows, their sample weights (None: unweighted), and
    what rows with NaN are: an error ('raise'), left out ('drop') or integrated
    over their missing features ('marginalize')."""

    X: da.Array
    weights: da.Array | None = None
    missing: str = "raise"


def checkpoint_for(path, estimator_params: dict, X: da.Array, weights, *, overwrite: bool,
                   source=None):
    """The :class:`~daskgmm.checkpoint.Checkpoint` of a fit: what it must match to be
    resumed is the estimator parameters and the data (and sample weights).

    Checked before anything is read: ``path`` must be new, empty, a daskgmm
    checkpoint (resumed, or replaced with ``overwrite``) or, with ``overwrite``,
    a daskgmm model; and apart from the input's ``source`` path.
    """
    check_apart(path, {"input": source}, "checkpoint")
    if what_is_at(path) != "checkpoint":
        check_output(path, parameter="checkpoint", replaceable=("model",), overwrite=overwrite,
                     how="pass checkpoint_overwrite=True")
    params = {k: v for k, v in estimator_params.items() if k not in _NOT_IN_IDENTITY}
    data = fingerprint(X)
    data["sample_weight"] = None if weights is None else weights.fingerprint
    return ckpt.Checkpoint(path, identity=ckpt.fit_identity(params, data), overwrite=overwrite)


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
    content: ContentCheck | None = None,
    verify: bool = True,
) -> EMResult:
    """The best of ``n_init`` EM runs.

    ``initialise(count)`` draws ``count`` sets of initial parameters (from
    ``random_state``);
    ``run(runs, previous_bounds=, callback=)`` runs EM on all of them in
    lockstep (:func:`daskgmm.em.run_em`). ``warm`` (parameters and lower bound
    of an earlier fit) replaces the initialisation (scikit-learn's
    ``warm_start``; then ``n_init`` is 1). With ``max_iter == 0`` the last
    initialisation is returned, not iterated.

    ``content`` takes the digests of the data's chunks in the first pass, to be
    saved with the state; a resumed fit compares them with those saved, in its
    first pass, or for a finished fit in a pass of its own. With ``verify``
    False a resumed fit compares nothing, and says so.
    """
    hooks = hooks or FitHooks()
    state = saver.load() if saver is not None else None
    runs: list[EMResult] = []
    if state is not None:
        random_state.set_state(state.rng_state)
        runs = list(state.runs)
        if content is not None:
            if verify:
                content.expected = state.chunk_digests
            else:
                warnings.warn(
                    f"resuming from the checkpoint at {saver.path!s} without verifying that the "
                    "data are those it was fitted on (checkpoint_verify=False)",
                    DaskGMMWarning, stacklevel=4,
                )
        if state.status == "done":
            if content is not None and verify:
                if state.chunk_digests is None:  # no pass read the data (max_iter=0)
                    warnings.warn(
                        f"the finished checkpoint at {saver.path!s} holds no digests of the "
                        "data: returned without verifying that the data are the same",
                        DaskGMMWarning, stacklevel=4,
                    )
                else:
                    content.verify()
            return runs[state.best]

    def save(runs, best=None):
        if saver is not None:
            saver.save(
                ckpt.FitState(
                    list(runs),
                    random_state.get_state(),
                    "running" if best is None else "done",
                    best,
                    None if content is None else content.known,
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


def fit_gaussian_mixture(
    data: FitData,
    params: dict,
    *,
    given: tuple,
    n_init: int,
    random_state: np.random.RandomState,
    warm: tuple[GMMParams, float] | None = None,
    saver: ckpt.Checkpoint | None = None,
    hooks: FitHooks | None = None,
) -> EMResult:
    """The best of ``n_init`` EM runs over ``data`` with the estimator parameters
    ``params`` (``GaussianMixture.get_params()``): initialisation by
    ``init_params`` (with the user's ``given`` weights, means and precisions),
    EM in lockstep, checkpoints."""
    eps = float(np.finfo(data.X.dtype).eps)
    recovery = Recovery(jitter=params.get("jitter_covar", True),
                        reseed=params.get("reseed_collapsed", True))
    initialise = partial(
        initial_parameters_given,
        data.X,
        given=given,
        n_components=params["n_components"],
        covariance_type=params["covariance_type"],
        method=params["init_params"],
        random_state=random_state,
        reg_covar=params["reg_covar"],
        eps=eps,
        kmeans_parallel_options=dict(
            n_rounds=params["init_rounds"],
            oversampling=params["init_oversampling"],
            lloyd_iter=params["init_lloyd_iter"],
        ),
        missing=data.missing,
        sample_weight=data.weights,
        recovery=recovery,
    )
    run = partial(
        run_em,
        data.X,
        tol=params["tol"],
        max_iter=params["max_iter"],
        reg_covar=params["reg_covar"],
        eps=eps,
        missing=data.missing,
        sample_weight=data.weights,
        recovery=recovery,
        accelerate=params.get("accelerate", False),
    )
    content = None if saver is None else ContentCheck(data.X, where=str(saver.path))
    # one writer per checkpoint, for the whole fit; the first pass takes the data's digests
    with contextlib.ExitStack() as stack:
        if saver is not None:
            stack.enter_context(writer_lock(saver.path))
            stack.enter_context(content.watching())
        return fit_initialisations(
            n_init=n_init,
            max_iter=params["max_iter"],
            random_state=random_state,
            initialise=lambda count: initialise(count=count),
            run=run,
            warm=warm,
            saver=saver,
            checkpoint_every=params["checkpoint_every"],
            hooks=hooks,
            content=content,
            verify=params.get("checkpoint_verify", True),
        )
