"""Per-chunk numerics: pure NumPy, no Dask.

Every function here works on one in-memory block of rows and all components at
once. The block is walked through in sub-blocks of a few thousand rows so that
the working set (``n_components x rows x n_features``) stays in cache whatever
the Dask chunk size is.

Numerics follow scikit-learn: log-densities from the Cholesky factor of the
precision, responsibilities by log-sum-exp. The sufficient statistics are
centred on the current means ``m_k`` (the same shift for every chunk, so chunk
results add up) and accumulated in float64 whatever the data dtype::

    N_k = sum_n r_nk
    s_k = sum_n r_nk (x_n - m_k)
    S_k = sum_n r_nk (x_n - m_k)(x_n - m_k)^T      (diag/spherical: the diagonal;
                                                    tied: summed over k)

Two-dimensional products are ``np.dot``, not ``@``: NumPy's matmul holds the
GIL around BLAS (numpy#11821), which serialises the chunk tasks of the threaded
scheduler and of multi-threaded workers, and ``np.dot`` releases it. Stacked
per-component products stay one ``np.matmul``: a loop of K ``np.dot`` calls
costs more in calls and GIL hand-overs than it gains (measured on threads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "StatsLayout",
    "chunk_statistics",
    "chunk_assignment_statistics",
    "chunk_random_statistics",
    "chunk_kmeans_parallel_round",
    "chunk_nearest_counts",
    "chunk_log_prob",
    "chunk_responsibilities",
    "chunk_labels",
    "chunk_score_samples",
    "log_det_cholesky",
]

#: Elements of one ``(n_components, rows, n_features)`` work array: about 2,000
#: rows at K=8, D=16, the fastest on two threads (smaller sub-blocks pay more
#: per-call overhead and GIL hand-overs, larger ones fall out of cache).
_WORKSET_ELEMENTS = 1 << 18
#: Bytes of the feature array of :class:`_Expanded` per sub-block.
_FEATURES_BYTES = 1 << 21
#: Largest Mahalanobis distance between the mean of the means and any mean for
#: which diagonal, spherical and tied models use expanded features (:class:`_Expanded`):
#: their relative rounding error is about this times float64's epsilon.
_MAX_EXPANSION = 1e6
#: Rows per sub-block of the nearest-centre kernels (:class:`_Nearest`).
_NEAREST_ROWS = 8192
_LOG_2PI = math.log(2.0 * math.pi)


def _block_rows(n_components: int, n_features: int, expanded: bool = False) -> int:
    if expanded:
        rows = _FEATURES_BYTES // ((2 * n_features + 1) * 8)
    else:
        rows = _WORKSET_ELEMENTS // max(1, n_components * n_features)
    return int(min(16384, max(256, rows)))


# ---------------------------------------------------------------------------
# Layout of the flat statistics vector that one chunk returns
# ---------------------------------------------------------------------------

_SECOND_MOMENT_SHAPE = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
    "spherical": lambda k, d: (k, d),
}


@dataclass(frozen=True)
class StatsLayout:
    """Where each statistic sits in the flat float64 vector of one chunk.

    The vector is ``[log_lik_sum, n_rows, n_nonfinite, N (K), s (K*D), S (...)]``
    so that summing vectors of chunks sums every statistic.
    """

    n_components: int
    n_features: int
    covariance_type: str

    @property
    def second_moment_shape(self) -> tuple[int, ...]:
        return _SECOND_MOMENT_SHAPE[self.covariance_type](self.n_components, self.n_features)

    @property
    def size(self) -> int:
        k, d = self.n_components, self.n_features
        return 3 + k + k * d + math.prod(self.second_moment_shape)

    def split(self, vec: np.ndarray) -> dict[str, np.ndarray | float]:
        k, d = self.n_components, self.n_features
        i = 3
        nk = vec[i : i + k]
        i += k
        sk = vec[i : i + k * d].reshape(k, d)
        i += k * d
        Sk = vec[i:].reshape(self.second_moment_shape)
        return {
            "log_lik_sum": float(vec[0]),
            "n_samples": float(vec[1]),
            "n_nonfinite": float(vec[2]),
            "nk": nk,
            "sk": sk,
            "Sk": Sk,
        }


# ---------------------------------------------------------------------------
# Log-densities
# ---------------------------------------------------------------------------


def log_det_cholesky(precisions_cholesky: np.ndarray, covariance_type: str, n_features: int):
    """log|det| of the precision Cholesky factor (half the precision's log-det)."""
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "full":
        return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(pc)).sum()
    if covariance_type == "diag":
        return np.log(pc).sum(axis=1)
    return n_features * np.log(pc)


