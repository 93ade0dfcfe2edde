"""Checkpoints and models as Zarr groups: arrays plus JSON attributes, never pickles.

A checkpoint is a group whose root attribute ``daskgmm.current`` names the last
complete state, a subgroup ``state-NNNNNNNN``. A new state is written completely
into a new subgroup first; then the root attributes are rewritten to point at
it, one small write (zarr writes each key whole: a temporary file renamed into
place locally, a single PUT on object stores); only then is the previous state
deleted (one write later, so that concurrent readers such as ``inspect`` never
lose the state they are reading). A process killed at any instant leaves a
checkpoint that opens to the last complete state. Every array carries a SHA-256
of its bytes, so a truncated or altered file is detected when it is read.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import zarr

from ._version import __version__
from .acceleration import MAX_STEP, STAGES, Acceleration
from .covariance import COVARIANCE
from .errors import CheckpointError, CheckpointLockedError, CheckpointMismatchError
from .params import EMResult, GMMParams
from .passes import DIGEST_SIZE

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointMismatchError",
    "FitState",
    "inspect",
    "read_model",
    "write_model",
]

FORMAT = 2  # 2: one state holds every initialisation (they run in lockstep)
_PARAM_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _write_array(group, name: str, value) -> str:
    a = np.ascontiguousarray(value)
    arr = group.create_array(name, shape=a.shape, dtype=a.dtype, chunks=a.shape or None, overwrite=True)
    if a.size:
        arr[...] = a
    return _digest(a)


def _read_array(group, name: str, digest: str, where: str) -> np.ndarray:
    try:
        a = np.asarray(group[name][...])
    except Exception as exc:  # zarr raises many kinds on damaged files
        raise CheckpointError(f"{where}: array {name!r} cannot be read ({exc})") from None
    if _digest(a) != digest:
        raise CheckpointError(
            f"{where}: array {name!r} is corrupted (its checksum does not match the one recorded)"
        )
    return a


def _open(path, mode: str):
    try:
        node = zarr.open(store=str(path), mode=mode)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        raise CheckpointError(f"no daskgmm checkpoint or model at {path!s}") from None
    except Exception as exc:
        raise CheckpointError(f"{path!s} cannot be read as Zarr: {exc}") from None
    if not isinstance(node, zarr.Group):
        raise CheckpointError(f"{path!s} is a Zarr array, not a daskgmm checkpoint or model")
    return node


def _meta(group, path) -> dict:
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


# ---------------------------------------------------------------------------
# Parameters <-> group
# ---------------------------------------------------------------------------


def _write_params(group, params: GMMParams) -> dict:
    return {n: _write_array(group, n, getattr(params, n)) for n in _PARAM_ARRAYS}


def _dimensions(est_params: dict, n_features, where: str) -> tuple[str, int, int]:
    """``(covariance_type, n_components, n_features)`` as recorded, checked."""
    cov_type = est_params.get("covariance_type") if isinstance(est_params, dict) else None
    k = est_params.get("n_components") if isinstance(est_params, dict) else None
    if cov_type not in COVARIANCE:
        raise CheckpointError(f"{where}: covariance_type {cov_type!r} is not one of {list(COVARIANCE)}")
    for name, value in (("n_components", k), ("n_features", n_features)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{where}: {name} {value!r} is not a positive integer")
    return cov_type, k, n_features


def _expected_shapes(covariance_type: str, k: int, d: int, prefix: str = "") -> dict:
    shape = COVARIANCE[covariance_type].shape(k, d)
    return {prefix + "weights": (k,), prefix + "means": (k, d),
            prefix + "covariances": shape, prefix + "precisions_cholesky": shape}


def _check_values(params: GMMParams, where: str) -> GMMParams:
    """Refuse parameters that no fit can have produced (a damaged or forged file)."""
    for name in _PARAM_ARRAYS:
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


def _read_params(group, digests: dict, covariance_type: str, k: int, d: int, where: str) -> GMMParams:
    """The parameter arrays, their shapes and dtypes checked before any is read."""
    for name, shape in _expected_shapes(covariance_type, k, d).items():
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
    values = {n: _read_array(group, n, digests[n], where) for n in _PARAM_ARRAYS}
    return _check_values(_params_from(values, covariance_type), where)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


@dataclass
class FitState:
    """Everything needed to continue a fit exactly where it was.

    ``runs`` holds where each initialisation (of each model of a search) drawn
    so far stands; ``rng_state``
    is the random state after the last draw. A finished fit (``status ==
    "done"``) names its ``best`` run. ``chunk_digests``: the SHA-256 of every
    row chunk of the data, (n_chunks, 32) uint8, once a pass has read them
    (:class:`daskgmm.passes.ContentCheck`).
    """

    runs: list[EMResult]
    rng_state: tuple
    status: str = "running"  # or "done"
    best: int | None = None
    chunk_digests: np.ndarray | None = None
    #: JSON-able values of the caller's own (a search's scores of its models), or None
    extra: dict | None = None


class Checkpoint:
    """The checkpoint of one fit, at a path or URL that Zarr can open."""

    def __init__(self, path, *, identity: dict, overwrite: bool = False):
        self.path = path
        self.identity = identity  # estimator parameters and data fingerprint
        self.overwrite = overwrite
        self._seq = 0

    def _meta(self, **changes) -> dict:
        return {
            "format": FORMAT,
            "kind": "checkpoint",
            "version": __version__,
            "identity": self.identity,
            "current": None,
            "status": "running",
        } | changes

    def _root(self):
        """The checkpoint's root group, created with its attributes in a single write.

        (Creating the group first and adding the attributes after would leave, if
        the process were killed in between, a group that is not recognisable
        as a checkpoint.)
        """
        replacing = self.overwrite  # a daskgmm checkpoint or model there (checked before)
        if not replacing:
            try:
                return zarr.open_group(store=self.path, mode="r+")
            except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeNotFoundError):
                pass
        self.overwrite = False
        return zarr.create_group(
            store=self.path, overwrite=replacing, attributes={"daskgmm": self._meta()}
        )

    def load(self) -> FitState | None:
        """The last complete state, None for a new checkpoint; refuses a foreign one."""
        if self.overwrite:
            return None
        try:
            root = zarr.open_group(store=self.path, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            return None
        meta = _meta(root, self.path)
        if meta["kind"] != "checkpoint":
            raise CheckpointError(f"{self.path!s} holds a daskgmm {meta['kind']}, not a checkpoint")
        diffs = _differences(meta.get("identity", {}), self.identity)
        if diffs:
            raise CheckpointMismatchError(
                f"the checkpoint at {self.path!s} belongs to a different fit: "
                + "; ".join(diffs)
                + ". Pass checkpoint_overwrite=True to start over."
            )
        current = meta.get("current")
        if current is None:
            return None
        where = f"{self.path!s}/{current}"
        how = " (pass checkpoint_overwrite=True to start the fit over)"
        try:
            self._seq = int(str(current).split("-")[1])
            n_chunks = len(self.identity["data"]["row_chunks"])
            return _read_state(root[current], where, _run_dims(self.identity, str(self.path)),
                               n_chunks=n_chunks)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}{how}") from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # a damaged structure: a missing state, runs or layout, a best out of range
            raise CheckpointError(
                f"{where}: the checkpoint is damaged ({type(exc).__name__}: {exc}){how}"
            ) from None

    def save(self, state: FitState) -> None:
        root = self._root()
        previous = (root.attrs.get("daskgmm") or {}).get("current")
        self._seq += 1
        name = f"state-{self._seq:08d}"
        _write_state(root, name, state)
        # the switch: one write of the root metadata
        root.attrs["daskgmm"] = self._meta(current=name, status=state.status)
        # Older states are superseded. The one just replaced stays one more round,
        # so that a reader that has just read the old pointer still finds it.
        for key in list(root.group_keys()):
            if key.startswith("state-") and key not in (name, previous):
                del root[key]


def _pack(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Concatenate arrays into one float64 vector; the layout says where each sits."""
    layout, parts, offset = {}, [], 0
    for name, value in arrays.items():
        a = np.asarray(value, dtype=np.float64)
        layout[name] = [offset, list(a.shape)]
        parts.append(a.ravel())
        offset += a.size
    return (np.concatenate(parts) if parts else np.empty(0)), layout


