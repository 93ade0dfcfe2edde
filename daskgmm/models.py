"""Fitted models as Zarr groups (see :mod:`daskgmm.store`): saved where that is
safe (:func:`save_model`), read back (a finished checkpoint reads as the model
it produced) and restored onto an estimator, and summarised with checkpoints
(:func:`inspect`)."""

from __future__ import annotations

import math
import os

import numpy as np
import zarr

from ._version import __version__
from .checkpoint import Checkpoint
from .errors import CheckpointError
from .params import EMResult, GMMParams
from .safety import check_output, replace_atomically
from .store import (
    FORMAT,
    PARAM_ARRAYS,
    check_recoveries,
    dimensions,
    jsonable,
    open_node,
    read_meta,
    read_params,
    write_params,
)
from .validation import missing_of_dropna

__all__ = [
    "estimator_params",
    "fitted_attributes",
    "run_attributes",
    "inspect",
    "read_model",
    "restore_fitted",
    "save_model",
    "write_model",
]


def fitted_attributes(estimator) -> dict:
    """The fitted attributes of ``estimator`` to store with its parameters (JSON)."""
    fitted = {
        "n_features_in_": int(estimator.n_features_in_),
        "converged_": bool(estimator.converged_),
        "n_iter_": int(estimator.n_iter_),
        "lower_bounds_": [float(b) for b in estimator.lower_bounds_],
        "recoveries_": [dict(e) for e in getattr(estimator, "recoveries_", [])],
        "dtype": str(estimator.means_.dtype),
    }
    if hasattr(estimator, "feature_names_in_"):  # checked again when the model is used
        fitted["feature_names_in_"] = [str(n) for n in estimator.feature_names_in_]
    return fitted


def run_attributes(run: EMResult, dtype) -> dict:
    """The fitted attributes of the model that the EM ``run`` gives, on data of
    ``dtype``: a finished checkpoint's best run, or a search's."""
    return {
        "converged_": run.converged,
        "n_iter_": run.n_iter,
        "lower_bounds_": list(run.lower_bounds),
        "recoveries_": [dict(e) for e in run.recoveries],
        "dtype": str(dtype),
    }


def save_model(path, params: GMMParams, estimator_params: dict, fitted: dict,
               overwrite: bool = False) -> None:
    """Write a fitted model to ``path``, which must be new or an empty folder; a
    daskgmm model there is replaced with ``overwrite`` (written beside it,
    switched in, and only then the old one removed); anything else there is
    refused (:class:`~daskgmm.UnsafePathError`)."""
    found = check_output(path, parameter="save path", replaceable=("model",),
                         overwrite=overwrite, how="pass overwrite=True")
    # locally a new sibling path, switched in; at a URL the model itself, replaced only
    # if it is one (zarr's "w" would delete whatever else lies under the path)
    replace_atomically(path, lambda where: write_model(
        where, params, estimator_params, fitted,
        replace=found == "model" and os.fspath(where) == os.fspath(path),
    ))


def estimator_params(stored: dict, names) -> dict:
    """The estimator parameters among ``names`` to rebuild a stored model with:
    those given as plain values (not a random state, not a dict), the ``dropna``
    of a model saved before ``missing`` replaced it as its ``missing``, and no
    checkpoint (a model from elsewhere must not name a path that a later
    fit would write to)."""
    simple = {
        k: v for k, v in stored.items()
        if k in names and not isinstance(v, dict) and v != "RandomState instance"
    }
    if "missing" not in simple and simple.get("dropna", "deprecated") != "deprecated":
        simple["missing"] = missing_of_dropna(simple.pop("dropna"))
    simple.update(checkpoint=None, checkpoint_overwrite=False)
    return simple


def restore_fitted(estimator, fitted: dict) -> None:
    """Set the fitted attributes other than the parameter arrays on ``estimator``
    (whose parameter arrays are set) from ``fitted``: stored (see
    :func:`read_model`), or of the run a fit keeps (:func:`run_attributes`)."""
    estimator.n_features_in_ = int(estimator.means_.shape[1])
    if fitted.get("feature_names_in_") is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    estimator.converged_ = bool(fitted.get("converged_", False))
    estimator.n_iter_ = int(fitted.get("n_iter_", 0))
    estimator.lower_bounds_ = list(fitted.get("lower_bounds_", []))
    estimator.lower_bound_ = estimator.lower_bounds_[-1] if estimator.lower_bounds_ else -math.inf
    estimator.recoveries_ = list(fitted.get("recoveries_", []))


def write_model(path, params: GMMParams, estimator_params: dict, fitted: dict,
                replace: bool = False) -> None:
    """Write a fitted model to a new Zarr group at ``path``; with ``replace``, over the
    daskgmm model there (the caller has checked that it is one)."""
    root = zarr.open_group(store=path, mode="w" if replace else "w-")
    digests = write_params(root, params)
    root.attrs["daskgmm"] = {
        "format": FORMAT,
        "kind": "model",
        "version": __version__,
        "params": {k: jsonable(v) for k, v in sorted(estimator_params.items())},
        "fitted": fitted,
        "digests": digests,
    }


