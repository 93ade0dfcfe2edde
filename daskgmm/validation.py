"""Checks of user-supplied initial parameters, with scikit-learn's errors (and ours after)."""

from __future__ import annotations

import numpy as np

from .covariance import COVARIANCE

__all__ = ["check_initial_parameters", "missing_of_dropna"]


def missing_of_dropna(dropna) -> str:
    """The ``missing`` that the deprecated ``dropna`` stands for."""
    return "auto" if dropna == "auto" else ("drop" if dropna else "raise")


def _as_float_array(value, name, parameter, shape):
    """``value`` as float64 of ``shape``; errors in scikit-learn's words for its
    ``name`` of the array, then the estimator ``parameter`` that gave it."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"The parameter '{name}' should be an array of numbers of shape {shape}, "
            f"but {parameter} is not: {exc}"
        ) from None
    if arr.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape} "
            f"in {parameter}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"The parameter '{name}' contains NaN or infinity in {parameter}")
    return arr


def _check_weights(weights, k):
    w = _as_float_array(weights, "weights", "weights_init", (k,))
    if (w < 0).any() or (w > 1).any():
        # scikit-learn's message, which its tests match, swaps the two values
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {w.min():.5f}, min value {w.max():.5f}: weights_init has values "
            f"from {w.min():.5f} to {w.max():.5f}"
        )
    if not np.allclose(w.sum(), 1.0, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f} "
            "in weights_init"
        )
    return w


def _check_precisions(precisions, covariance_type, k, d):
    cov = COVARIANCE[covariance_type]
    p = _as_float_array(precisions, f"{covariance_type} precision", "precisions_init", cov.shape(k, d))
    cov.check_precisions(p)
    return p


def check_initial_parameters(
    weights_init, means_init, precisions_init, covariance_type, n_components, n_features
):
    """Validated float64 copies of ``(weights_init, means_init, precisions_init)``.

    Each may be None. Errors begin with scikit-learn's wording (its own tests
    match it) and name the expected shape or property.
    """
    w = None if weights_init is None else _check_weights(weights_init, n_components)
    m = (
        None
        if means_init is None
        else _as_float_array(means_init, "means", "means_init", (n_components, n_features))
    )
    p = (
        None
        if precisions_init is None
        else _check_precisions(precisions_init, covariance_type, n_components, n_features)
    )
    return w, m, p