def _unpack(vec: np.ndarray, layout: dict) -> dict[str, np.ndarray]:
    return {
        name: vec[offset : offset + math.prod(shape)].reshape(shape)
        for name, (offset, shape) in layout.items()
    }


def _params_from(arrays: dict, covariance_type: str, prefix: str = "") -> GMMParams:
    return GMMParams(
        covariance_type=covariance_type, **{n: arrays[prefix + n] for n in _PARAM_ARRAYS}
    )


def _write_state(root, name: str, state: FitState) -> None:
    """A state as a group with one float64 array (the parameters of every run and
    the random state), the chunk digests if known, and JSON attributes written
    with the group: three or four small writes, whatever the number of runs."""
    arrays, runs = {}, []
    for j, run in enumerate(state.runs):
        arrays.update({f"run{j}_{n}": getattr(run.params, n) for n in _PARAM_ARRAYS})
        acc = run.acceleration
        if acc is not None:
            for role in ("plain", "base"):
                arrays.update({f"run{j}_{role}_{n}": getattr(getattr(acc, role), n)
                               for n in _PARAM_ARRAYS})
        runs.append({
            "lower_bounds": list(map(float, run.lower_bounds)),
            "n_iter": int(run.n_iter),
            "converged": bool(run.converged),
            "recoveries": [dict(e) for e in run.recoveries],
            "acceleration": None if acc is None else {"bound": float(acc.bound),
                                                      "stage": acc.stage,
                                                      "step_max": float(acc.step_max)},
        })
    bit_generator, keys, pos, has_gauss, cached = state.rng_state
    arrays["rng_keys"] = np.asarray(keys, dtype=np.uint32)  # exact in float64
    vec, layout = _pack(arrays)
    attributes = {
        "runs": runs,
        "best": state.best,
        "rng": [bit_generator, int(pos), int(has_gauss), float(cached)],
        "status": state.status,
        "layout": layout,
        "digest": _digest(vec),
    }
    if state.chunk_digests is not None:
        attributes["chunk_digests"] = _digest(state.chunk_digests)
    if state.extra is not None:
        attributes["extra"] = state.extra
    group = root.create_group(name, overwrite=True, attributes={"daskgmm_state": attributes})
    _write_array(group, "state", vec)
    if state.chunk_digests is not None:
        _write_array(group, "chunk_digests", state.chunk_digests)


