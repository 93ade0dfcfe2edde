"""``daskgmm.GaussianMixture``: scikit-learn's estimator, fitted over Dask arrays.

Its parameters and the fit; what the fitted model does (predictions, scores,
sampling, saving) is :class:`daskgmm.mixture.BaseMixture`'s.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral, Real

import dask
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from . import models
from .covariance import COVARIANCE_TYPES
from .data import Rows, should_persist
from .errors import ConvergenceWarning
from .fitting import FitData, checkpoint_for, fit_gaussian_mixture
from .init import INIT_METHODS
from .mixture import BaseMixture
from .params import GMMParams
from .passes import MISSING
from .progress import verbose_hooks
from .validation import check_initial_parameters
from .weights import as_sample_weights, split_dataset_weights

__all__ = ["GaussianMixture", "load"]


class GaussianMixture(BaseMixture):
    """Gaussian mixture fitted by EM over the chunks of a Dask array.

    The parameters, attributes and methods are those of
    :class:`sklearn.mixture.GaussianMixture`, with the same meanings; code that
    uses scikit-learn's estimator switches by changing the import. Each EM
    iteration maps the E-step and the sufficient statistics over the row chunks
    of the data (on threads, or on the workers of a ``distributed`` cluster when
    a client is active), tree-sums them, and does the M-step on the client.

    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        The type of covariance parameters, as in scikit-learn.
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound (mean
        log-likelihood) between iterations.
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of covariances.
    accelerate : bool, default=False
        Squared extrapolation, SQUAREM (Varadhan & Roland 2008, scheme SqS3):
        from a point and its next two plain EM steps, each cycle of two passes
        jumps to ``theta0 + 2 a r + a^2 v`` (``r`` the first step, ``v`` the
        change between the two, ``a = |r| / |v|``). A point whose bound drops
        below the one before it is rejected and the plain EM step taken
        instead, so the fit never ends lower than EM would from the last
        accepted point; convergence is tested on plain steps only. Steps are
        taken on log-weights, means and log-Cholesky factors, so every point is
        a valid mixture. Fewer passes where EM is slow (overlapping clusters, a
        small ``tol``); ``lower_bounds_`` then also holds the bounds of
        rejected points. False: scikit-learn's exact iteration.
    jitter_covar : bool, default=True
        Where a covariance is not positive definite after ``reg_covar`` (collinear
        data, or data large against their spread), add a jitter relative to that
        covariance's own variance scale, from ``eps`` up to 1% of it by factors of
        10, until it factorises; a ``RecoveryWarning`` gives the amount.
    reseed_collapsed : bool, default=True
        Where a component collapses (onto a singleton or duplicated points, a
        covariance that jitter cannot make positive definite), re-seed it on the
        row the model explained worst in the same E-step, with the pooled
        covariance of the other components; a ``RecoveryWarning`` names it. The
        lower bound may then drop once, and convergence is judged from the
        iteration after. With both False, scikit-learn's ill-defined-covariance
        ``ValueError`` is raised instead.
    max_iter : int, default=100
        The number of EM iterations to perform.
    n_init : int, default=1
        The number of initialisations; the best result is kept. They run in
        lockstep: every pass over the data serves all of them (see the README).
    init_params : {'kmeans', 'k-means||', 'k-means++', 'random', 'random_from_data'}, \
            default='kmeans'
        The method used to initialise the weights, means and precisions.
        'kmeans', as in scikit-learn: k-means, then one pass for the parameters
        of its assignment of every row. On at most 100,000 rows it is
        scikit-learn's own KMeans (k-means++ seeding) on every row. On more it
        runs on a uniform sample on the client, 2,500 rows a component, 20,000
        to 100,000 (fewer for rows of more than 167 features: at most 128 MiB), twice,
        scikit-learn's and one seeded by k-means|| over the sample, and keeps the
        lower inertia. Both run on one thread, so the start is the same on
        every machine (scikit-learn's KMeans sums per-thread partial centres, so
        its centres change in the last digits with the number of cores).
        'k-means||' is scalable k-means++ (Bahmani et al. 2012) over all rows:
        ``init_rounds`` sampling passes, one weighting pass, ``init_lloyd_iter``
        Lloyd passes and one pass for the parameters of the final assignment;
        with ``n_init > 1`` all its initialisations share those passes.
        'k-means++' runs on the same sample as 'kmeans'.
    weights_init : array-like of shape (n_components,), default=None
        The user-provided initial weights.
    means_init : array-like of shape (n_components, n_features), default=None
        The user-provided initial means.
    precisions_init : array-like, default=None
        The user-provided initial precisions (inverse covariances), shaped as
        for scikit-learn's ``covariance_type``.
    random_state : int, RandomState instance or None, default=None
        Controls the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        If True, each ``fit`` starts from the solution of the previous one.
    verbose : int, default=0
        Enable verbose output (1: iterations, 2: also times and lower bounds).
    verbose_interval : int, default=10
        Number of iterations between two verbose messages.
    init_rounds : int, default=5
        Sampling rounds of 'k-means||' (one pass each).
    init_oversampling : float, default=2.0
        Oversampling factor of 'k-means||': each round samples about
        ``init_oversampling * n_components`` candidate centres.
    init_lloyd_iter : int, default=1
        Distributed Lloyd iterations (one pass each) that refine the 'k-means||'
        centres before the initial parameters are taken.
    checkpoint : str or None, default=None
        Path or URL of a Zarr group where the state of the fit is saved every
        ``checkpoint_every`` iterations (and once the initial parameters are drawn). Calling
        ``fit`` again with the same checkpoint on the same data resumes from the
        last complete state, with a result bitwise identical to an
        uninterrupted fit; a finished checkpoint gives the finished model.
    checkpoint_every : int, default=1
        Iterations between two checkpoints.
    checkpoint_overwrite : bool, default=False
        Start over, replacing a checkpoint that belongs to other data or other
        parameters (which is otherwise refused).
    checkpoint_verify : bool, default=True
        A fit records the SHA-256 of every chunk of the data in its checkpoint,
        in its first pass. A resumed fit compares them in its first pass and
        stops with ``CheckpointMismatchError`` if any chunk differs; a finished
        checkpoint is returned only after a pass that compares them. False
        skips the comparison (and that pass), with a warning.
    sample_dims : str or list of str, default=None
        For xarray input: the dimension(s) that index samples; several (e.g.
        time, lat, lon) are laid out as rows block by block, without
        rechunking. Default: every dimension but ``feature_dim``.
    feature_dim : str, default=None
        For an ``xarray.DataArray``: the dimension that indexes features
        (default: the second of two). For an ``xarray.Dataset`` the data
        variables are the features.
    missing : {'auto', 'raise', 'drop', 'marginalize'}, default='auto'
        What rows with a NaN feature are. ``'raise'``: an error (as in
        scikit-learn). ``'drop'``: left out of the fit (rows with infinity too);
        they get label -1 and NaN probabilities and densities.
        ``'marginalize'``: their missing features are integrated out by EM
        (Ghahramani & Jordan 1994): responsibilities and densities come from the
        observed features, and the statistics are the expected ones; see
        :meth:`impute`. Rows with every feature missing count for nothing (see
        ``n_empty_rows_``); infinity is still an error. ``'auto'``: 'drop' for
        xarray input (gridded data with masks), 'raise' otherwise.
    dropna : {'auto', True, False}, default='deprecated'
        Deprecated alias of ``missing`` (True: 'drop', False: 'raise').
    persist : {'auto', True, False}, default='auto'
        Keep Dask input in (cluster) memory during the fit. ``'auto'`` persists
        data that fits comfortably in memory; ``False`` re-reads it from its
        source at every iteration. NumPy input is always in memory. The result
        is the same either way.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
    precisions_ : ndarray
    precisions_cholesky_ : ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
    lower_bounds_ : list of float
        The lower bound of every iteration of the best initialisation.
    recoveries_ : list of dict
        The remedies of ``jitter_covar`` and ``reseed_collapsed`` taken in the EM
        iterations of the best initialisation: ``iteration``, ``component`` (None
        for tied), ``action`` ('jitter', 'reseed') and the jitter's ``amount``,
        its ``relative`` size and what it is ``relative_to`` ('own' variance
        scale, or the 'others'' for a component collapsed onto a point). (One
        taken at the initialisation is warned about.)
    n_features_in_ : int

    Examples
    --------
    >>> import dask.array as da
    >>> from daskgmm import GaussianMixture
    >>> X = da.random.default_rng(0).normal(size=(10_000, 2), chunks=(2_500, 2))
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gm.predict(X)  # a Dask array, computed lazily
    dask.array<...>
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions(set(INIT_METHODS))],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "init_rounds": [Interval(Integral, 1, None, closed="left")],
        "init_oversampling": [Interval(Real, 0.0, None, closed="neither")],
        "init_lloyd_iter": [Interval(Integral, 0, None, closed="left")],
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "checkpoint_overwrite": ["boolean"],
        "checkpoint_verify": ["boolean"],
        "accelerate": ["boolean"],
        "jitter_covar": ["boolean"],
        "reseed_collapsed": ["boolean"],
        "sample_dims": [str, list, tuple, None],
        "feature_dim": [str, None],
        "missing": [StrOptions({"auto", *MISSING})],
        "dropna": [StrOptions({"auto", "deprecated"}), "boolean"],
        "persist": [StrOptions({"auto"}), "boolean"],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
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
        dropna="deprecated",
        persist="auto",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
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
        self.dropna = dropna
        self.persist = persist

    # ------------------------------------------------------------------- fit

    def _fit(self, X, sample_weight=None) -> Rows:
        self._validate_params()
        X, sample_weight = split_dataset_weights(X, sample_weight)
        rows = self._rows(X, reset=True)
        weights = as_sample_weights(sample_weight, rows)
        if rows.n_samples < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {rows.n_samples}"
            )
        init = check_initial_parameters(
            self.weights_init,
            self.means_init,
            self.precisions_init,
            self.covariance_type,
            self.n_components,
            rows.n_features,
        )
        data = rows.array
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        saver = None
        if do_init and self.checkpoint is not None:  # checked before any read of the data
            saver = checkpoint_for(self.checkpoint, self.get_params(), data, weights,
                                   overwrite=self.checkpoint_overwrite,
                                   source=X if isinstance(X, (str, os.PathLike)) else None)
        row_weights = None if weights is None else weights.for_fit
        if not rows.lazy or should_persist(data, self.persist):
            data, row_weights = dask.persist(data, row_weights)
        best = fit_gaussian_mixture(
            FitData(data, row_weights, self._missing(rows, warn=True)),
            self.get_params(),
            given=init,
            n_init=n_init,
            random_state=check_random_state(self.random_state),
            warm=None if do_init else (self._params(), self.lower_bound_),
            saver=saver,
            hooks=verbose_hooks(self.verbose, self.verbose_interval, n_init),
        )
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_params_attributes(best.params, data.dtype)
        models.restore_fitted(self, models.run_attributes(best, data.dtype))
        return rows

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model parameters with the EM algorithm.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The data. Dask arrays stay on the workers; NumPy arrays are cut into
            row chunks. Also a Zarr array path or URL, or an xarray object.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample: a NumPy or Dask array (rechunked
            like the rows of X if it is not), a Zarr array path, an
            ``xarray.DataArray`` over the sample dimensions, or the name of a
            variable of a Dataset X (which is then not a feature). A sample of
            integer weight w counts as w copies of it: its responsibilities and
            its log-likelihood are multiplied by w, the lower bound is the
            weighted mean log-likelihood, and the initialisations draw in
            proportion to the weights. Constant weights give the model of no
            weights.

        Returns
        -------
        self : GaussianMixture
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model (with ``sample_weight``, as :meth:`fit`) and return the label
        of each sample under the final model.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
        """
        rows = self._fit(X, sample_weight)
        return rows.output(self._per_row(rows, "labels"), "labels")

    @classmethod
    def _from_stored(cls, params: GMMParams, est_params: dict, fitted: dict) -> "GaussianMixture":
        gm = cls(**models.estimator_params(est_params, cls._parameter_constraints))
        gm._set_params_attributes(params, np.dtype(fitted.get("dtype", "float64")))
        models.restore_fitted(gm, fitted)
        return gm


def load(path) -> GaussianMixture:
    """Load a model saved with :meth:`GaussianMixture.save` (or a finished checkpoint).

    Reads arrays and JSON attributes only; nothing in the file is executed.
    Raises :class:`~daskgmm.CheckpointError` for a missing, foreign or corrupted group.
    """
    return GaussianMixture._from_stored(*models.read_model(path))
