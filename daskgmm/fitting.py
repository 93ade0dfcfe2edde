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
import time
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
from .init import initial_parameters_given, initial_parameters_grid
from .params import EMResult, GMMParams
from .passes import split_scores
from .reads import ContentCheck
from .recovery import Recovery
from .safety import check_apart, check_output, what_is_at, writer_lock

__all__ = [
    "FitData",
    "FitHooks",
    "Outcome",
    "best_run",
    "checkpoint_for",
    "fit_gaussian_mixture",
    "fit_runs",
    "fit_search",
]

#: Estimator parameters that do not change the result of a fit (not checked on resume).
_NOT_IN_IDENTITY = {"verbose", "verbose_interval", "checkpoint", "checkpoint_every",
                    "checkpoint_overwrite", "checkpoint_verify", "persist", "criterion"}


@dataclass(frozen=True)
class FitData:
    """What a fit reads: the rows, their sample weights (None: unweighted), and
    what rows with NaN are: an error ('raise'), left out ('drop') or integrated
    over their missing features ('marginalize')."""

    X: da.Array
    weights: da.Array | None = None
    missing: str = "raise"


def checkpoint_for(path, estimator_params: dict, X: da.Array, weights, *, overwrite: bool,
                   source=None, search: dict | None = None):
    """The :class:`~daskgmm.checkpoint.Checkpoint` of a fit: what it must match to be
    resumed is the estimator parameters and the data (and sample weights).

    Checked before anything is read: ``path`` must be new, empty, a daskgmm
    checkpoint (resumed, or replaced with ``overwrite``) or, with ``overwrite``,
    a daskgmm model; and apart from the input's ``source`` path. ``search``: the
    grid of a search (``models`` as ``[n_components, covariance_type]`` pairs, and
    ``n_init``), which its checkpoint must match too.
    """
    check_apart(path, {"input": source}, "checkpoint")
    if what_is_at(path) != "checkpoint":
        check_output(path, parameter="checkpoint", replaceable=("model",), overwrite=overwrite,
                     how="pass checkpoint_overwrite=True")
    params = {k: v for k, v in estimator_params.items() if k not in _NOT_IN_IDENTITY}
    data = fingerprint(X)
    data["sample_weight"] = None if weights is None else weights.fingerprint
    identity = ckpt.fit_identity(params, data)
    if search is not None:
        identity["search"] = search
    return ckpt.Checkpoint(path, identity=identity, overwrite=overwrite)


@dataclass
class FitHooks:
    """What the caller does around the loop (progress output); all optional."""

    init_start: Callable[[int], None] | None = None
    iteration: Callable[[IterationInfo], None] | None = None
    init_end: Callable[[int, EMResult], None] | None = None
    #: after every pass: where all the runs stand, and what this pass's runs report
    pass_end: Callable[[list[EMResult], list[IterationInfo]], None] | None = None


def best_run(runs: list[EMResult]) -> int:
    """scikit-learn's rule: the first run, then any with a higher lower bound (a run
    without iterations, ``max_iter=0``, replaces the one before: the last is kept)."""
    best = 0
    for i, run in enumerate(runs[1:], start=1):
        if not runs[best].lower_bounds or run.lower_bound > runs[best].lower_bound:
            best = i
    return best


@dataclass(frozen=True)
class Outcome:
    """The runs of a fit where they ended, the one kept, and the caller's ``extra``
    (see :func:`fit_runs`)."""

    runs: list[EMResult]
    best: int
    extra: dict | None = None


