"""Warnings and exceptions of daskgmm, in one place.

``ConvergenceWarning`` and ``NotFittedError`` are scikit-learn's own (so that
code written for scikit-learn catches them), imported from it on first use:
the command line's parsing does not pay for importing scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = [
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointMismatchError",
    "ClusterError",
    "ConvergenceWarning",
    "DaskGMMWarning",
    "EmptyComponentWarning",
    "NotFittedError",
    "RecoveryWarning",
    "UnsafePathError",
]


class DaskGMMWarning(UserWarning):
    """Base class of the warnings that daskgmm itself emits."""


class EmptyComponentWarning(DaskGMMWarning):
    """A mixture component received (almost) no responsibility in an iteration."""


class RecoveryWarning(DaskGMMWarning):
    """A covariance was not positive definite, and a remedy was taken (jitter, re-seed)."""


class UnsafePathError(ValueError):
    """daskgmm refuses to write at a path: it holds data that daskgmm did not write,
    or it overlaps the input."""


class CheckpointError(ValueError):
    """A checkpoint or model cannot be read: missing, foreign or corrupted."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint belongs to other data or other estimator parameters."""


class CheckpointLockedError(CheckpointError):
    """Another fit is writing this checkpoint."""


class ClusterError(RuntimeError):
    """The cluster cannot start: e.g. the batch system refused the worker jobs."""


def __getattr__(name: str):
    if name in ("ConvergenceWarning", "NotFittedError"):
        from sklearn import exceptions

        value = getattr(exceptions, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