def _run_dims(identity: dict, where: str):
    """``dims(j)``: ``(covariance_type, n_components, n_features)`` of run ``j`` of the
    fit that ``identity`` describes, checked: every run of a fit has the
    estimator's; a search's are those of its grid (``n_init`` runs per model)."""
    n_features = identity["data"]["shape"][1]
    search = identity.get("search")
    if search is None:
        dims = _dimensions(identity["params"], n_features, where)
        return lambda j: dims
    models, n_init = search.get("models"), search.get("n_init")
    if not isinstance(models, list) or not isinstance(n_init, int) or n_init < 1:
        raise CheckpointError(f"{where}: the search's grid is malformed")
    grid = [_dimensions({"n_components": m[0], "covariance_type": m[1]}, n_features, where)
            if isinstance(m, list) and len(m) == 2 else None for m in models]
    if None in grid:
        raise CheckpointError(f"{where}: the search's grid is malformed")

    def dims(j: int):
        if j >= len(grid) * n_init:
            raise CheckpointError(f"{where}: the state holds more runs than the search's "
                                  f"{len(grid)} models x {n_init} initialisations")
        return grid[j // n_init]

    return dims


def _read_state(group, where: str, run_dims, n_chunks: int) -> FitState:
    """A state, its layout checked against the fit's shapes (``run_dims(j)`` for run
    ``j``, see :func:`_run_dims`, and ``n_chunks`` row chunks) before anything is
    read, so that a small file cannot declare a huge array."""
    s = group.attrs.get("daskgmm_state")
    if not isinstance(s, dict):
        raise CheckpointError(f"{where}: state attributes are missing")
    runs_meta, layout = s["runs"], s["layout"]
    expected = {"rng_keys": (624,)}
    for j, r in enumerate(runs_meta):
        expected.update(_expected_shapes(*run_dims(j), prefix=f"run{j}_"))
        if r.get("acceleration") is not None:
            for role in ("plain", "base"):
                expected.update(_expected_shapes(*run_dims(j), prefix=f"run{j}_{role}_"))
    declared = {name: tuple(shape) for name, (_, shape) in layout.items()}
    if declared != expected:
        raise CheckpointError(f"{where}: the state's layout does not match the fit's shapes")
    size = sum(math.prod(shape) for shape in expected.values())
    if tuple(group["state"].shape) != (size,):
        raise CheckpointError(f"{where}: the state array has shape {group['state'].shape}, "
                              f"expected ({size},)")
    arrays = _unpack(_read_array(group, "state", s["digest"], where), layout)
    runs = [
        EMResult(
            _check_values(_params_from(arrays, run_dims(j)[0], prefix=f"run{j}_"), where),
            [float(b) for b in r["lower_bounds"]],
            int(r["n_iter"]),
            bool(r["converged"]),
            check_recoveries(r.get("recoveries", []), where),
            _acceleration(r.get("acceleration"), arrays, run_dims(j)[0], j, where),
        )
        for j, r in enumerate(runs_meta)
    ]
    extra = s.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise CheckpointError(f"{where}: the state's extra values are malformed")
    best = s["best"]
    if best is not None and not 0 <= int(best) < len(runs):
        raise CheckpointError(f"{where}: best run {best!r} is out of range ({len(runs)} runs)")
    name, pos, has_gauss, cached = s["rng"]
    keys = arrays["rng_keys"].astype(np.uint32)
    chunk_digests = None
    if "chunk_digests" in s:
        node = group["chunk_digests"]
        if tuple(node.shape) != (n_chunks, DIGEST_SIZE) or np.dtype(node.dtype) != np.uint8:
            raise CheckpointError(
                f"{where}: chunk_digests has shape {tuple(node.shape)} and dtype {node.dtype}, "
                f"expected ({n_chunks}, {DIGEST_SIZE}) uint8 for the data's {n_chunks} row chunks"
            )
        chunk_digests = _read_array(group, "chunk_digests", s["chunk_digests"], where)
    return FitState(
        runs=runs,
        rng_state=(name, keys, pos, has_gauss, cached),
        status=s["status"],
        best=best,
        chunk_digests=chunk_digests,
        extra=extra,
    )


def _acceleration(meta, arrays, covariance_type: str, j: int, where: str):
    """An accelerated run's state, from its recorded arrays and attributes."""
    if meta is None:
        return None
    bound, step_max = (meta.get(key) if isinstance(meta, dict) else None
                       for key in ("bound", "step_max"))
    if not (isinstance(meta, dict) and meta.get("stage") in STAGES
            and isinstance(bound, (int, float)) and not math.isnan(bound)
            and isinstance(step_max, (int, float)) and 1.0 <= step_max <= MAX_STEP):
        raise CheckpointError(f"{where}: the acceleration state of run {j} is malformed "
                              f"(expected a bound, a stage in {STAGES} and a step_max in "
                              f"[1, {MAX_STEP:g}])")
    plain, base = (_check_values(_params_from(arrays, covariance_type, prefix=f"run{j}_{role}_"),
                                 where) for role in ("plain", "base"))
    return Acceleration(plain, float(bound), meta["stage"], base, float(step_max))


_RECOVERY_KEYS = {"iteration", "component", "action", "amount", "relative", "relative_to"}


def check_recoveries(value, where: str) -> tuple:
    """Recorded recoveries (see :mod:`daskgmm.recovery`), checked: a list of flat
    records with the known keys and JSON scalar values."""
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and set(e) <= _RECOVERY_KEYS
        and all(v is None or isinstance(v, (int, float, str)) for v in e.values())
        for e in value
    ):
        raise CheckpointError(f"{where}: the recorded recoveries are malformed")
    return tuple(dict(e) for e in value)


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key} is {a!r} in the checkpoint but {b!r} now")
    return out


