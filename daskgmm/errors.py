"""Warnings and exceptions of daskgmm, in one place."""

from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = [
    "ConvergenceWarning",
    "DaskGMMWarning",
    "EmptyComponentWarning",
    "NotFittedError",
    "UnsafePathError",
]


class DaskGMMWarning(UserWarning):
    """Base class of the warnings that daskgmm itself emits."""


class EmptyComponentWarning(DaskGMMWarning):
    """A mixture component received (almost) no responsibility in an iteration."""


class UnsafePathError(ValueError):
    """daskgmm refuses to write at a path: it holds data that daskgmm did not write,
    or it overlaps the input."""
