"""daskgmm: Gaussian mixture models fitted with EM on Dask."""

from ._version import __version__
from .models import inspect
from .errors import (
    CheckpointError,
    CheckpointLockedError,
    CheckpointMismatchError,
    ClusterError,
    ConvergenceWarning,
    DaskGMMWarning,
    EmptyComponentWarning,
    UnsafePathError,
)
from .estimator import GaussianMixture, load
from .search import GaussianMixtureSearch

__all__ = [
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointMismatchError",
    "ClusterError",
    "ConvergenceWarning",
    "DaskGMMWarning",
    "EmptyComponentWarning",
    "GaussianMixture",
    "GaussianMixtureSearch",
    "UnsafePathError",
    "inspect",
    "load",
    "__version__",
]
