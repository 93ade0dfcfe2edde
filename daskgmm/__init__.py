"""daskgmm: Gaussian mixture models fitted with EM on Dask."""

from importlib.metadata import PackageNotFoundError, version

from .checkpoint import CheckpointError, CheckpointMismatchError
from .checkpoint import inspect as _inspect
from .checkpoint import read_model as _read_model
from .errors import ConvergenceWarning, EmptyComponentWarning
from .estimator import GaussianMixture


def load(path) -> GaussianMixture:
    """Load a model saved with :meth:`GaussianMixture.save` (or a finished checkpoint).

    Reads arrays and JSON attributes only; nothing in the file is executed.
    Raises :class:`CheckpointError` for a missing, foreign or corrupted group.
    """
    return GaussianMixture._from_stored(*_read_model(path))


def inspect(path) -> dict:
    """Summary of a checkpoint or model: kind, status, iteration, lower bounds, shapes."""
    return _inspect(path)

try:
    __version__ = version("daskgmm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ConvergenceWarning",
    "EmptyComponentWarning",
    "GaussianMixture",
    "inspect",
    "load",
    "__version__",
]
