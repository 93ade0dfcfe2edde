"""Where daskgmm may write: never over what it did not create, never into its input.

Every path that daskgmm writes (a model, a checkpoint, an output of ``predict``)
is checked before anything is read or written: it must not exist, or be an
empty folder, or hold a daskgmm object of a kind that may be replaced and
replacing was asked for. Anything else (a file, a folder of notes, a Zarr
store of data) is refused with an error that names the path and what is there.
An output may not be the input, lie inside it, or contain it. Local paths are
checked on the file system; URLs through Zarr (what Zarr cannot open there is
taken as foreign unless the location is empty).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping

from .errors import CheckpointLockedError, UnsafePathError

__all__ = [
    "DASKGMM_KINDS",
    "check_apart",
    "check_output",
    "replace_atomically",
    "what_is_at",
    "writer_lock",
]

#: What daskgmm writes, by the kind recorded in its ``daskgmm`` attribute.
DASKGMM_KINDS = ("model", "checkpoint", "labels", "probabilities", "imputed")
_NAMED = {"model": "a daskgmm model", "checkpoint": "a daskgmm checkpoint",
          "labels": "daskgmm labels", "probabilities": "daskgmm probabilities",
          "imputed": "daskgmm imputed data"}


def _local(path) -> pathlib.Path | None:
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        return None
    return pathlib.Path(text).expanduser().absolute()


def _daskgmm_kind(path) -> str | None:
    import zarr

    try:
        node = zarr.open(store=os.fspath(path), mode="r")
    except Exception:  # noqa: BLE001 - anything Zarr cannot open is not ours
        return None
    meta = node.attrs.get("daskgmm")
    if isinstance(meta, dict) and isinstance(meta.get("kind"), str):
        return meta["kind"]  # model, checkpoint, labels, probabilities, imputed
    return "zarr array" if isinstance(node, zarr.Array) else "zarr group"


def what_is_at(path) -> str | None:
    """None for nothing (or an empty folder); else the kind of a daskgmm object (one
    of :data:`DASKGMM_KINDS`), or a description of foreign content."""
    local = _local(path)
    if local is not None:
        if not local.exists() and not local.is_symlink():
            return None
        if not local.is_dir():
            return "a file"
        entries = sum(1 for _ in local.iterdir())
        if entries == 0:
            return None
    kind = _daskgmm_kind(path)
    if kind in DASKGMM_KINDS:
        return kind
    if kind in ("zarr array", "zarr group"):
        return f"a {kind.replace('zarr', 'Zarr')} that daskgmm did not write"
    if local is None:
        return None  # nothing that Zarr can open at this URL
    return f"a folder of {entries} entr{'y' if entries == 1 else 'ies'} that daskgmm did not write"


def check_output(path, *, parameter: str, replaceable: tuple[str, ...], overwrite: bool,
                 how: str) -> str | None:
    """Refuse to write at ``path`` unless it holds nothing, or a daskgmm object of a
    ``replaceable`` kind and ``overwrite`` is set (``how`` says how to set it).
    Returns what is there (None, or the daskgmm kind)."""
    found = what_is_at(path)
    if found is None:
        _check_writable(path, parameter)
        return None
    if found in DASKGMM_KINDS:
        if found in replaceable and overwrite:
            return found
        if found in replaceable:
            raise UnsafePathError(
                f"{parameter}: {os.fspath(path)} holds {_NAMED[found]}; {how} to replace it"
            )
        raise UnsafePathError(
            f"{parameter}: {os.fspath(path)} holds {_NAMED[found]}, not "
            f"{' or '.join(_NAMED[k] for k in replaceable)}: refusing to replace it"
        )
    raise UnsafePathError(
        f"{parameter}: {os.fspath(path)} holds {found}: refusing to write there "
        "(daskgmm writes only to a new or empty path, or over its own output)"
    )


def _check_writable(path, parameter: str) -> None:
    local = _local(path)
    if local is None:
        return
    parent = local if local.is_dir() else local.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafePathError(f"{parameter}: {os.fspath(path)} cannot be written ({parent} is not writable)")


def check_apart(output, inputs: Mapping[str, object], parameter: str) -> None:
    """Refuse an ``output`` path that is one of the ``inputs`` (name -> path), lies
    inside one, or contains one. Only paths on this machine can be compared."""
    out = _local(output)
    if out is None:
        return
    out = out.resolve()
    for name, path in inputs.items():
        if path is None or not isinstance(path, (str, os.PathLike)):
            continue
        inp = _local(path)
        if inp is None:
            continue
        inp = inp.resolve()
        if out == inp or inp in out.parents or out in inp.parents:
            relation = "is" if out == inp else ("lies inside" if inp in out.parents else "contains")
            raise UnsafePathError(
                f"{parameter}: {os.fspath(output)} {relation} the {name} {os.fspath(path)}: "
                "an output must be apart from the input"
            )


def replace_atomically(path, write: Callable[[str], None]) -> None:
    """``write(p)`` a new object at a sibling path, then switch it in place of
    ``path`` and only then remove the old one: a failure while writing leaves
    the old one untouched. (On object stores, which cannot rename, ``write``
    writes at ``path`` itself.)"""
    local = _local(path)
    if local is None:
        write(os.fspath(path))
        return
    tag = uuid.uuid4().hex[:12]
    new = local.with_name(f".{local.name}.daskgmm-new-{tag}")
    old = local.with_name(f".{local.name}.daskgmm-old-{tag}")
    try:
        write(str(new))
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    had_old = local.exists()
    if had_old:
        local.rename(old)
    new.rename(local)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def writer_lock(path):
    """Hold the one-writer lock of the checkpoint at a local ``path`` for the block.

    The lock is a file beside the checkpoint (``.NAME.daskgmm-lock``), created
    exclusively, that names its owner (host, PID, start time). A lock whose
    owner is a process of this host that no longer runs is stale and taken
    over; any other held lock is refused with :class:`CheckpointLockedError`.
    (Checkpoints at URLs are not locked.)
    """
    text = os.fspath(path)
    if "://" in text and not text.startswith("file://"):
        yield
        return
    local = pathlib.Path(text.removeprefix("file://")).expanduser().absolute()
    lock = local.with_name(f".{local.name}.daskgmm-lock")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
            except (OSError, ValueError):
                owner = {}
            if not isinstance(owner, dict) or not {"host", "pid", "since"} <= set(owner):
                raise CheckpointLockedError(
                    f"{lock} is in the place of the checkpoint's lock but is not a daskgmm "
                    "lock; it is left as it is: move it away, or choose another checkpoint path"
                ) from None
            if owner["host"] == me["host"] and not _running(owner["pid"]):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise CheckpointLockedError(
                f"the checkpoint at {text} is being written by another fit (host "
                f"{owner['host']}, PID {owner['pid']}, since {_when(owner['since'])}); wait for it, or "
                f"delete {lock} if that fit is no longer running"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:  # pragma: no cover - three stale locks in a row
        raise CheckpointLockedError(f"could not take the lock {lock}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _when(since) -> str:
    try:
        return time.ctime(float(since))
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(since)


def _running(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
