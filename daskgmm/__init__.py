"""daskgmm: Gaussian mixture models fitted with EM on Dask."""

from importlib.metadata import PackageNotFoundError, version

from .errors import ConvergenceWarning, EmptyComponentWarning
from .estimator import GaussianMixture

try:
    __version__ = version("daskgmm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["ConvergenceWarning", "EmptyComponentWarning", "GaussianMixture", "__version__"]