def read_model(path) -> tuple[GMMParams, dict, dict]:
    """``(params, estimator_params, fitted_attributes)`` of the model at ``path``.

    A finished checkpoint is read as the model it produced.
    """
    root = open_node(path, "r")
    meta = read_meta(root, path)
    if meta["kind"] == "checkpoint" and "search" in meta.get("identity", {}):
        raise CheckpointError(
            f"{path!s} is the checkpoint of a model search, not of one model: fit the "
            "GaussianMixtureSearch again with it to get its best model"
        )
    if meta["kind"] == "checkpoint":
        state = Checkpoint(path, identity=meta["identity"]).load()
        if state is None or state.status != "done":
            raise CheckpointError(f"the checkpoint at {path!s} is of a fit that has not finished")
        best = state.runs[state.best]
        fitted = run_attributes(best, meta["identity"]["data"]["dtype"])
        return best.params, meta["identity"]["params"], fitted
    if meta["kind"] != "model":
        raise CheckpointError(f"{path!s} holds an unknown daskgmm object {meta['kind']!r}")
    fitted = meta.get("fitted")
    if not isinstance(fitted, dict) or not isinstance(meta.get("digests"), dict):
        raise CheckpointError(f"{path!s}: the model's attributes are incomplete")
    if fitted.get("dtype", "float64") not in ("float32", "float64"):
        raise CheckpointError(f"{path!s}: dtype {fitted.get('dtype')!r} is not float32 or float64")
    fitted["recoveries_"] = list(check_recoveries(fitted.get("recoveries_", []), str(path)))
    cov_type, k, d = dimensions(meta.get("params"), fitted.get("n_features_in_"), str(path))
    names = fitted.get("feature_names_in_")
    if names is not None and not (isinstance(names, list) and len(names) == d
                                  and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path!s}: feature_names_in_ must be a list of {d} strings "
                              f"(one per feature), got {str(names)[:200]}")
    params = read_params(root, meta["digests"], cov_type, k, d, str(path))
    return params, meta["params"], fitted


def inspect(path) -> dict:
    """A summary of a checkpoint or model: kind, status, iterations, lower bounds, shapes,
    the recovered components (``recoveries``).

    For a checkpoint also its data, whether the digests of its chunks are recorded
    (``chunk_digests``: a resume then verifies them) and, for every initialisation drawn so far,
    its iterations, last lower bound and convergence (``initialisations``);
    ``n_iter`` is the most iterations of any, and once the fit is done ``best``
    names the initialisation kept.
    """
    root = open_node(path, "r")
    meta = read_meta(root, path)
    out = {"path": str(path), "kind": meta["kind"], "version": meta.get("version")}
    if meta["kind"] == "model":
        params, est, fitted = read_model(path)
        out.update(status="fitted", n_iter=fitted.get("n_iter_"), lower_bounds=fitted.get("lower_bounds_"),
                   recoveries=fitted.get("recoveries_", []))
    else:
        est = meta["identity"]["params"]
        out["data"] = meta["identity"]["data"]
        state = Checkpoint(path, identity=meta["identity"]).load()
        runs = state.runs if state is not None else []
        out.update(
            status="empty" if state is None else state.status,
            initialisations=[
                {
                    "n_iter": r.n_iter,
                    "lower_bound": r.lower_bounds[-1] if r.lower_bounds else None,
                    "converged": r.converged,
                }
                for r in runs
            ],
            n_iter=max((r.n_iter for r in runs), default=0),
        )
        out["chunk_digests"] = state is not None and state.chunk_digests is not None
        params = None
        if state is not None and state.status == "done":
            best = runs[state.best]
            params = best.params
            out.update(n_iter=best.n_iter, lower_bounds=best.lower_bounds, best=state.best,
                       recoveries=[dict(e) for e in best.recoveries])
        elif runs:
            params = runs[-1].params
            if len(runs) == 1:
                out["lower_bounds"] = runs[0].lower_bounds
    out["covariance_type"] = est.get("covariance_type")
    out["n_components"] = est.get("n_components")
    search = meta.get("identity", {}).get("search")
    if search is not None:  # a search: every run is one initialisation of one model
        out["kind"] = "search checkpoint"
        n_init = search["n_init"]
        out["covariance_type"] = list(dict.fromkeys(t for _, t in search["models"]))
        out["n_components"] = sorted({k for k, _ in search["models"]})
        for j, r in enumerate(out.get("initialisations", [])):
            k, t = search["models"][j // n_init]
            r.update(n_components=k, covariance_type=t, init=j % n_init)
    if params is not None:
        out["shapes"] = {n: list(getattr(params, n).shape) for n in PARAM_ARRAYS}
    return out