class _Workspace:
    """Work arrays kept from one sub-block to the next.

    Fresh arrays of a few MiB per sub-block would each be mapped and faulted
    in anew; page faults serialise the threads of a process, so reusing the
    arrays is what lets chunk tasks on threads run in parallel.
    """

    def __init__(self):
        self._arrays = {}

    def __call__(self, name, shape, dtype=np.float64):
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype=dtype)
        return a


def _sum_squares(y, out):
    """Row sums of squares over the last axis, squaring ``y`` in place (a GEMV,
    not a reduction); ``out`` has ``y``'s leading shape."""
    np.square(y, out=y)
    ones = np.ones(y.shape[-1], dtype=y.dtype)
    np.dot(y.reshape(-1, y.shape[-1]), ones, out=out.reshape(-1))
    return out


def _mahalanobis(diff, pc, covariance_type, ws):
    """Squared Mahalanobis distances (K, rows) of centred data, data dtype."""
    y = ws("y", diff.shape, diff.dtype)
    if covariance_type == "full":
        np.matmul(diff, pc, out=y)
    elif covariance_type == "tied":
        k, b, d = diff.shape
        np.dot(diff.reshape(k * b, d), pc, out=y.reshape(k * b, d))
    elif covariance_type == "diag":
        np.multiply(diff, pc[:, None, :], out=y)
    else:
        np.copyto(y, diff)
    maha = _sum_squares(y, ws("maha", diff.shape[:2], diff.dtype))
    if covariance_type == "spherical":
        maha *= np.square(pc)[:, None]
    return maha


def _row_weighted_sums(r_t, a):
    """``sum_n r[k, n] a[k, n, :]`` for every k: (K, D)."""
    return np.matmul(r_t[:, None, :], a)[:, 0, :]


def _second_moment(diff, r_t, covariance_type, ws):
    """``sum_n r_nk (x_n - m_k)(x_n - m_k)^T`` in the layout of the covariance type."""
    wd = ws("weighted", diff.shape, diff.dtype)
    if covariance_type in ("diag", "spherical"):
        np.square(diff, out=wd)
        return _row_weighted_sums(r_t, wd)
    np.multiply(diff, r_t[:, :, None], out=wd)
    if covariance_type == "full":
        return np.matmul(wd.transpose(0, 2, 1), diff)
    k, b, d = diff.shape
    return np.dot(wd.reshape(k * b, d).T, diff.reshape(k * b, d))


