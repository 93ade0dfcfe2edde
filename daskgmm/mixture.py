"""What a fitted Gaussian mixture does, whatever fitted it: scikit-learn's
``BaseMixture`` part of :class:`daskgmm.GaussianMixture`.

The input taken as scikit-learn takes it (NumPy through its validation; Dask,
Zarr and xarray as rows), the per-row results (densities, probabilities,
labels, imputations) as lazy passes in the input's own kind, the scores and
information criteria, sampling, and saving. The estimator adds its parameters
and the fit.
"""

from __future__ import annotations

import os
import warnings

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import models
from .covariance import COVARIANCE
from .data import Rows, as_rows, check_same_features
from .params import GMMParams, information_criteria
from .passes import map_rows, split_scores
from .validation import missing_of_dropna
from .weights import as_sample_weights, split_dataset_weights

__all__ = ["BaseMixture"]


def _is_array_like_numpy(X) -> bool:
    """Input that scikit-learn's own validation handles (NumPy, lists, pandas)."""
    if isinstance(X, (da.Array, str, os.PathLike)):
        return False
    module = type(X).__module__.split(".")[0]
    return module != "xarray"


class BaseMixture(DensityMixin, BaseEstimator):
    """The methods of a fitted mixture (see :class:`daskgmm.GaussianMixture`), over the
    fitted attributes (``weights_``, ``means_``, ``covariances_``,
    ``precisions_cholesky_``) and the parameters ``covariance_type``,
    ``random_state``, ``sample_dims``, ``feature_dim``, ``missing`` and ``dropna``."""

    # ------------------------------------------------------------------ input

    def _rows(self, X, *, reset: bool, missing: str | None = None) -> Rows:
        if _is_array_like_numpy(X):
            missing = missing or self._missing_param()
            X = validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                ensure_min_samples=2 if reset else 1,
                reset=reset,
                ensure_all_finite={"drop": False, "marginalize": "allow-nan"}.get(missing, True),
            )
            return as_rows(X)
        rows = as_rows(X, sample_dims=self.sample_dims, feature_dim=self.feature_dim)
        if reset:
            self.n_features_in_ = rows.n_features
            if rows.feature_names is not None:
                self.feature_names_in_ = np.asarray(rows.feature_names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return rows
        check_same_features(
            rows, self.n_features_in_, getattr(self, "feature_names_in_", None), type(self).__name__
        )
        return rows

    def _missing_param(self, warn: bool = False) -> str:
        """``missing``, or the meaning of its deprecated alias ``dropna``."""
        if self.dropna == "deprecated":
            return self.missing
        if warn:
            warnings.warn("dropna is deprecated and will be removed: use missing='drop' "
                          "(dropna=True) or missing='raise' (dropna=False).", FutureWarning,
                          stacklevel=4)
        if self.missing != "auto":
            raise ValueError("Pass missing or its deprecated alias dropna, not both.")
        return missing_of_dropna(self.dropna)

    def _missing(self, rows: Rows, warn: bool = False) -> str:
        """What rows with NaN are for this input (see ``missing``)."""
        missing = self._missing_param(warn)
        if missing != "auto":
            return missing
        return "drop" if rows.missing_allowed else "raise"

    def _params(self) -> GMMParams:
        """The fitted attributes in float64, as the kernels and the EM take them."""
        return GMMParams(
            self.weights_,
            self.means_,
            self.covariances_,
            self.precisions_cholesky_,
            self.covariance_type,
        ).astype(np.float64)

    def _set_params_attributes(self, params: GMMParams, dtype) -> None:
        """Set the fitted attributes from float64 ``params``, in ``dtype`` (the data's,
        as scikit-learn does: float32 data give a float32 model). ``precisions_``
        is computed in float64 from ``precisions_cholesky_`` as stored, so that a
        saved and loaded model has the same attributes bit for bit."""
        params = params.astype(dtype)
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        pc = params.precisions_cholesky.astype(np.float64)
        self.precisions_ = COVARIANCE[self.covariance_type].precisions(pc).astype(dtype)

    # ---------------------------------------------------------------- predict

    def _per_row(self, rows: Rows, kind: str, float64: bool = False) -> da.Array:
        """A lazy per-row result over the rows (see :func:`daskgmm.passes.map_rows`):
        in the dtype that data and model promote to, as scikit-learn's, or float64."""
        dtype = np.float64 if float64 else np.result_type(rows.array.dtype, self.means_.dtype)
        return map_rows(rows.array, kind, self._params(), dtype, self._missing(rows))

    def _predict(self, X, kind: str):
        check_is_fitted(self)
        rows = self._rows(X, reset=False)
        return rows.output(self._per_row(rows, kind), kind)

    def score_samples(self, X):
        """Log-likelihood of each sample under the model (NaN for rows with NaN).

        Returns
        -------
        log_prob : ndarray, dask.array.Array or xarray.DataArray of shape (n_samples,)
        """
        return self._predict(X, "score_samples")

    def predict(self, X):
        """Label of each sample: the component of highest posterior probability.

        Rows with a NaN feature get label -1. Returns NumPy for NumPy input, a
        Dask array for Dask input, an xarray.DataArray over the sample
        dimensions (and coordinates) for xarray input.
        """
        return self._predict(X, "labels")

    def predict_proba(self, X):
        """Posterior probability of each component for each sample, shape (n, K)."""
        return self._predict(X, "proba")

    def impute(self, X):
        """X with each missing value (NaN) replaced by its conditional expectation
        under the mixture, ``sum_k r_k E[x_m | x_o, k]`` with ``r_k`` the row's
        responsibilities given its observed features ``x_o``.

        Observed values are returned as they are; a row with no observed feature
        gets the mixture's mean. Lazy for Dask and Dask-backed xarray input;
        xarray input comes back in its own layout (a Dataset as a Dataset).

        Returns
        -------
        X_imputed : ndarray, dask.array.Array or xarray object, the shape of X
        """
        check_is_fitted(self)
        rows = self._rows(X, reset=False, missing="marginalize")
        out = map_rows(rows.array, "impute", self._params(), rows.array.dtype)
        return rows.output(out, "impute")

    def _score_and_count(self, X, sample_weight=None) -> tuple[float, float]:
        """Mean log-likelihood over the rows without NaN, and their number, weighted
        by ``sample_weight`` if given (one pass)."""
        check_is_fitted(self)
        X, sample_weight = split_dataset_weights(X, sample_weight)
        if (isinstance(X, np.ndarray) and sample_weight is None and len(X)
                and np.issubdtype(X.dtype, np.number) and np.isfinite(X).all()):
            # in memory, without weights or NaN, scikit-learn's definition: the mean
            # of score_samples in its dtype, so that score(X) equals
            # score_samples(X).mean() (float32 data: the float32 mean, which differs
            # from the float64 one by about one unit in the last place)
            return float(self.score_samples(X).mean()), float(len(X))
        rows = self._rows(X, reset=False)
        weights = as_sample_weights(sample_weight, rows)
        ((total,), (count,)) = split_scores(rows.array, [self._params()],
                                            None if weights is None else weights.array,
                                            self._missing(rows))[0]
        if count == 0:
            raise ValueError(
                "X has no row without NaN or infinity (or of non-zero weight) to score."
            )
        return float(total) / float(count), float(count)

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood of the samples (without NaN) under the model, weighted
        by ``sample_weight`` if given."""
        return self._score_and_count(X, sample_weight)[0]

    def _n_parameters(self) -> int:
        cov = COVARIANCE[self.covariance_type]
        return cov.n_parameters(self.n_components, self.means_.shape[1])

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion of the model on X (lower is better).

        With ``sample_weight``, the number of samples is the sum of the weights.
        """
        return information_criteria(*self._score_and_count(X, sample_weight),
                                    self._n_parameters())[0]

    def aic(self, X, sample_weight=None):
        """Akaike information criterion of the model on X (lower is better).

        With ``sample_weight``, the log-likelihood is the weighted sum.
        """
        return information_criteria(*self._score_and_count(X, sample_weight),
                                    self._n_parameters())[1]

    # ---------------------------------------------------------------- storage

    def save(self, path, overwrite: bool = False) -> None:
        """Write the fitted model to a Zarr group at ``path`` (arrays + JSON, no pickle).

        ``path`` must be new or an empty folder; a daskgmm model there is replaced
        with ``overwrite=True`` (written beside it, switched in, and only then the
        old one removed); anything else there is refused (:class:`UnsafePathError`).
        """
        check_is_fitted(self)
        models.save_model(path, self._params(), self.get_params(), models.fitted_attributes(self),
                          overwrite=overwrite)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture (as scikit-learn: uses ``random_state``).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The component of each sample.
        """
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at "
                "least one sample."
            )
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        parts = COVARIANCE[self.covariance_type].sample(rng, self.means_, self.covariances_, counts)
        y = np.concatenate([np.full(int(s), k, dtype=np.int64) for k, s in enumerate(counts)])
        return np.vstack(parts), y

