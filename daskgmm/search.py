"""``daskgmm.GaussianMixtureSearch``: a grid of mixtures fitted in lockstep, the best kept.

Every model of the grid (each number of components and covariance type, each
``n_init`` times) advances together: one read of the data per pass serves every
model still running, one k-means|| serves every number of components, and one
pass at the end scores them all (BIC, AIC, the held-out log-likelihood). Each
model takes exactly the steps of ``GaussianMixture`` alone with the same
parameters (see :func:`daskgmm.fitting.fit_search`).
"""

from __future__ import annotations

import logging
import os
import warnings
from numbers import Integral, Real

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .checkpoint import CheckpointError
from .covariance import COVARIANCE_TYPES
from .data import should_persist
from .errors import ConvergenceWarning
from .estimator import GaussianMixture
from .fitting import FitData, FitHooks, checkpoint_for, fit_search
from .models import run_attributes
from .progress import search_progress
from .selection import CRITERIA, choose, grid, plot_criterion, results_table
from .weights import as_sample_weights, held_out_rows, split_dataset_weights

__all__ = ["GaussianMixtureSearch"]

logger = logging.getLogger(__name__)

#: Parameters of the search's own; every other one is a GaussianMixture parameter.
_OWN = ("n_components", "covariance_type", "criterion", "held_out", "n_init", "random_state")
#: GaussianMixture parameters a search does not take: they are of one model.
_NOT_TAKEN = ("weights_init", "means_init", "precisions_init", "warm_start", "dropna",
              "verbose", "verbose_interval")


def _gm_constraints() -> dict:
    shared = {k: v for k, v in GaussianMixture._parameter_constraints.items()
              if k not in _OWN and k not in _NOT_TAKEN}
    return {
        "n_components": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "covariance_type": [StrOptions({*COVARIANCE_TYPES, "all"}), list, tuple],
        "criterion": [StrOptions(set(CRITERIA))],
        "held_out": [Interval(Real, 0.0, 1.0, closed="neither"), None],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        **shared,
    }


