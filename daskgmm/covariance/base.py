"""What every covariance type provides, and the helpers that several share.

A covariance type owns all of its math: shapes, number of parameters,
log-determinants, conversions between covariances, precisions and their
Cholesky factors, the checks of user-given precisions, sampling, the M-step
covariances from summed statistics, and its part of the chunk kernels (the
squared Mahalanobis distances and second moments of centred data, and its fast
path, an :class:`Expansion`). Everything else looks a type up once,
``COVARIANCE[name]``, and never branches on the name.

Shapes follow scikit-learn (``K`` components, ``D`` features):

==========  =======================================  ====================
type        covariances, precisions, their Cholesky  second moments S_k
==========  =======================================  ====================
full        (K, D, D)                                (K, D, D)
tied        (D, D)                                   (D, D)
diag        (K, D)                                   (K, D)
spherical   (K,)                                     (K, D)
==========  =======================================  ====================
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
from scipy import linalg

__all__ = [
    "CovarianceType",
    "Expansion",
    "ILL_DEFINED_MESSAGE",
    "IllDefinedCovariance",
    "ill_defined",
    "sum_squares",
]

#: scikit-learn's wording, which its own tests match; our detail follows it.
ILL_DEFINED_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
    "the number of components, increase reg_covar, or scale the input data."
)

#: Largest squared Mahalanobis distance between the mean of the means and any
#: mean for which the expanded kernels are used (:class:`Expansion`): the
#: relative rounding of their second moments is about this times float64's epsilon.
MAX_EXPANSION = 1e6
#: Multiply-adds of the largest matrix product that OpenBLAS gives its small-matrix
#: kernels (on AVX-512 CPUs, ``gemm_small_kernel_permit``: M N K at most 10^6). Our
#: skinny products (K components by a few dozen features by thousands of rows)
#: run 2-3x faster there than on its general path, which packs them first.
SMALL_PRODUCT = 1_000_000


class IllDefinedCovariance(ValueError):
    """scikit-learn's ValueError for covariances that are not positive definite;
    ``units`` are the indices of the failing matrices (components; 0 for tied)."""

    def __init__(self, message: str, units: list[int]):
        super().__init__(message)
        self.units = units


def ill_defined(components, reg_covar=None, units=None) -> IllDefinedCovariance:
    """scikit-learn's error for a covariance that is not positive definite, naming
    the component(s)."""
    which = ", ".join(str(k) for k in components)
    reg = "" if reg_covar is None else f" after adding reg_covar={reg_covar:g}"
    return IllDefinedCovariance(
        f"{ILL_DEFINED_MESSAGE} The covariance of component(s) {which} is not positive "
        f"definite{reg}.",
        list(components) if units is None else list(units),
    )


def cholesky_of_precisions_from_covariances(mats: np.ndarray, names, reg_covar) -> np.ndarray:
    """Upper-triangular U_k with U_k U_k^T = inverse of each (D, D) covariance (stacked)."""
    d = mats.shape[-1]
    out = np.empty_like(mats)
    bad = []
    for k, c in enumerate(mats):
        try:
            chol = linalg.cholesky(c, lower=True)
        except (linalg.LinAlgError, ValueError):  # not positive definite, or not finite
            bad.append(k)
            continue
        out[k] = linalg.solve_triangular(chol, np.eye(d), lower=True).T
    if bad:
        raise ill_defined([names[k] for k in bad], reg_covar, units=bad)
    return out


def cholesky_of_precisions(mats: np.ndarray) -> np.ndarray:
    """Upper-triangular U with U U^T = each precision (scikit-learn's convention)."""
    return np.stack([linalg.cholesky(p[::-1, ::-1], lower=True)[::-1, ::-1] for p in mats])


def covariances_of_cholesky(mats: np.ndarray) -> np.ndarray:
    """(U U^T)^-1 = U^-T U^-1 for each stacked upper-triangular U."""
    d = mats.shape[-1]
    inv = np.stack([linalg.solve_triangular(u, np.eye(d), lower=False) for u in mats])
    return np.swapaxes(inv, -1, -2) @ inv


def check_symmetric_positive_definite(mats: np.ndarray, name: str, label) -> None:
    """scikit-learn's error for a precision matrix that is not symmetric positive
    definite, then which one (``label(i)``) and why."""
    for i, m in enumerate(mats):
        why = None
        if not np.allclose(m, m.T):
            why = "is not symmetric"
        elif np.linalg.eigvalsh(m).min() <= 0:
            why = "is not positive-definite"
        if why:
            raise ValueError(
                f"'{name} precision' should be symmetric, positive-definite: {label(i)} {why}"
            )


class Expansion(ABC):
    """A covariance type's fast path for one E-step: log-probabilities and statistics
    from a few GEMMs over features of ``x~ = x - c`` (``c`` the mean of the means)
    shared by every component, instead of a (K, rows, D) array of centred data.

    ``features(block, ws)`` gives the (n_features, rows) float64 array that the
    statistics are taken from (rows as columns, so that a row left out is a
    column set to zero); ``log_prob(features, ws, out)`` the (K, rows)
    weighted log-probabilities; ``accumulate(features, resp, ws, sums, weight)``
    adds a sub-block's sums over the features to ``sums`` (float64 arrays from
    :meth:`new_sums`), ``resp`` already multiplied by the rows' sample ``weight``
    (None without), and ``finish(sums)`` turns the sums of a chunk into
    ``(N_k, s_k, S_k)`` centred on the means, once per chunk. ``row_bytes``: the
    bytes per row of its work arrays, which size the sub-blocks. ``fused`` does
    the work of a whole chunk, features to sums, in one compiled call
    (:mod:`daskgmm.fused`); an EM pass takes it, the other methods are the NumPy
    form of the same steps.
    """

    row_bytes: int
    #: the most rows of a sub-block (None: as many as ``row_bytes`` allows)
    max_rows: int | None = None
    #: the rows of a sub-block of :meth:`fused`
    fused_rows: int = 512

    @staticmethod
    def small_product_rows(width: int, dtype) -> int | None:
        """For rows of ``dtype``, the most rows of a sub-block for which a product of
        ``width`` multiply-adds per row stays a small one (:data:`SMALL_PRODUCT`), or
        None: where that leaves too few rows to amortise each NumPy call (measured:
        no gain below about 1,000), and for float32 rows, whose cast to the float64
        features costs more per row: shorter sub-blocks gain less there on one
        thread (0.87-0.95x against 0.76-0.85x for float64) and lose on two
        (1.03-1.11x: more sub-blocks, more hand-overs of the GIL)."""
        if np.dtype(dtype) != np.float64:
            return None
        rows = SMALL_PRODUCT // width
        return rows if rows >= 1024 else None

    def __init__(self, shift, delta):
        self.shift, self.delta = shift, delta

    @staticmethod
    def split_means(means):
        """``c``, the mean of the means, and ``d_k = m_k - c``, in float64."""
        means = np.asarray(means, dtype=np.float64)
        shift = means.mean(axis=0)
        return shift, means - shift

    def shifted_and_one(self, block, ws) -> np.ndarray:
        """The features ``[x~, 1]``, (D + 1, rows) float64."""
        d = block.shape[1]
        f = ws("features", (d + 1, block.shape[0]))
        np.subtract(block.T, self.shift[:, None], out=f[:d])
        f[d] = 1.0
        return f

    @staticmethod
    def close_enough(const) -> bool:
        """Whether every squared Mahalanobis distance from ``c`` to a mean is small
        enough for the expansion (also refuses NaN)."""
        return bool(np.all(const <= MAX_EXPANSION))

    @abstractmethod
    def features(self, block, ws) -> np.ndarray: ...

    @abstractmethod
    def log_prob(self, features, ws, out) -> np.ndarray: ...

    @abstractmethod
    def new_sums(self) -> dict: ...

    @abstractmethod
    def accumulate(self, features, resp, ws, sums: dict, weight=None) -> None: ...

    @abstractmethod
    def finish(self, sums: dict) -> tuple: ...

    @abstractmethod
    def fused(self, block, weight, lse, sums: dict) -> None:
        """The whole chunk ``block`` in one compiled call (:mod:`daskgmm.fused`): adds
        its sums to ``sums`` (:meth:`new_sums`) and writes each row's log-likelihood
        to ``lse`` (NaN for a row with a non-finite value, which adds nothing).
        ``weight``: the rows' sample weights, or an empty array."""


class CovarianceType(ABC):
    """The math of one covariance type (see the module docstring)."""

    name: str
    #: whether each component has a covariance of its own (all but tied)
    per_component: bool = True
    #: dimensions of one covariance: 2 (a matrix), 1 (its diagonal) or 0 (a variance)
    unit_ndim: int = 2

    def units(self, covariances) -> np.ndarray:
        """The covariances stacked one per unit (a float64 copy): per component, or
        the one tied matrix."""
        c = np.array(covariances, dtype=np.float64)
        return c if self.per_component else c[None]

    def from_units(self, units: np.ndarray) -> np.ndarray:
        """The covariances of :meth:`units` in this type's own shape."""
        return units if self.per_component else units[0]

    def dense_units(self, precisions_cholesky, n_features: int) -> np.ndarray:
        """The covariances as (D, D) matrices, one per unit (:meth:`units`): the
        form that the marginals of rows with missing features are taken from."""
        units = self.units(self.covariances(precisions_cholesky))
        if self.unit_ndim == 2:
            return units
        eye = np.eye(n_features)
        if self.unit_ndim == 1:
            return units[:, :, None] * eye
        return units[:, None, None] * eye

    def moment_of_dense(self, mats: np.ndarray) -> np.ndarray:
        """(K, D, D) matrices in the layout of this type's second moments ``S_k``:
        as they are (full), summed over components (tied), their diagonals (diag,
        spherical)."""
        if self.unit_ndim < 2:
            return np.diagonal(mats, axis1=1, axis2=2)
        return mats if self.per_component else mats.sum(axis=0)

    # ---------------------------------------------------------------- shapes

    @abstractmethod
    def shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of the covariances, the precisions and their Cholesky factors."""

    @abstractmethod
    def second_moment_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of the summed second moments ``S_k`` of a pass."""

    @abstractmethod
    def n_covariance_parameters(self, n_components: int, n_features: int) -> float: ...

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the mixture, as ``GaussianMixture._n_parameters``."""
        k, d = n_components, n_features
        return int(self.n_covariance_parameters(k, d) + d * k + k - 1)

    # ----------------------------------------------------------- conversions

    @abstractmethod
    def log_det_cholesky(self, precisions_cholesky, n_features: int):
        """log|det| of each precision's Cholesky factor (half the precision's log-det)."""

    @abstractmethod
    def precision_cholesky(self, covariances, reg_covar=None) -> np.ndarray:
        """Cholesky factor of the precisions, as scikit-learn computes it; scikit-learn's
        ill-defined-covariance error, naming the component, if one is not positive
        definite (``reg_covar`` is named in the message)."""

    @abstractmethod
    def precision_cholesky_from_precisions(self, precisions) -> np.ndarray: ...

    @abstractmethod
    def cholesky_diagonal(self, precisions_cholesky) -> np.ndarray:
        """The diagonal entries of the precision Cholesky factors (all positive for
        positive-definite precisions)."""

    @abstractmethod
    def precisions(self, precisions_cholesky) -> np.ndarray: ...

    @abstractmethod
    def covariances(self, precisions_cholesky) -> np.ndarray: ...

    @abstractmethod
    def check_precisions(self, precisions: np.ndarray) -> None:
        """Raise scikit-learn's error for ``precisions_init`` that are not valid
        (shape and finiteness are checked before), naming the one at fault."""

    @abstractmethod
    def sample(self, rng, means, covariances, counts) -> list[np.ndarray]:
        """``counts[k]`` draws from each component (scikit-learn's draws)."""

    # ---------------------------------------------------------------- M-step

    @abstractmethod
    def m_step_covariances(self, nk, shift, Sk, reg_covar) -> np.ndarray:
        """Covariances from statistics centred on the old means; ``shift = s_k / N_k``."""

    def keep_previous(self, new, old, empty) -> np.ndarray:
        """``new`` with the covariances of the ``empty`` components taken from ``old``."""
        if not empty.any():
            return new
        new = new.copy()
        new[empty] = old[empty]
        return new

    # --------------------------------------------------------- chunk kernels

    @abstractmethod
    def mahalanobis(self, diff, precisions_cholesky, ws) -> np.ndarray:
        """Squared Mahalanobis distances (K, rows) of centred data ``diff`` (K, rows, D),
        in the data's dtype."""

    @abstractmethod
    def second_moment(self, diff, r_t, ws) -> np.ndarray:
        """``sum_n r_nk (x_n - m_k)(x_n - m_k)^T`` in this type's layout."""

    @abstractmethod
    def precision_times(self, precisions_cholesky, vectors) -> np.ndarray:
        """``P_k v_k`` for each component: (K, D) float64."""

    @abstractmethod
    def shift_second_moment(self, Sk, nk, sk, delta) -> None:
        """Move ``Sk`` (and its ``sk = sum r (x - c_k)``, ``nk``) from centres ``c_k``
        to ``c_k - delta_k``, exactly, in place:
        ``S += s delta^T + delta s^T + N delta delta^T`` in this type's layout."""

    @abstractmethod
    def add_own_second_moment(self, Sk, k: int, moment) -> None:
        """Add to ``Sk`` component ``k``'s part of ``moment`` (D, D), the sum of
        ``w (x - c_k)(x - c_k)^T`` over its rows (``w`` their sample weights)."""

    def expansion(self, means, precisions_cholesky, offset, dtype, reg_covar: float = 0.0,
                  chunk_rows: int | None = None) -> Expansion | None:
        """The fast path for these parameters and data dtype, or None (centred data).
        ``reg_covar``: what the M-step will add to the covariances, for a type whose
        expansion rounds its second moments by an absolute amount (full);
        ``chunk_rows``: the rows of the chunk that :meth:`Expansion.fused` will take
        (None: the NumPy loop), which bound that rounding's growth."""
        return None

    def __repr__(self) -> str:
        return f"<covariance type {self.name!r}>"


def log_2pi_term(n_features: int) -> float:
    return -0.5 * n_features * math.log(2.0 * math.pi)


def sum_squares(y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sums of squares of ``y`` over its last axis into ``out``, squaring ``y`` in
    place (a GEMV with ones, not a reduction: faster for short rows)."""
    np.square(y, out=y)
    ones = np.ones(y.shape[-1], dtype=y.dtype)
    np.dot(y.reshape(-1, y.shape[-1]), ones, out=out.reshape(-1))
    return out
