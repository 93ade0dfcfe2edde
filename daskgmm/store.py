"""What daskgmm's Zarr groups (checkpoints, :mod:`daskgmm.checkpoint`, and
models, :mod:`daskgmm.models`) share: arrays plus JSON attributes, never
pickles. Every array carries a SHA-256 of its bytes, so that a truncated or
altered file is detected when it is read; the attribute ``daskgmm`` names the
kind and format of a group; parameter arrays are checked for their shapes and
dtypes before they are read, and for values that no fit can have produced.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import zarr

from ._version import __version__
from .covariance import COVARIANCE
from .errors import CheckpointError
from .params import GMMParams

__all__ = [
    "FORMAT",
    "PARAM_ARRAYS",
    "check_recoveries",
    "check_values",
    "checksum",
    "dimensions",
    "expected_shapes",
    "jsonable",
    "open_node",
    "params_from",
    "read_array",
    "read_meta",
    "read_params",
    "write_array",
    "write_params",
]

FORMAT = 2  # 2: one state holds every initialisation (they run in lockstep)
PARAM_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")
RECOVERY_KEYS = {"iteration", "component", "action", "amount", "relative", "relative_to"}


def checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_array(group, name: str, value) -> str:
    a = np.ascontiguousarray(value)
    arr = group.create_array(name, shape=a.shape, dtype=a.dtype, chunks=a.shape or None, overwrite=True)
    if a.size:
        arr[...] = a
    return checksum(a)


def read_array(group, name: str, digest: str, where: str) -> np.ndarray:
    try:
        a = np.asarray(group[name][...])
    except Exception as exc:  # zarr raises many kinds on damaged files
        raise CheckpointError(f"{where}: array {name!r} cannot be read ({exc})") from None
    if checksum(a) != digest:
        raise CheckpointError(
            f"{where}: array {name!r} is corrupted (its checksum does not match the one recorded)"
        )
    return a


def open_node(path, mode: str):
    try:
        node = zarr.open(store=str(path), mode=mode)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        raise CheckpointError(f"no daskgmm checkpoint or model at {path!s}") from None
    except Exception as exc:
        raise CheckpointError(f"{path!s} cannot be read as Zarr: {exc}") from None
    if not isinstance(node, zarr.Group):
        raise CheckpointError(f"{path!s} is a Zarr array, not a daskgmm checkpoint or model")
    return node


def read_meta(group, path) -> dict:
    meta = group.attrs.get("daskgmm")
    if not isinstance(meta, dict) or "kind" not in meta or "format" not in meta:
        raise CheckpointError(f"{path!s} is a Zarr group, but not a daskgmm checkpoint or model")
    # Models are the same in both formats; checkpoint states changed in format 2.
    readable = (1, FORMAT) if meta["kind"] == "model" else (FORMAT,)
    if meta["format"] not in readable:
        raise CheckpointError(
            f"{path!s} is a daskgmm {meta['kind']} in format {meta['format']} (daskgmm "
            f"{meta.get('version')}), which this version ({__version__}) cannot resume; "
            "pass checkpoint_overwrite=True to start the fit over"
        )
    return meta


def write_params(group, params: GMMParams) -> dict:
    return {n: write_array(group, n, getattr(params, n)) for n in PARAM_ARRAYS}


def dimensions(est_params: dict, n_features, where: str) -> tuple[str, int, int]:
    """``(covariance_type, n_components, n_features)`` as recorded, checked."""
    cov_type = est_params.get("covariance_type") if isinstance(est_params, dict) else None
    k = est_params.get("n_components") if isinstance(est_params, dict) else None
    if cov_type not in COVARIANCE:
        raise CheckpointError(f"{where}: covariance_type {cov_type!r} is not one of {list(COVARIANCE)}")
    for name, value in (("n_components", k), ("n_features", n_features)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{where}: {name} {value!r} is not a positive integer")
    return cov_type, k, n_features


def expected_shapes(covariance_type: str, k: int, d: int, prefix: str = "") -> dict:
    shape = COVARIANCE[covariance_type].shape(k, d)
    return {prefix + "weights": (k,), prefix + "means": (k, d),
            prefix + "covariances": shape, prefix + "precisions_cholesky": shape}


def check_values(params: GMMParams, where: str) -> GMMParams:
    """Refuse parameters that no fit can have produced (a damaged or forged file)."""
    for name in PARAM_ARRAYS:
        if not np.isfinite(getattr(params, name)).all():
            raise CheckpointError(f"{where}: {name} holds NaN or infinite values")
    w = params.weights
    # (a fit stopped at its initialisation by 'k-means++' has weights 1/n, summing below 1)
    if (w < 0).any() or not 0.0 < w.sum() <= 1.0 + 1e-6:
        raise CheckpointError(
            f"{where}: weights are not on the simplex (min {w.min():g}, sum {w.sum():.6g})"
        )
    if (params.cov.cholesky_diagonal(params.precisions_cholesky) <= 0).any():
        raise CheckpointError(f"{where}: precisions_cholesky is not positive definite")
    return params


def read_params(group, digests: dict, covariance_type: str, k: int, d: int, where: str) -> GMMParams:
    """The parameter arrays, their shapes and dtypes checked before any is read."""
    for name, shape in expected_shapes(covariance_type, k, d).items():
        try:
            node = group[name]
            found, dtype = tuple(node.shape), np.dtype(node.dtype)
        except Exception:  # noqa: BLE001 - missing or not an array
            raise CheckpointError(f"{where}: array {name!r} is missing") from None
        if found != shape or dtype.kind != "f":
            raise CheckpointError(
                f"{where}: array {name!r} has shape {found} and dtype {dtype}, expected {shape} "
                "floats for the model's n_components and n_features"
            )
    values = {n: read_array(group, n, digests[n], where) for n in PARAM_ARRAYS}
    return check_values(params_from(values, covariance_type), where)


def params_from(arrays: dict, covariance_type: str, prefix: str = "") -> GMMParams:
    return GMMParams(
        covariance_type=covariance_type, **{n: arrays[prefix + n] for n in PARAM_ARRAYS}
    )


def check_recoveries(value, where: str) -> tuple:
    """Recorded recoveries (see :mod:`daskgmm.recovery`), checked: a list of flat
    records with the known keys and JSON scalar values."""
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and set(e) <= RECOVERY_KEYS
        and all(v is None or isinstance(v, (int, float, str)) for v in e.values())
        for e in value
    ):
        raise CheckpointError(f"{where}: the recorded recoveries are malformed")
    return tuple(dict(e) for e in value)


def jsonable(value):
    """A JSON form of an estimator parameter (arrays by shape and digest)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.random.RandomState):
        return "RandomState instance"
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return repr(value)
    return {"shape": list(a.shape), "sha256": checksum(a)}
