"""Checks of user-supplied initial parameters, with errors that name the parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["check_initial_parameters"]

_PRECISION_SHAPES = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
    "spherical": lambda k, d: (k,),
}


def _as_float_array(value, name, shape):
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers of shape {shape}: {exc}") from None
    if arr.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"The parameter '{name}' contains NaN or infinity.")
    return arr


def _check_weights(weights, k):
    w = _as_float_array(weights, "weights_init", (k,))
    if (w < 0).any() or (w > 1).any():
        raise ValueError(
            "The parameter 'weights_init' should be in the range [0, 1], but got "
            f"min value {w.min():.5f}, max value {w.max():.5f}"
        )
    if not np.allclose(w.sum(), 1.0, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"The parameter 'weights_init' should be normalized, but got sum(weights) = {w.sum():.5f}"
        )
    return w


def _check_precisions(precisions, covariance_type, k, d):
    shape = _PRECISION_SHAPES[covariance_type](k, d)
    p = _as_float_array(precisions, "precisions_init", shape)
    if covariance_type in ("diag", "spherical"):
        if (p <= 0).any():
            raise ValueError(f"'{covariance_type} precision' should be positive")
        return p
    for i, m in enumerate(p[None] if covariance_type == "tied" else p):
        which = "" if covariance_type == "tied" else f" (component {i})"
        if not np.allclose(m, m.T):
            raise ValueError(f"'{covariance_type} precision'{which} should be symmetric")
        if np.linalg.eigvalsh(m).min() <= 0:
            raise ValueError(f"'{covariance_type} precision'{which} should be positive-definite")
    return p


def check_initial_parameters(
    weights_init, means_init, precisions_init, covariance_type, n_components, n_features
):
    """Validated float64 copies of ``(weights_init, means_init, precisions_init)``.

    Each may be None. Errors name the parameter and the expected shape or property.
    """
    w = None if weights_init is None else _check_weights(weights_init, n_components)
    m = (
        None
        if means_init is None
        else _as_float_array(means_init, "means_init", (n_components, n_features))
    )
    p = (
        None
        if precisions_init is None
        else _check_precisions(precisions_init, covariance_type, n_components, n_features)
    )
    return w, m, p
