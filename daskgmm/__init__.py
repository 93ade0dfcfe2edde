"""daskgmm: Gaussian mixture models fitted with EM on Dask."""

from ._version import __version__
from .checkpoint import CheckpointError, CheckpointLockedError, CheckpointMismatchError, inspect
from .errors import ConvergenceWarning, EmptyComponentWarning
from .estimator import GaussianMixture, load

__all__ = [
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointMismatchError",
    "ConvergenceWarning",
    "EmptyComponentWarning",
    "GaussianMixture",
    "inspect",
    "load",
    "__version__",
]