class GaussianMixtureSearch(DensityMixin, BaseEstimator):
    """Model selection over a grid of Gaussian mixtures, in one read of the data per pass.

    Every number of components in ``n_components`` with every covariance type in
    ``covariance_type`` (``n_init`` initialisations each) is fitted by EM, all in
    lockstep: each pass over the data serves every model still running, and a
    model leaves the passes when it converges, so the reads are those of the
    longest fit, not their sum. Each model ends bitwise where
    :class:`GaussianMixture` with the same parameters (and ``random_state``) ends
    alone; with the default ``init_params='k-means||'`` one k-means|| run
    oversamples for the largest number of components and seeds every model, so a
    model of ``K`` components is the one fitted alone with ``init_oversampling``
    scaled by ``max(n_components) / K``. One pass at the end scores every model.

    The default start is 'k-means||', not :class:`GaussianMixture`'s 'kmeans': a
    selection is only as good as the worst-started model near the truth, and one
    k-means++ seeding per model leaves some at a poor optimum (see the README),
    where one k-means|| run, its candidates reclustered for each ``K``, serves the
    whole grid in 8 passes.

    Parameters
    ----------
    n_components : int or iterable of int, default=range(1, 11)
        The numbers of components to try.
    covariance_type : {'full', 'tied', 'diag', 'spherical', 'all'} or iterable, \
            default=('full', 'tied', 'diag', 'spherical')
        The covariance types to try ('all': the four).
    criterion : {'bic', 'aic', 'held_out'}, default='bic'
        What selects the best model: the lowest BIC or AIC on the fitted rows, or
        the highest mean log-likelihood of the held-out rows (needs ``held_out``).
    held_out : float in (0, 1), default=None
        Keep this fraction of the rows out of every fit (chosen by a hash of the
        global row index: the same rows whatever the chunking), and score every
        model on them in the final pass. BIC and AIC are then of the fitted rows.
    n_init : int, default=1
        Initialisations of each model; each model keeps the best by its lower
        bound, as :class:`GaussianMixture` does.
    random_state : int, RandomState instance or None, default=None
        Every model is initialised from ``RandomState(seed)`` with the same seed
        (an int given, or one drawn from the generator given).
    **params
        Any other parameter of :class:`GaussianMixture` (``tol``, ``reg_covar``,
        ``max_iter``, ``init_params``, ``missing``, ``accelerate``,
        ``checkpoint`` (one checkpoint for the whole search), ...), with the same
        meaning for every model. ``weights_init``, ``means_init``,
        ``precisions_init`` and ``warm_start`` are of one model and not taken.

    Attributes
    ----------
    results_ : pandas.DataFrame
        One row per model and initialisation: ``n_components``,
        ``covariance_type``, ``init``, ``n_iter``, ``converged``, ``lower_bound``,
        ``log_likelihood`` (mean, of the fitted rows under the final parameters),
        ``bic``, ``aic``, ``held_out_log_likelihood`` (with ``held_out``),
        ``n_parameters``, ``seconds`` (the passes it took part in, shared with
        the others running) and ``kept`` (the initialisation its model keeps).
    best_estimator_ : GaussianMixture
        The best model, fitted.
    best_params_ : dict
        Its ``n_components`` and ``covariance_type``.
    best_index_ : int
        Its row in ``results_``.
    n_features_in_ : int

    Examples
    --------
    >>> import dask.array as da
    >>> from daskgmm import GaussianMixtureSearch
    >>> X = da.random.default_rng(0).normal(size=(10_000, 2), chunks=(2_500, 2))
    >>> search = GaussianMixtureSearch(range(1, 4), random_state=0).fit(X)
    >>> search.best_params_
    {'n_components': 1, 'covariance_type': 'spherical'}
    """

    _parameter_constraints: dict = _gm_constraints()

    def __init__(
        self,
        n_components=range(1, 11),
        covariance_type=("full", "tied", "diag", "spherical"),
        *,
        criterion="bic",
        held_out=None,
        n_init=1,
        random_state=None,
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        init_params="k-means||",
        init_rounds=5,
        init_oversampling=2.0,
        init_lloyd_iter=1,
        checkpoint=None,
        checkpoint_every=1,
        checkpoint_overwrite=False,
        checkpoint_verify=True,
        accelerate=False,
        jitter_covar=True,
        reseed_collapsed=True,
        sample_dims=None,
        feature_dim=None,
        missing="auto",
        persist="auto",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.held_out = held_out
        self.n_init = n_init
        self.random_state = random_state
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.init_params = init_params
        self.init_rounds = init_rounds
        self.init_oversampling = init_oversampling
        self.init_lloyd_iter = init_lloyd_iter
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.checkpoint_overwrite = checkpoint_overwrite
        self.checkpoint_verify = checkpoint_verify
        self.accelerate = accelerate
        self.jitter_covar = jitter_covar
        self.reseed_collapsed = reseed_collapsed
        self.sample_dims = sample_dims
        self.feature_dim = feature_dim
        self.missing = missing
        self.persist = persist

    # ------------------------------------------------------------------ grid

    def _model_params(self, k: int, covariance_type: str) -> dict:
        """The parameters of :class:`GaussianMixture` that fits one model alone."""
        params = {name: value for name, value in self.get_params().items()
                  if name not in ("criterion", "held_out")}
        params.update(n_components=k, covariance_type=covariance_type, checkpoint=None,
                      checkpoint_overwrite=False)
        return params

    # ------------------------------------------------------------------- fit

    def fit(self, X, y=None, sample_weight=None):
        """Fit every model of the grid in lockstep, score them, keep the best.

        Parameters
        ----------
        X : array-like, dask.array.Array, Zarr path or URL, or xarray object
            The data, as :meth:`GaussianMixture.fit` takes it.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            As in :meth:`GaussianMixture.fit`; BIC and AIC then take the sum of
            the weights as the number of samples.

        Returns
        -------
        self : GaussianMixtureSearch
        """
        self._validate_params()
        models = grid(self.n_components, self.covariance_type)
        if self.criterion == "held_out" and self.held_out is None:
            raise ValueError("criterion='held_out' needs held_out, the fraction of rows to "
                             "hold out (e.g. held_out=0.1).")
        k_max = max(k for k, _ in models)
        template = GaussianMixture(**self._model_params(k_max, models[0][1]))
        X, sample_weight = split_dataset_weights(X, sample_weight)
        rows = template._rows(X, reset=True)
        self.n_features_in_ = template.n_features_in_
        if hasattr(template, "feature_names_in_"):
            self.feature_names_in_ = template.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        if rows.n_samples < k_max:
            raise ValueError(
                "Expected n_samples >= n_components but got n_components = "
                f"{k_max} (the largest of the search), n_samples = {rows.n_samples}"
            )
        weights = as_sample_weights(sample_weight, rows)
        data = rows.array
        fit_weights, score_weights = self._weightings(data, weights)
        seed = (int(self.random_state) if isinstance(self.random_state, Integral)
                else int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max)))
        saver = None
        if self.checkpoint is not None:  # checked before any read of the data
            saver = checkpoint_for(
                self.checkpoint, self.get_params() | {"n_components": None,
                                                      "covariance_type": None}, data, weights,
                overwrite=self.checkpoint_overwrite,
                source=X if isinstance(X, (str, os.PathLike)) else None,
                search={"models": [[k, t] for k, t in models], "n_init": self.n_init},
            )
        if not rows.lazy or should_persist(data, self.persist):
            data, fit_weights, score_weights = dask.persist(data, fit_weights, score_weights)
        missing = template._missing(rows)
        outcome = fit_search(
            FitData(data, fit_weights, missing),
            template.get_params(),
            models=models,
            n_init=self.n_init,
            seed=seed,
            score_weights=score_weights,
            choose=lambda runs, scores: self._choose(models, runs, scores),
            saver=saver,
            hooks=FitHooks(pass_end=search_progress(len(models) * self.n_init, self.max_iter)),
        )
        self._set_results(models, outcome, data.dtype, seed)
        return self

    def _weightings(self, data: da.Array, weights):
        """The sample weights of the fit (None: unweighted) and the columns the final
        pass scores under: the fitted rows, and with ``held_out`` the held-out ones."""
        user = None if weights is None else weights.array
        if self.held_out is None:
            return (None if weights is None else weights.for_fit), user
        held = held_out_rows(data, self.held_out)
        ones = da.ones_like(held) if user is None else user
        fit, out = ones * (1.0 - held), ones * held
        (n_out, n_fit) = dask.compute(out.sum(), fit.sum())
        if n_out <= 0 or n_fit <= 0:
            raise ValueError(
                f"held_out={self.held_out} leaves {'no row' if n_out <= 0 else 'every row'} out "
                f"of the {data.shape[0]} rows (or only rows of zero sample_weight): give a "
                "fraction that holds some rows out and fits the others, or more rows."
            )
        return fit, da.concatenate([fit, out], axis=1).rechunk({1: -1})

    def _table(self, models, runs, scores) -> list[dict]:
        """One record per run (see ``results_``) from where the runs ended and their scores."""
        return results_table(models, runs, scores, n_init=self.n_init,
                             n_features=self.n_features_in_, held_out=self.held_out is not None)

    def _choose(self, models, runs, scores) -> int:
        """The run of the best model by the criterion (among the runs each model keeps)."""
        return choose(self._table(models, runs, scores), self.criterion)

    def _set_results(self, models, outcome, dtype, seed: int) -> None:
        import pandas as pd

        n_runs = len(models) * self.n_init
        extra = outcome.extra or {}
        scores = np.asarray(extra.get("scores", ()), dtype=np.float64)
        seconds = np.asarray(extra.get("seconds", ()), dtype=np.float64)
        m = 1 if self.held_out is None else 2
        if scores.shape != (n_runs, 2, m) or seconds.shape != (n_runs,) or \
                not np.isfinite(scores[:, 1]).all():
            raise CheckpointError(
                f"{self.checkpoint!s}: the search's scores are malformed (shape {scores.shape}, "
                f"expected {(n_runs, 2, m)}); pass checkpoint_overwrite=True to start over"
            )
        table = self._table(models, outcome.runs, scores)
        for record, s in zip(table, seconds):
            record["seconds"] = float(s)
        columns = ["n_components", "covariance_type", "init", "n_iter", "converged",
                   "lower_bound", "log_likelihood", "bic", "aic"]
        columns += ["held_out_log_likelihood"] if self.held_out is not None else []
        columns += ["n_parameters", "seconds", "kept"]
        self.results_ = pd.DataFrame.from_records(table, columns=columns)
        self.best_index_ = choose(table, self.criterion)
        best = outcome.runs[self.best_index_]
        k, t = models[self.best_index_ // self.n_init]
        self.best_params_ = {"n_components": k, "covariance_type": t}
        params = self._model_params(k, t) | {"random_state": self.random_state}
        gm = GaussianMixture._from_stored(best.params, params, run_attributes(best, dtype))
        gm.random_state = self.random_state  # (not stored: it may be a generator)
        if hasattr(self, "feature_names_in_"):
            gm.feature_names_in_ = self.feature_names_in_
        self.best_estimator_ = gm
        stopped = int((~self.results_["converged"]).sum())
        if stopped and self.max_iter > 0:
            warnings.warn(
                f"{stopped} of {n_runs} fits of the search did not converge (see results_); "
                "increase max_iter or tol.", ConvergenceWarning, stacklevel=3,
            )

    # -------------------------------------------------------- the best model

    def _best(self) -> GaussianMixture:
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_

    def predict(self, X):
        """Labels under the best model (see :meth:`GaussianMixture.predict`)."""
        return self._best().predict(X)

    def predict_proba(self, X):
        """Component probabilities under the best model."""
        return self._best().predict_proba(X)

    def score_samples(self, X):
        """Log-likelihood of each sample under the best model."""
        return self._best().score_samples(X)

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood of the samples under the best model."""
        return self._best().score(X, sample_weight=sample_weight)

    def sample(self, n_samples=1):
        """Samples drawn from the best model."""
        return self._best().sample(n_samples)

    def bic(self, X, sample_weight=None):
        """BIC of the best model on X."""
        return self._best().bic(X, sample_weight=sample_weight)

    def aic(self, X, sample_weight=None):
        """AIC of the best model on X."""
        return self._best().aic(X, sample_weight=sample_weight)

    def plot(self, ax=None):
        """The criterion against ``n_components``, one line per covariance type (the
        initialisations each model keeps), the best marked. Needs matplotlib
        (``pip install 'daskgmm[examples]'``). Returns the axes."""
        check_is_fitted(self, "results_")
        return plot_criterion(self.results_, self.best_index_, self.criterion, ax)
