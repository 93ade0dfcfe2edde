"""The patterns of missing features (NaN) of a chunk's rows, for
:class:`daskgmm.missing.Marginal`: found by one sort of the rows' packed masks,
rows grouped by pattern (:class:`Group`, whose gaps are read and written by
flat positions, several times faster than indexing by row and column), and
the small linear algebra of each pattern's block of the precision, vectorised
over the patterns. Pure NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Group",
    "find_patterns",
    "has_missing",
    "inverse_and_logdet",
    "pattern_codes",
    "pattern_sums",
    "solve_rows",
]


def has_missing(block: np.ndarray) -> np.ndarray:
    """Rows with at least one NaN, (rows,) bool."""
    return np.isnan(block).any(axis=1)


class Group:
    """Rows with missing features, and what their marginals need.

    Dense types: rows that miss the same number ``c`` of features; ``pattern``
    the row of ``patterns`` (n_patterns, c) that each is (the features it misses);
    per pattern and unit ``P_mm^-1`` (``inv``), and per component and pattern the
    terms of its log-densities that do not depend on the row (``const``, (K, P)).
    Diagonal types: any rows. ``rows``: their indices.

    Values at the missing features of a sub-block's rows are (..., c, n): the
    rows last, so that each NumPy step over them runs along the rows (over
    (n, c), with ``c`` of 1 to 4, it runs rows of 1 to 4 values, measured 4-5x
    slower).
    """

    def __init__(self, rows, n_features=0, pattern=None, patterns=None, inv=None,
                 const=None, mass=None, shared=None, unit_inv=None, flat=None,
                 positions=True, sizes=None):
        self.rows, self.n_features, self.pattern = rows, n_features, pattern
        self.patterns, self.inv, self.const = patterns, inv, const
        #: ``flat[j, i] = i * D + patterns[pattern[i], j]``: the missing entries of an
        #: (n, D) work array as flat positions, (c, n) (np.take and flat stores are
        #: several times faster than fancy indexing by row and column)
        if flat is None and pattern is not None and positions:
            flat = np.take(patterns.T, pattern, axis=1)
            flat += np.arange(0, len(pattern) * n_features, n_features)
        self.flat = flat
        #: responsibility summed per pattern and component, over the sub-blocks
        self.mass = mass
        #: one shared precision: h of Marginal._shared_terms, (P, c, K)
        self.shared = shared
        #: one shared precision: P_mm^-1 of each row of a sub-block, by columns
        #: (c, c, n) (see solve_rows)
        self.row_inv = None
        #: the inverses by columns, (c, U, c, P) in the work's dtype (column j of
        #: every inverse: unit_inv[j]); one shared precision: (c, c, P)
        self.unit_inv = unit_inv
        #: compiled kernels' groups: the number of features each pattern misses
        #: (``patterns`` padded beyond it, see Marginal._padded_group)
        self.sizes = sizes

    def __getitem__(self, sl: slice) -> Group:
        """The group's rows ``sl`` (the per-pattern arrays shared)."""
        def part(a):
            return None if a is None else a[sl]

        flat = (None if self.flat is None
                else self.flat[:, sl] - (sl.start or 0) * self.n_features)
        return Group(self.rows[sl], self.n_features, part(self.pattern), self.patterns,
                      self.inv, self.const, self.mass, self.shared, self.unit_inv, flat)

    def take(self, a: np.ndarray, ws, name: str) -> np.ndarray:
        """The missing entries of ``a`` (..., n, D) of this sub-block: (..., c, n),
        in the work array of ``ws`` kept under ``name``."""
        out = ws(name, a.shape[:-2] + self.flat.shape, a.dtype)
        return np.take(a.reshape(a.shape[:-2] + (-1,)), self.flat, axis=-1, out=out, mode="clip")

    def row_const(self, ws) -> np.ndarray:
        """``const`` of this sub-block's rows, (K, n) (a work array)."""
        n, k = len(self.pattern), self.const.shape[0]
        return np.take(self.const, self.pattern, axis=1, out=ws("m_const", (k, n)), mode="clip")

    def put(self, a: np.ndarray, values) -> None:
        """Set the missing entries of ``a`` (..., n, D) of this sub-block to ``values``
        ((..., c, n) or a scalar)."""
        if not a.flags.c_contiguous:  # its reshape would be a copy, and the store lost
            raise ValueError("put needs a C-contiguous work array")
        a.reshape(a.shape[:-2] + (-1,))[..., self.flat] = values


#: Largest block of missing features inverted by the batch-vectorised Cholesky of
#: :func:`inverse_and_logdet` (beyond, LAPACK per matrix: fewer Python steps).
_VECTORISED_SIZE = 6


