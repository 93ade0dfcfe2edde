"""Covariance types, one module each: ``COVARIANCE[name]`` holds all of a type's math.

See :mod:`daskgmm.covariance.base` for what a type provides. The names of the
types (``COVARIANCE_TYPES``) are known without importing them; the types, and
what they compile, are imported on the first use of anything else here (the
command line's parsing needs only the names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "COVARIANCE",
    "COVARIANCE_TYPES",
    "CovarianceType",
    "Expansion",
    "ILL_DEFINED_MESSAGE",
]

#: scikit-learn's ``covariance_type`` values, in its order: the keys of ``COVARIANCE``.
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

if TYPE_CHECKING:
    from .base import ILL_DEFINED_MESSAGE, CovarianceType, Expansion

    COVARIANCE: dict[str, CovarianceType]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .base import ILL_DEFINED_MESSAGE, CovarianceType, Expansion
    from .diagonal import DIAG, SPHERICAL
    from .full import FULL
    from .tied import TIED

    types = {t.name: t for t in (FULL, TIED, DIAG, SPHERICAL)}
    if tuple(types) != COVARIANCE_TYPES:  # a type added to one and not the other
        raise ImportError(f"covariance types {tuple(types)} differ from {COVARIANCE_TYPES}")
    globals().update(COVARIANCE=types, CovarianceType=CovarianceType, Expansion=Expansion,
                     ILL_DEFINED_MESSAGE=ILL_DEFINED_MESSAGE)
    return globals()[name]
