"""Checkpoints as Zarr groups (see :mod:`daskgmm.store`).

A checkpoint is a group whose root attribute ``daskgmm.current`` names the last
complete state, a subgroup ``state-NNNNNNNN``. A new state is written completely
into a new subgroup first; then the root attributes are rewritten to point at
it, one small write (zarr writes each key whole: a temporary file renamed into
place locally, a single PUT on object stores); only then is the previous state
deleted (one write later, so that concurrent readers such as ``inspect`` never
lose the state they are reading). A process killed at any instant leaves a
checkpoint that opens to the last complete state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import zarr

from ._version import __version__
from .acceleration import MAX_STEP, STAGES, Acceleration
from .errors import CheckpointError, CheckpointLockedError, CheckpointMismatchError
from .params import EMResult
from .reads import DIGEST_SIZE
from .store import (
    FORMAT,
    PARAM_ARRAYS,
    check_recoveries,
    check_values,
    checksum,
    dimensions,
    expected_shapes,
    jsonable,
    params_from,
    read_array,
    read_meta,
    write_array,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointMismatchError",
    "FitState",
    "fit_identity",
]


@dataclass
class FitState:
    """Everything needed to continue a fit exactly where it was.

    ``runs`` holds where each initialisation (of each model of a search) drawn
    so far stands; ``rng_state``
    is the random state after the last draw. A finished fit (``status ==
    "done"``) names its ``best`` run. ``chunk_digests``: the SHA-256 of every
    row chunk of the data, (n_chunks, 32) uint8, once a pass has read them
    (:class:`daskgmm.reads.ContentCheck`).
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
        meta = read_meta(root, self.path)
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


def _write_state(root, name: str, state: FitState) -> None:
    """A state as a group with one float64 array (the parameters of every run and
    the random state), the chunk digests if known, and JSON attributes written
    with the group: three or four small writes, whatever the number of runs."""
    arrays, runs = {}, []
    for j, run in enumerate(state.runs):
        arrays.update({f"run{j}_{n}": getattr(run.params, n) for n in PARAM_ARRAYS})
        acc = run.acceleration
        if acc is not None:
            for role in ("plain", "base"):
                arrays.update({f"run{j}_{role}_{n}": getattr(getattr(acc, role), n)
                               for n in PARAM_ARRAYS})
        runs.append({
            "lower_bounds": list(map(float, run.lower_bounds)),
            "n_iter": int(run.n_iter),
            "converged": bool(run.converged),
            "recoveries": [dict(e) for e in run.recoveries],
            "acceleration": None if acc is None else {
                "bound": float(acc.bound), "stage": acc.stage, "step_max": float(acc.step_max),
                **({} if acc.alpha is None else {"alpha": float(acc.alpha)})},
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
        "digest": checksum(vec),
    }
    if state.chunk_digests is not None:
        attributes["chunk_digests"] = checksum(state.chunk_digests)
    if state.extra is not None:
        attributes["extra"] = state.extra
    group = root.create_group(name, overwrite=True, attributes={"daskgmm_state": attributes})
    write_array(group, "state", vec)
    if state.chunk_digests is not None:
        write_array(group, "chunk_digests", state.chunk_digests)


def _run_dims(identity: dict, where: str):
    """``dims(j)``: ``(covariance_type, n_components, n_features)`` of run ``j`` of the
    fit that ``identity`` describes, checked: every run of a fit has the
    estimator's; a search's are those of its grid (``n_init`` runs per model)."""
    n_features = identity["data"]["shape"][1]
    search = identity.get("search")
    if search is None:
        dims = dimensions(identity["params"], n_features, where)
        return lambda j: dims
    models, n_init = search.get("models"), search.get("n_init")
    if not isinstance(models, list) or not isinstance(n_init, int) or n_init < 1:
        raise CheckpointError(f"{where}: the search's grid is malformed")
    grid = [dimensions({"n_components": m[0], "covariance_type": m[1]}, n_features, where)
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
        expected.update(expected_shapes(*run_dims(j), prefix=f"run{j}_"))
        if r.get("acceleration") is not None:
            for role in ("plain", "base"):
                expected.update(expected_shapes(*run_dims(j), prefix=f"run{j}_{role}_"))
    declared = {name: tuple(shape) for name, (_, shape) in layout.items()}
    if declared != expected:
        raise CheckpointError(f"{where}: the state's layout does not match the fit's shapes")
    size = sum(math.prod(shape) for shape in expected.values())
    if tuple(group["state"].shape) != (size,):
        raise CheckpointError(f"{where}: the state array has shape {group['state'].shape}, "
                              f"expected ({size},)")
    arrays = _unpack(read_array(group, "state", s["digest"], where), layout)
    runs = [
        EMResult(
            check_values(params_from(arrays, run_dims(j)[0], prefix=f"run{j}_"), where),
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
        chunk_digests = read_array(group, "chunk_digests", s["chunk_digests"], where)
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
    bound, step_max, alpha = (meta.get(key) if isinstance(meta, dict) else None
                              for key in ("bound", "step_max", "alpha"))
    if not (isinstance(meta, dict) and meta.get("stage") in STAGES
            and isinstance(bound, (int, float)) and not math.isnan(bound)
            and isinstance(step_max, (int, float)) and 1.0 <= step_max <= MAX_STEP
            and (alpha is None or (isinstance(alpha, (int, float)) and meta["stage"] == "jump"
                                   and 1.0 < alpha <= step_max))):
        raise CheckpointError(f"{where}: the acceleration state of run {j} is malformed "
                              f"(expected a bound, a stage in {STAGES}, a step_max in "
                              f"[1, {MAX_STEP:g}] and, before a jump, its step length alpha "
                              "in (1, step_max])")
    plain, base = (check_values(params_from(arrays, covariance_type, prefix=f"run{j}_{role}_"),
                                 where) for role in ("plain", "base"))
    return Acceleration(plain, float(bound), meta["stage"], base, float(step_max),
                        None if alpha is None else float(alpha))


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key} is {a!r} in the checkpoint but {b!r} now")
    return out


def fit_identity(params: dict, fingerprint: dict) -> dict:
    """What a checkpoint must match to be resumed: estimator parameters and data."""
    return {
        "params": {k: jsonable(v) for k, v in sorted(params.items())},
        "data": json.loads(json.dumps(fingerprint)),
    }