class _Model:
    """The parameters of one E-step, cast once to the data's dtype."""

    def __init__(self, weights, means, precisions_cholesky, covariance_type, dtype):
        means = np.asarray(means, dtype=np.float64)
        self.n_components, self.n_features = means.shape
        self.covariance_type = covariance_type
        self.means = means.astype(dtype, copy=False)
        self.pc = np.asarray(precisions_cholesky, dtype=np.float64).astype(dtype, copy=False)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(weights, dtype=np.float64))
        self.offset = (
            log_w
            + log_det_cholesky(precisions_cholesky, covariance_type, self.n_features)
            - 0.5 * self.n_features * _LOG_2PI
        )
        expansion = _EXPANSIONS.get(covariance_type)
        self.expanded = expansion and expansion.of(means, precisions_cholesky, self.offset)

    def log_prob_and_work(self, block, ws):
        """Weighted log-probs ``log w_k + log N(x | m_k, P_k^-1)``, (K, rows) float64,
        of a sub-block, and the array that its statistics are taken from: the
        features of :class:`_Expanded` where it applies, else the centred data.

        Components are the leading axis so that reductions over components are
        elementwise operations across K contiguous rows.
        """
        wlp = ws("wlp", (self.n_components, block.shape[0]))
        if self.expanded is not None:
            work = self.expanded.features(block, ws)
            with np.errstate(invalid="ignore", over="ignore"):  # rows with inf: NaN
                self.expanded.log_prob(work, ws, out=wlp)
            return wlp, work
        work = _centred(block, self.means, ws)
        wlp[...] = _mahalanobis(work, self.pc, self.covariance_type, ws)
        wlp *= -0.5
        wlp += self.offset[:, None]
        return wlp, work


def _centred(block, centers, ws):
    """``x - c_k`` for every centre: (K, rows, D) in the dtype of ``centers``."""
    out = ws("diff", (centers.shape[0],) + block.shape, centers.dtype)
    np.subtract(block[None, :, :], centers[:, None, :], out=out)
    return out


class _Expanded:
    """Distances and statistics as small GEMMs over features of ``x~ = x - c``, in float64.

    ``c`` is the mean of the means and ``d_k = m_k - c``. Expanding
    ``(x~ - d_k)^T P_k (x~ - d_k)`` makes every component's distance a product
    of per-component coefficients with features of ``x~`` shared by all
    components, and the statistics sums of those features, shifted to ``m_k``
    afterwards: no (K, rows, D) centred array. Rounding grows with the
    Mahalanobis distance between ``c`` and a mean (cancellation), so an
    expansion is used only while that stays below :data:`_MAX_EXPANSION`.
    Subclasses: :class:`_DiagonalExpansion` (diag, spherical) and
    :class:`_TiedExpansion`.
    """

    @staticmethod
    def _shift(means):
        means = np.asarray(means, dtype=np.float64)
        shift = means.mean(axis=0)
        return shift, means - shift

    @staticmethod
    def _close_enough(const):
        return bool(np.all(const <= _MAX_EXPANSION))  # also refuses NaN


class _DiagonalExpansion(_Expanded):
    """Diagonal and spherical precisions ``p_k``, features ``f(x) = [x~^2, x~, 1]``::

        sum_j p_kj (x~_j - d_kj)^2 = [p_k, -2 p_k d_k, sum_j p_kj d_kj^2] . f(x)
    """

    def __init__(self, shift, delta, coef):
        self.shift, self.delta, self.coef = shift, delta, coef

    @classmethod
    def of(cls, means, precisions_cholesky, offset):
        shift, delta = cls._shift(means)
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        p = np.broadcast_to(np.square(pc if pc.ndim == 2 else pc[:, None]), delta.shape)
        const = (p * np.square(delta)).sum(axis=1)
        if not cls._close_enough(const):
            return None
        # -0.5 * distance + offset in one product: the offset joins the constant feature.
        coef = -0.5 * np.concatenate([p, -2.0 * p * delta, const[:, None]], axis=1)
        coef[:, -1] += offset
        return cls(shift, delta, coef)

    def features(self, block, ws):
        d = block.shape[1]
        f = ws("features", (2 * d + 1, block.shape[0]))
        np.subtract(block.T, self.shift[:, None], out=f[d : 2 * d])
        np.square(f[d : 2 * d], out=f[:d])
        f[2 * d] = 1.0
        return f

    def log_prob(self, features, ws, out):
        return np.dot(self.coef, features, out=out)

    def moments(self, features, resp):
        """``N_k``, ``s_k`` and the diagonal of ``S_k``, centred on the means."""
        d = self.delta.shape[1]
        sums = np.dot(resp, features.T)  # (K, 2D + 1): sum r x~^2, sum r x~, sum r
        nk, sx = sums[:, 2 * d], sums[:, d : 2 * d]
        sk = sx - nk[:, None] * self.delta
        Sk = sums[:, :d] - 2.0 * self.delta * sx + nk[:, None] * np.square(self.delta)
        return nk, sk, Sk


