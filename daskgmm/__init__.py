"""daskgmm: Gaussian mixture models fitted with EM on Dask.

The names below are imported on first use (PEP 562), so that ``import
daskgmm`` and the command line's ``--help`` do not pay for scikit-learn, Dask
and the compiled kernels before they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

#: Each public name and the module that defines it.
_WHERE = {
    "CheckpointError": "errors",
    "CheckpointLockedError": "errors",
    "CheckpointMismatchError": "errors",
    "ClusterError": "errors",
    "ConvergenceWarning": "errors",
    "DaskGMMWarning": "errors",
    "EmptyComponentWarning": "errors",
    "UnsafePathError": "errors",
    "GaussianMixture": "estimator",
    "load": "estimator",
    "GaussianMixtureSearch": "search",
    "inspect": "models",
}

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

if TYPE_CHECKING:
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
    from .models import inspect
    from .search import GaussianMixtureSearch


def __getattr__(name: str):
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'daskgmm' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