def fit_runs(
    *,
    n_runs: int,
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
    finish: Callable[[list[EMResult]], tuple[int, dict | None]] | None = None,
) -> Outcome:
    """``n_runs`` EM runs in lockstep, and the best (``n_init`` initialisations of a
    fit, or every initialisation of every model of a search).

    ``initialise(count)`` draws ``count`` sets of initial parameters (from
    ``random_state``);
    ``run(runs, previous_bounds=, callback=)`` runs EM on all of them in
    lockstep (:func:`daskgmm.em.run_em`). ``warm`` (parameters and lower bound
    of an earlier fit) replaces the initialisation (scikit-learn's
    ``warm_start``; then ``n_runs`` is 1). ``finish(runs)`` gives the run kept and
    values saved with the final state (a search's scores, from a pass of its
    own); by default scikit-learn's rule (:func:`best_run`, with ``max_iter == 0``
    the last initialisation) and none.

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
            return Outcome(runs, state.best, state.extra)

    def save(runs, best=None, extra=None):
        if saver is not None:
            saver.save(
                ckpt.FitState(
                    list(runs),
                    random_state.get_state(),
                    "running" if best is None else "done",
                    best,
                    None if content is None else content.known,
                    extra,
                )
            )

    previous_bounds = None
    if warm is not None:
        runs, previous_bounds = [EMResult(warm[0], [], 0, False)], [warm[1]]
    if len(runs) < n_runs:
        if hooks.init_start:
            for i in range(len(runs), n_runs):
                hooks.init_start(i)
        runs += [EMResult(p, [], 0, False) for p in initialise(n_runs - len(runs))]
        save(runs)

    def callback(now: list[EMResult], infos: list[IterationInfo]) -> None:
        if hooks.iteration:
            for info in infos:
                hooks.iteration(info)
        if hooks.pass_end:
            hooks.pass_end(now, infos)
        # The end of the fit is saved below.
        running = any(not r.converged and r.n_iter < max_iter for r in now)
        if running and max(info.n_iter for info in infos) % checkpoint_every == 0:
            save(now)

    runs = run(runs, previous_bounds=previous_bounds, callback=callback)
    if hooks.init_end:
        for i, result in enumerate(runs):
            hooks.init_end(i, result)
    best, extra = finish(runs) if finish is not None else (best_run(runs), None)
    save(runs, best, extra)
    return Outcome(runs, best, extra)


def _engine(data: FitData, params: dict, **run_options):
    """What the initialisations and the EM of a fit take from the estimator
    parameters ``params``: the options of the initialisations (see
    :func:`daskgmm.init.initial_parameters`) and :func:`daskgmm.em.run_em` bound
    to the data."""
    eps = float(np.finfo(data.X.dtype).eps)
    recovery = Recovery(jitter=params.get("jitter_covar", True),
                        reseed=params.get("reseed_collapsed", True))
    init_options = dict(
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
        **run_options,
    )
    return init_options, run


@contextlib.contextmanager
def _guarded(saver: ckpt.Checkpoint | None, X: da.Array):
    """One writer per checkpoint for the whole fit, and the data's digests taken by
    its first pass: the :class:`ContentCheck` (None without a checkpoint)."""
    content = None if saver is None else ContentCheck(X, where=str(saver.path))
    with contextlib.ExitStack() as stack:
        if saver is not None:
            stack.enter_context(writer_lock(saver.path))
            stack.enter_context(content.watching())
        yield content


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
    init_options, run = _engine(data, params)
    initialise = partial(
        initial_parameters_given,
        data.X,
        given=given,
        n_components=params["n_components"],
        covariance_type=params["covariance_type"],
        method=params["init_params"],
        random_state=random_state,
        **init_options,
    )
    with _guarded(saver, data.X) as content:
        outcome = fit_runs(
            n_runs=n_init,
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
    return outcome.runs[outcome.best]


def fit_search(
    data: FitData,
    params: dict,
    *,
    models: list[tuple[int, str]],
    n_init: int,
    seed: int,
    score_weights: da.Array | None,
    choose: Callable[[list[EMResult], np.ndarray], int],
    saver: ckpt.Checkpoint | None = None,
    hooks: FitHooks | None = None,
) -> Outcome:
    """Every ``(n_components, covariance_type)`` of ``models``, ``n_init`` times, in
    lockstep: one read of the data per pass for all the runs still running, each
    run taking exactly the steps of ``GaussianMixture`` alone with ``params`` and
    ``random_state=seed`` (see :func:`daskgmm.init.initial_parameters_grid`).

    Once all have stopped, one pass scores every run's final parameters under each
    column of ``score_weights`` (see :func:`daskgmm.passes.split_scores`: the
    fitted rows, and the held-out ones); ``choose(runs, scores)`` names the best.
    The scores are saved with the final state (``extra["scores"]``), so that a
    finished checkpoint gives them without a pass.
    """
    init_options, run = _engine(data, params, log_runs=False)
    n_runs = len(models) * n_init
    seconds = np.zeros(n_runs)  # the passes each run took part in, in this process
    hooks = hooks or FitHooks()

    def initialise(count: int) -> list[GMMParams]:
        t0 = time.perf_counter()
        grid = initial_parameters_grid(data.X, models, n_init, params["init_params"], seed,
                                       **init_options)
        seconds[:] += time.perf_counter() - t0
        drawn = [p for per_model in grid for p in per_model]
        return drawn[len(drawn) - count:]

    def pass_end(runs: list[EMResult], infos: list[IterationInfo]) -> None:
        for info in infos:
            seconds[info.init] += info.seconds
        if hooks.pass_end:
            hooks.pass_end(runs, infos)

    def finish(runs: list[EMResult]):
        t0 = time.perf_counter()
        scores = split_scores(data.X, [r.params for r in runs], score_weights, data.missing)
        seconds[:] += time.perf_counter() - t0
        return choose(runs, scores), {"scores": scores.tolist(), "seconds": seconds.tolist()}

    with _guarded(saver, data.X) as content:
        return fit_runs(
            n_runs=n_runs,
            max_iter=params["max_iter"],
            random_state=np.random.RandomState(seed),
            initialise=initialise,
            run=run,
            saver=saver,
            checkpoint_every=params["checkpoint_every"],
            hooks=FitHooks(hooks.init_start, hooks.iteration, hooks.init_end, pass_end),
            content=content,
            verify=params.get("checkpoint_verify", True),
            finish=finish,
        )