class _TiedExpansion(_Expanded):
    """One precision ``P = U U^T`` for all components, features ``f(x) = [x~, 1]``::

        (x~ - d_k)^T P (x~ - d_k) = |U^T x~|^2 + [-2 P d_k, d_k^T P d_k] . f(x)

    The first term is shared by all components. The statistics need
    ``sum_n x~ x~^T`` once, since the responsibilities of a row sum to one.
    """

    def __init__(self, shift, delta, pc, coef):
        self.shift, self.delta, self.pc, self.coef = shift, delta, pc, coef

    @classmethod
    def of(cls, means, precisions_cholesky, offset):
        shift, delta = cls._shift(means)
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        pd = np.dot(delta, np.dot(pc, pc.T))  # (K, D): P d_k
        const = np.einsum("kd,kd->k", pd, delta)
        if not cls._close_enough(const):
            return None
        coef = -0.5 * np.concatenate([-2.0 * pd, const[:, None]], axis=1)
        coef[:, -1] += offset
        return cls(shift, delta, pc, coef)

    def features(self, block, ws):
        d = block.shape[1]
        f = ws("features", (d + 1, block.shape[0]))
        np.subtract(block.T, self.shift[:, None], out=f[:d])
        f[d] = 1.0
        return f

    def log_prob(self, features, ws, out):
        d = self.delta.shape[1]
        z = ws("whitened", (d, features.shape[1]))
        np.dot(self.pc.T, features[:d], out=z)
        np.square(z, out=z)
        np.dot(self.coef, features, out=out)
        out -= 0.5 * z.sum(axis=0)
        return out

    def moments(self, features, resp):
        """``N_k``, ``s_k`` and the tied ``S``, centred on the means."""
        d = self.delta.shape[1]
        x = features[:d]
        sums = np.dot(resp, features.T)  # (K, D + 1): sum r x~, sum r
        nk, sx = sums[:, d], sums[:, :d]
        sk = sx - nk[:, None] * self.delta
        cross = np.dot(self.delta.T, sx)
        S = np.dot(x, x.T) - cross - cross.T + np.dot(self.delta.T * nk, self.delta)
        return nk, sk, S


_EXPANSIONS = {"diag": _DiagonalExpansion, "spherical": _DiagonalExpansion, "tied": _TiedExpansion}


def _normalise_in_place(wlp):
    """Turn weighted log-probs (K, rows) into responsibilities, in place.

    Returns the per-row log-sum-exp. A hand-written max/exp/sum/log is faster
    than scipy's ``logsumexp`` here and never exponentiates unnormalised values.
    """
    mx = wlp.max(axis=0)
    mx[~np.isfinite(mx)] = 0.0
    wlp -= mx
    np.exp(wlp, out=wlp)
    tot = wlp.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wlp /= tot
        lse = np.log(tot)
    lse += mx
    return lse


def _as_2d(block):
    if block.ndim != 2:
        raise ValueError(f"expected a 2-D block of rows, got shape {block.shape}")
    return block


# ---------------------------------------------------------------------------
# Chunk kernels called by the orchestration layer
# ---------------------------------------------------------------------------


