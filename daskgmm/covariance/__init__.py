"""Covariance types, one module each: ``COVARIANCE[name]`` holds all of a type's math.

See :mod:`daskgmm.covariance.base` for what a type provides.
"""

from .base import ILL_DEFINED_MESSAGE, CovarianceType, Expansion
from .diagonal import DIAG, SPHERICAL
from .full import FULL
from .tied import TIED

__all__ = [
    "COVARIANCE",
    "COVARIANCE_TYPES",
    "CovarianceType",
    "Expansion",
    "ILL_DEFINED_MESSAGE",
]

COVARIANCE: dict[str, CovarianceType] = {t.name: t for t in (FULL, TIED, DIAG, SPHERICAL)}
COVARIANCE_TYPES = tuple(COVARIANCE)