def inverse_and_logdet(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and log-determinants of a stack of symmetric positive-definite
    (c, c) matrices. For small ``c``, a Cholesky factorisation ``L``, ``L^-1`` and
    ``L^-T L^-1`` written entry by entry, each entry one vector over the whole
    stack: a few dozen NumPy steps on contiguous vectors instead of a LAPACK call
    per matrix (thousands of patterns per chunk) or stacked products of tiny
    matrices (measured 2x slower)."""
    c = a.shape[-1]
    if c > _VECTORISED_SIZE:
        return np.linalg.inv(a), np.linalg.slogdet(a)[1]
    # entry (i, j) of every matrix: a[i, j], contiguous
    a = np.ascontiguousarray(np.moveaxis(a, (-2, -1), (0, 1)))
    low = [[None] * c for _ in range(c)]
    logdet = 0.0
    for j in range(c):
        pivot = a[j, j] - sum(low[j][m] * low[j][m] for m in range(j)) if j else a[j, j]
        logdet = logdet + np.log(pivot)
        low[j][j] = np.sqrt(pivot)
        for i in range(j + 1, c):
            dot = sum(low[i][m] * low[j][m] for m in range(j)) if j else 0.0
            low[i][j] = (a[i, j] - dot) / low[j][j]
    inv_low = [[None] * c for _ in range(c)]  # L^-1, lower triangular
    for j in range(c):
        inv_low[j][j] = 1.0 / low[j][j]
        for i in range(j + 1, c):
            inv_low[i][j] = -sum(low[i][m] * inv_low[m][j] for m in range(j, i)) / low[i][i]
    out = np.empty(a.shape, dtype=np.result_type(a.dtype, np.float64))
    for i in range(c):
        for j in range(i + 1):
            out[i, j] = out[j, i] = sum(inv_low[m][i] * inv_low[m][j] for m in range(i, c))
    return np.moveaxis(out, (0, 1), (-2, -1)), logdet


def solve_rows(columns: np.ndarray, b: np.ndarray, ws, name: str) -> np.ndarray:
    """``inv_n @ b[..., :, n]`` for small matrices ``inv_n`` given by their
    columns (``columns[j][..., i, n] = inv_n[i, j]``, each contiguous), the rows
    last: a sum over the ``c`` columns (fewer NumPy steps than a stacked matmul
    of tiny matrices, or than the same sum over rows, measured), into work
    arrays of ``ws`` kept under ``name`` (fresh ones per sub-block serialise
    threads on page faults)."""
    shape = np.broadcast_shapes(columns.shape[1:], b.shape)
    out = np.multiply(columns[0], b[..., :1, :], out=ws(name, shape, columns.dtype))
    tmp = ws(name + "+", shape, columns.dtype)
    for j in range(1, b.shape[-2]):
        out += np.multiply(columns[j], b[..., j : j + 1, :], out=tmp)
    return out


def find_patterns(codes: np.ndarray):
    """One row of each pattern, in the order of their keys, the pattern of each
    row and the rows sorted by their keys (stable): ``(first, ids, order)``."""
    order = np.argsort(codes, kind="stable")  # a radix sort for keys of 16 bits or less
    key = codes[order]
    if key.dtype.kind == "V":  # masks of more than 64 features: compared byte by byte
        key = key.view(np.uint8).reshape(len(key), -1)
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    if key.ndim == 1:
        np.not_equal(key[1:], key[:-1], out=new[1:])
    else:
        np.any(key[1:] != key[:-1], axis=1, out=new[1:])
    ids = np.empty(len(key), dtype=np.intp)
    ids[order] = np.cumsum(new) - 1
    return order[new], ids, order


def pattern_sums(values: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
    """``out[i] += values[:, ids == i].sum(axis=1)``: ``values`` (K, n), ``out``
    (n_ids, K)."""
    for k, v in enumerate(values):
        out[:, k] += np.bincount(ids, weights=v, minlength=len(out))


def pattern_codes(miss: np.ndarray) -> np.ndarray:
    """One sortable key per row's missing-feature mask: its bits packed into an
    unsigned integer (up to 64 features; feature ``j`` is bit ``j``), or into bytes
    compared as one value beyond."""
    n, d = miss.shape
    width = -(-d // 8)
    if d % 8:
        padded = np.zeros((n, 8 * width), dtype=bool)
        padded[:, :d] = miss
        miss = padded
    # packing the flat mask: much faster than along axis 1, the same bytes
    packed = np.packbits(np.ascontiguousarray(miss).reshape(-1), bitorder="little")
    packed = packed.reshape(n, width)
    if width > 8:
        return packed.view(np.dtype((np.void, width))).ravel()
    size = 1 << (width - 1).bit_length()  # 1, 2, 4 or 8 bytes
    if size != width:
        codes = np.zeros((n, size), dtype=np.uint8)
        codes[:, :width] = packed
        packed = codes
    return packed.view(f"<u{size}").ravel()