class _Accumulator:
    """The flat statistics row of one chunk, and views of its parts."""

    def __init__(self, n_components, n_features, covariance_type):
        self.covariance_type = covariance_type
        layout = StatsLayout(n_components, n_features, covariance_type)
        self.out = np.zeros(layout.size, dtype=np.float64)
        parts = layout.split(self.out)  # views into ``out``
        self.nk, self.sk, self.Sk = parts["nk"], parts["sk"], parts["Sk"]

    def add(self, diff, resp, finite, score, ws, expanded=None):
        """Add a sub-block: centred data (K, b, D), responsibilities (K, b).

        With ``expanded`` (an :class:`_Expanded`), ``diff`` holds its features
        (one row per feature, b columns) instead. Rows where ``finite`` is False are counted and left
        out; ``score`` (b,) is summed into the first entry (log-likelihood or
        inertia). ``ws`` is the chunk's :class:`_Workspace`.
        """
        if not finite.all():
            self.out[2] += np.count_nonzero(~finite)
            resp[:, ~finite] = 0.0
            if expanded is None:
                diff[:, ~finite, :] = 0.0
            else:
                diff[:, ~finite] = 0.0
            score = score[finite]
        self.out[0] += score.sum()
        if expanded is not None:
            nk, sk, Sk = expanded.moments(diff, resp)
            self.nk += nk
            self.sk += sk
            self.Sk += Sk
            return
        if resp.dtype == diff.dtype:
            r_t = resp
        else:
            r_t = ws("resp", resp.shape, diff.dtype)
            np.copyto(r_t, resp, casting="same_kind")
        self.nk += resp.sum(axis=1, dtype=np.float64)
        self.sk += _row_weighted_sums(r_t, diff)
        self.Sk += _second_moment(diff, r_t, self.covariance_type, ws)

    def result(self, n_rows):
        self.out[1] = n_rows
        return self.out[None, :]


def chunk_statistics(block, weights, means, precisions_cholesky, covariance_type):
    """E-step and sufficient statistics of one chunk, as a (1, size) float64 row.

    Non-finite input rows make the row's log-likelihood non-finite; they are
    counted (``n_nonfinite``) in the same pass instead of scanning the data twice.
    """
    block = _as_2d(block)
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    acc = _Accumulator(model.n_components, model.n_features, covariance_type)
    step = _block_rows(model.n_components, model.n_features, model.expanded is not None)
    ws = _Workspace()
    for start in range(0, block.shape[0], step):
        resp, work = model.log_prob_and_work(block[start : start + step], ws)
        lse = _normalise_in_place(resp)
        acc.add(work, resp, np.isfinite(lse), lse, ws, model.expanded)
    return acc.result(block.shape[0])


def chunk_assignment_statistics(block, centers, covariance_type):
    """Statistics of a hard assignment of each row to its nearest centre.

    The same layout as :func:`chunk_statistics` (centred on ``centers``), with
    ``log_lik_sum`` holding the k-means inertia (sum of squared distances).
    Rows are grouped by their centre (:class:`_Nearest`), so that each is
    centred on its own centre only, in float64.
    """
    block = _as_2d(block)
    centers = np.asarray(centers, dtype=np.float64)
    k, d = centers.shape
    acc = _Accumulator(k, d, covariance_type)
    nearest = _Nearest(centers)
    for start in range(0, block.shape[0], _NEAREST_ROWS):
        label, d2, diff = nearest(block[start : start + _NEAREST_ROWS])
        finite = np.isfinite(d2)
        acc.out[2] += np.count_nonzero(~finite)
        acc.out[0] += d2[finite].sum()
        counts = np.bincount(label[finite], minlength=k)
        order = np.argsort(np.where(finite, label, k), kind="stable")  # rows left out go last
        grouped = diff[order[: counts.sum()]]
        ends = np.cumsum(counts)
        for j in np.flatnonzero(counts):
            own = grouped[ends[j] - counts[j] : ends[j]]  # rows of centre j, less centre j
            acc.nk[j] += counts[j]
            acc.sk[j] += own.sum(axis=0)
            if covariance_type == "full":
                acc.Sk[j] += np.dot(own.T, own)
            elif covariance_type == "tied":
                acc.Sk += np.dot(own.T, own)
            else:
                acc.Sk[j] += np.einsum("nd,nd->d", own, own)
    return acc.result(block.shape[0])