def _jsonable(value):
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
    return {"shape": list(a.shape), "sha256": _digest(a)}


def fit_identity(params: dict, fingerprint: dict) -> dict:
    """What a checkpoint must match to be resumed: estimator parameters and data."""
    return {
        "params": {k: _jsonable(v) for k, v in sorted(params.items())},
        "data": json.loads(json.dumps(fingerprint)),
    }


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def write_model(path, params: GMMParams, estimator_params: dict, fitted: dict,
                replace: bool = False) -> None:
    """Write a fitted model to a new Zarr group at ``path``; with ``replace``, over the
    daskgmm model there (the caller has checked that it is one)."""
    root = zarr.open_group(store=path, mode="w" if replace else "w-")
    digests = _write_params(root, params)
    root.attrs["daskgmm"] = {
        "format": FORMAT,
        "kind": "model",
        "version": __version__,
        "params": {k: _jsonable(v) for k, v in sorted(estimator_params.items())},
        "fitted": fitted,
        "digests": digests,
    }


def read_model(path) -> tuple[GMMParams, dict, dict]:
    """``(params, estimator_params, fitted_attributes)`` of the model at ``path``.

    A finished checkpoint is read as the model it produced.
    """
    root = _open(path, "r")
    meta = _meta(root, path)
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
        fitted = {
            "lower_bounds_": best.lower_bounds,
            "n_iter_": best.n_iter,
            "converged_": best.converged,
            "recoveries_": [dict(e) for e in best.recoveries],
            "dtype": meta["identity"]["data"]["dtype"],
        }
        return best.params, meta["identity"]["params"], fitted
    if meta["kind"] != "model":
        raise CheckpointError(f"{path!s} holds an unknown daskgmm object {meta['kind']!r}")
    fitted = meta.get("fitted")
    if not isinstance(fitted, dict) or not isinstance(meta.get("digests"), dict):
        raise CheckpointError(f"{path!s}: the model's attributes are incomplete")
    if fitted.get("dtype", "float64") not in ("float32", "float64"):
        raise CheckpointError(f"{path!s}: dtype {fitted.get('dtype')!r} is not float32 or float64")
    fitted["recoveries_"] = list(check_recoveries(fitted.get("recoveries_", []), str(path)))
    cov_type, k, d = _dimensions(meta.get("params"), fitted.get("n_features_in_"), str(path))
    names = fitted.get("feature_names_in_")
    if names is not None and not (isinstance(names, list) and len(names) == d
                                  and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path!s}: feature_names_in_ must be a list of {d} strings "
                              f"(one per feature), got {str(names)[:200]}")
    params = _read_params(root, meta["digests"], cov_type, k, d, str(path))
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
    root = _open(path, "r")
    meta = _meta(root, path)
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
        out["shapes"] = {n: list(getattr(params, n).shape) for n in _PARAM_ARRAYS}
    return out