def _row_uniforms(seed, row_start, n_rows, n_columns, stream=0):
    """Uniform draws for rows ``row_start:row_start+n_rows``, the same whatever the chunking.

    Philox is counter-based: row i always starts at counter ``i * ceil(K/4)``;
    ``stream`` selects an independent sequence for the same seed.
    """
    per_row = -(-n_columns // 4)
    counter = np.array([row_start * per_row, 0, 0, 0], dtype=np.uint64)
    key = np.array([seed, stream], dtype=np.uint64)
    gen = np.random.Generator(np.random.Philox(key=key, counter=counter))
    return gen.random((n_rows, 4 * per_row))[:, :n_columns]


def chunk_random_statistics(block, centers, covariance_type, seed, block_info=None):
    """Statistics of random responsibilities (scikit-learn's ``init_params='random'``).

    Each row's draws depend on the seed and its global row index only, so the
    result does not depend on the chunking.
    """
    block = _as_2d(block)
    centers = np.asarray(centers, dtype=np.float64)
    k, d = centers.shape
    row0 = block_info[0]["array-location"][0][0] if block_info else 0
    acc = _Accumulator(k, d, covariance_type)
    c = centers.astype(block.dtype, copy=False)
    step = _block_rows(k, d)
    ws = _Workspace()
    for start in range(0, block.shape[0], step):
        diff = _centred(block[start : start + step], c, ws)
        b = diff.shape[1]
        resp = _row_uniforms(seed, row0 + start, b, k).T.copy()
        resp /= resp.sum(axis=0)
        finite = np.isfinite(diff).all(axis=(0, 2))
        acc.add(diff, resp, finite, np.zeros(b), ws)
    return acc.result(block.shape[0])


class _Nearest:
    """Index of the nearest centre and the squared distance to it, for each row.

    The ranking comes from one float64 GEMM, ``[x, 1] . [-2 c, |c|^2]`` (the
    squared distance less ``|x|^2``, which every centre shares); the distance
    to the chosen centre is then recomputed directly, so that it is exact (zero
    for a row equal to a centre) whatever the offset of the data. Returns the
    labels, the squared distances and the rows less their centre (float64, a
    buffer reused by the next call). Rows with a NaN or infinity get a
    non-finite distance.
    """

    def __init__(self, centers):
        self.centers = np.asarray(centers, dtype=np.float64)
        c = self.centers
        self.coef = np.concatenate([-2.0 * c, np.einsum("kd,kd->k", c, c)[:, None]], axis=1)
        self.ws = _Workspace()

    def __call__(self, block):
        n, d = block.shape
        x = self.ws("x", (n, d + 1))
        x[:, :d] = block
        x[:, d] = 1.0
        ranking = np.dot(x, self.coef.T, out=self.ws("ranking", (n, len(self.coef))))
        label = ranking.argmin(axis=1)
        diff = np.subtract(x[:, :d], self.centers[label], out=self.ws("diff", (n, d)))
        return label, np.einsum("nd,nd->n", diff, diff), diff


def chunk_kmeans_parallel_round(block, centers, oversampling, seed, round_, block_info=None):
    """One k-means|| round on one chunk: its cost and its sampled rows, in one pass.

    Row x is selected when ``u_x * phi < l * d^2(x, C)`` with ``u_x`` a uniform
    draw fixed by (seed, round, global row index) and ``phi`` the cost of the
    whole data set, which no chunk knows. Since ``phi >= phi_chunk``, every row
    that can be selected satisfies ``u_x * phi_chunk < l * d^2``: the chunk
    returns those (at most ``l`` expected) with ``d^2`` and ``u``, and the client
    applies the exact test once ``phi`` is summed. Returns
    ``(phi_chunk, n_nonfinite, rows, d2, u, row_index)``.
    """
    block = _as_2d(block)
    row0 = block_info[0]["array-location"][0][0] if block_info else 0
    n, d = block.shape
    phi, bad = 0.0, 0
    keep_rows, keep_d2, keep_u, keep_idx = [], [], [], []
    if n:
        d2 = np.empty(n)
        nearest = _Nearest(centers)
        for start in range(0, n, _NEAREST_ROWS):
            d2[start : start + _NEAREST_ROWS] = nearest(block[start : start + _NEAREST_ROWS])[1]
        finite = np.isfinite(d2)
        bad = int(np.count_nonzero(~finite))
        d2[~finite] = 0.0
        phi = float(d2.sum())
        u = _row_uniforms(seed, row0, n, 1, stream=round_ + 1)[:, 0]
        sel = np.flatnonzero(u * phi < oversampling * d2)
        keep_rows.append(block[sel].astype(np.float64))
        keep_d2.append(d2[sel])
        keep_u.append(u[sel])
        keep_idx.append(sel + row0)
    empty = np.empty(0)
    return (
        phi,
        bad,
        np.concatenate(keep_rows) if keep_rows else np.empty((0, d)),
        np.concatenate(keep_d2) if keep_d2 else empty,
        np.concatenate(keep_u) if keep_u else empty,
        np.concatenate(keep_idx) if keep_idx else np.empty(0, dtype=np.int64),
    )


def chunk_nearest_counts(block, centers):
    """Number of rows nearest to each centre, as a (1, n_centers) float64 row."""
    block = _as_2d(block)
    k = len(centers)
    counts = np.zeros(k)
    nearest = _Nearest(centers)
    for start in range(0, block.shape[0], _NEAREST_ROWS):
        label, d2, _ = nearest(block[start : start + _NEAREST_ROWS])
        counts += np.bincount(label[np.isfinite(d2)], minlength=k)
    return counts[None, :]


def _map_rows(block, weights, means, precisions_cholesky, covariance_type, per_block, width, dtype):
    """A per-row result, sub-block by sub-block. Rows with a non-finite value get
    ``-1`` (integer results) or NaN: they have no label, probability or density."""
    block = _as_2d(block)
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    n = block.shape[0]
    shape = (n,) if width is None else (n, model.n_components)
    out = np.empty(shape, dtype=dtype)
    step = _block_rows(model.n_components, model.n_features, model.expanded is not None)
    ws = _Workspace()
    for start in range(0, n, step):
        sub = block[start : start + step]
        wlp = model.log_prob_and_work(sub, ws)[0]
        part = per_block(wlp)
        bad = ~np.isfinite(sub).all(axis=1)
        if bad.any():
            part[bad] = -1 if np.dtype(dtype).kind == "i" else np.nan
        out[start : start + step] = part
    return out


def chunk_log_prob(block, weights, means, precisions_cholesky, covariance_type):
    """Weighted log-probabilities ``log w_k + log N(x | k)``, shape (rows, K)."""
    return _map_rows(
        block, weights, means, precisions_cholesky, covariance_type, lambda w: w.T, "K", np.float64
    )


def chunk_score_samples(block, weights, means, precisions_cholesky, covariance_type):
    """Log-likelihood of each row under the mixture, shape (rows,)."""
    return _map_rows(
        block,
        weights,
        means,
        precisions_cholesky,
        covariance_type,
        _normalise_in_place,
        None,
        np.float64,
    )


def chunk_responsibilities(block, weights, means, precisions_cholesky, covariance_type):
    """Posterior probability of each component for each row, shape (rows, K)."""

    def resp(wlp):
        _normalise_in_place(wlp)
        return wlp.T

    return _map_rows(
        block, weights, means, precisions_cholesky, covariance_type, resp, "K", np.float64
    )


def chunk_labels(block, weights, means, precisions_cholesky, covariance_type):
    """Most probable component of each row, shape (rows,), int64."""
    return _map_rows(
        block,
        weights,
        means,
        precisions_cholesky,
        covariance_type,
        lambda w: w.argmax(axis=0),
        None,
        np.int64,
    )
