"""Per-chunk numerics: pure NumPy, no Dask.

Every function here works on one in-memory block of rows and all components at
once. The block is walked through in sub-blocks of a few thousand rows so that
the work arrays stay in cache whatever the Dask chunk size is. The math of each
covariance type (distances, second moments, its fast path) is in
:mod:`daskgmm.covariance`; this module arranges it per chunk.

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

import numpy as np

from .covariance import COVARIANCE
from .params import StatsLayout
from .recovery import worst_rows

__all__ = [
    "Accumulator",
    "Workspace",
    "as_2d",
    "row_weights",
    "chunk_labels",
    "chunk_log_prob",
    "chunk_random_statistics",
    "chunk_responsibilities",
    "chunk_score_samples",
    "chunk_statistics",
    "row_uniforms",
]

#: Elements of one ``(n_components, rows, n_features)`` work array of the centred
#: path: about 2,000 rows at K=8, D=16, the fastest on two threads (smaller
#: sub-blocks pay more per-call overhead and GIL hand-overs, larger ones fall
#: out of cache).
_WORKSET_ELEMENTS = 1 << 18
#: Bytes of the work arrays of an expansion per sub-block.
_EXPANDED_BYTES = 1 << 21
_LOG_2PI = math.log(2.0 * math.pi)


def _block_rows(n_components: int, n_features: int, expansion=None) -> int:
    if expansion is not None:
        rows = _EXPANDED_BYTES // expansion.row_bytes
    else:
        rows = _WORKSET_ELEMENTS // max(1, n_components * n_features)
    return int(min(16384, max(256, rows)))


class Workspace:
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


def _row_weighted_sums(r_t, a):
    """``sum_n r[k, n] a[k, n, :]`` for every k: (K, D)."""
    return np.matmul(r_t[:, None, :], a)[:, 0, :]


class _Model:
    """The parameters of one E-step, cast once to the data's dtype."""

    def __init__(self, weights, means, precisions_cholesky, covariance_type, dtype):
        means = np.asarray(means, dtype=np.float64)
        self.n_components, self.n_features = means.shape
        self.cov = COVARIANCE[covariance_type]
        self.means = means.astype(dtype, copy=False)
        # what centring on the means in the data's dtype adds (the accumulator removes it)
        self.rounding = self.means.astype(np.float64) - means
        # ... and its terms in the distances (x - m = (x - c) + rounding):
        # |x - m|_P^2 = |x - c|_P^2 + 2 (x - c)^T P rounding + rounding^T P rounding
        self.correction = None
        if self.rounding.any():
            p_r = self.cov.precision_times(precisions_cholesky, self.rounding)
            self.correction = (p_r.astype(dtype), np.einsum("kd,kd->k", self.rounding, p_r))
        self.pc = np.asarray(precisions_cholesky, dtype=np.float64).astype(dtype, copy=False)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(weights, dtype=np.float64))
        self.offset = (
            log_w
            + self.cov.log_det_cholesky(precisions_cholesky, self.n_features)
            - 0.5 * self.n_features * _LOG_2PI
        )
        self.expanded = self.cov.expansion(means, precisions_cholesky, self.offset, np.dtype(dtype))

    @property
    def block_rows(self) -> int:
        return _block_rows(self.n_components, self.n_features, self.expanded)

    def log_prob_and_work(self, block, ws):
        """Weighted log-probs ``log w_k + log N(x | m_k, P_k^-1)``, (K, rows) float64,
        of a sub-block, and the array that its statistics are taken from: the
        features of the type's :class:`~daskgmm.covariance.Expansion` where it
        applies, else the centred data.

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
        wlp[...] = self.cov.mahalanobis(work, self.pc, ws)
        if self.correction is not None:
            p_r, const = self.correction
            wlp += 2.0 * np.matmul(work, p_r[:, :, None])[:, :, 0]
            wlp += const[:, None]
        wlp *= -0.5
        wlp += self.offset[:, None]
        return wlp, work


def _centred(block, centers, ws):
    """``x - c_k`` for every centre: (K, rows, D) in the dtype of ``centers``."""
    out = ws("diff", (centers.shape[0],) + block.shape, centers.dtype)
    np.subtract(block[None, :, :], centers[:, None, :], out=out)
    return out


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


def as_2d(block):
    if block.ndim != 2:
        raise ValueError(f"expected a 2-D block of rows, got shape {block.shape}")
    return block


# ---------------------------------------------------------------------------
# Chunk kernels called by the orchestration layer
# ---------------------------------------------------------------------------


class Accumulator:
    """The flat statistics row of one chunk, and views of its parts."""

    def __init__(self, n_components, n_features, covariance_type, expanded=None, offset=None):
        self.cov = COVARIANCE[covariance_type]
        self.expanded = expanded
        self.offset = offset  # centres actually used less those reported, (K, D) float64
        self.sums = None if expanded is None else expanded.new_sums()
        layout = StatsLayout(n_components, n_features, covariance_type)
        self.out = np.zeros(layout.size, dtype=np.float64)
        parts = layout.split(self.out)  # views into ``out``
        self.nk, self.sk, self.Sk = parts["nk"], parts["sk"], parts["Sk"]

    def add_score(self, score, finite, weight=None) -> None:
        """Count the rows left out (``finite`` False) and add the others' ``score``
        (log-likelihood or inertia, times their ``weight`` if given) to the first
        entry, and their weight (or number) to ``total_weight``."""
        if not finite.all():
            self.out[2] += np.count_nonzero(~finite)
            score = score[finite]
            if weight is not None:
                weight = weight[finite]
        if weight is None:
            self.out[0] += score.sum()
            self.out[3] += len(score)
        else:
            self.out[0] += np.dot(score, weight)
            self.out[3] += weight.sum()

    def add(self, diff, resp, finite, score, ws, weight=None):
        """Add a sub-block: centred data (K, b, D), responsibilities (K, b).

        With an ``expanded`` accumulator (an :class:`~daskgmm.covariance.Expansion`),
        ``diff`` holds its features (one row per feature, b columns) instead.
        Rows where ``finite`` is False are counted and left out; ``score`` (b,)
        is summed into the first entry. ``weight`` (b,): the rows' sample weights,
        which multiply their responsibilities and scores. ``ws`` is the chunk's
        :class:`Workspace`.
        """
        self.add_score(score, finite, weight)
        if weight is not None:
            resp *= weight
        if not finite.all():
            resp[:, ~finite] = 0.0
            if self.expanded is None:
                diff[:, ~finite, :] = 0.0
            else:
                diff[:, ~finite] = 0.0
        if self.expanded is not None:
            self.expanded.accumulate(diff, resp, ws, self.sums, weight)
            return
        if resp.dtype == diff.dtype:
            r_t = resp
        else:
            r_t = ws("resp", resp.shape, diff.dtype)
            np.copyto(r_t, resp, casting="same_kind")
        self.nk += resp.sum(axis=1, dtype=np.float64)
        self.sk += _row_weighted_sums(r_t, diff)
        self.Sk += self.cov.second_moment(diff, r_t, ws)

    def result(self, n_rows):
        if self.expanded is not None:
            self.nk[...], self.sk[...], self.Sk[...] = self.expanded.finish(self.sums)
        elif self.offset is not None and self.offset.any():
            # centred on the means rounded to the data's dtype: move to the means, exactly
            self.cov.shift_second_moment(self.Sk, self.nk, self.sk, self.offset)
            self.sk += self.nk[:, None] * self.offset
        self.out[1] = n_rows
        return self.out[None, :]


def row_weights(sample_weight, n_rows):
    """A chunk's sample weights as a float64 vector (they come as (rows, 1) blocks)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(w) != n_rows:
        raise ValueError(f"sample_weight block has {len(w)} rows, the data block {n_rows}")
    return w


def chunk_statistics(block, weights, means, precisions_cholesky, covariance_type, n_worst=0,
                     sample_weight=None):
    """E-step and sufficient statistics of one chunk, as a (1, size) float64 row.

    Non-finite input rows make the row's log-likelihood non-finite; they are
    counted (``n_nonfinite``) in the same pass instead of scanning the data twice.
    ``sample_weight`` (the chunk's weights, one per row) multiplies each row's
    responsibilities and log-likelihood. With ``n_worst``, the row also carries
    the chunk's ``n_worst`` rows of lowest log-likelihood
    (:func:`daskgmm.recovery.worst_rows`, flattened): the candidates for
    re-seeding a collapsed component, found in the same pass.
    """
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    acc = Accumulator(model.n_components, model.n_features, covariance_type, model.expanded,
                      model.rounding)
    step = model.block_rows
    ws = Workspace()
    log_lik = np.empty(block.shape[0]) if n_worst else None
    for start in range(0, block.shape[0], step):
        resp, work = model.log_prob_and_work(block[start : start + step], ws)
        lse = _normalise_in_place(resp)
        if n_worst:
            log_lik[start : start + len(lse)] = lse
        acc.add(work, resp, np.isfinite(lse), lse, ws,
                None if sw is None else sw[start : start + step])
    stats = acc.result(block.shape[0])
    if not n_worst:
        return stats
    if sw is not None:
        log_lik[~(sw > 0)] = np.inf  # a row of weight zero is not a seed
    kept = worst_rows(log_lik, block, n_worst)
    return np.concatenate([stats, kept.reshape(1, -1)], axis=1)


def row_uniforms(seed, row_start, n_rows, n_columns, stream=0):
    """Uniform draws for rows ``row_start:row_start+n_rows``, the same whatever the chunking.

    Philox is counter-based: row i always starts at counter ``i * ceil(K/4)``;
    ``stream`` selects an independent sequence for the same seed.
    """
    per_row = -(-n_columns // 4)
    counter = np.array([row_start * per_row, 0, 0, 0], dtype=np.uint64)
    key = np.array([seed, stream], dtype=np.uint64)
    gen = np.random.Generator(np.random.Philox(key=key, counter=counter))
    return gen.random((n_rows, 4 * per_row))[:, :n_columns]


def chunk_random_statistics(block, centers, covariance_type, seed, sample_weight=None,
                            block_info=None):
    """Statistics of random responsibilities (scikit-learn's ``init_params='random'``).

    Each row's draws depend on the seed and its global row index only, so the
    result does not depend on the chunking.
    """
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    centers = np.asarray(centers, dtype=np.float64)
    k, d = centers.shape
    row0 = block_info[0]["array-location"][0][0] if block_info else 0
    c = centers.astype(block.dtype, copy=False)
    acc = Accumulator(k, d, covariance_type, offset=c.astype(np.float64) - centers)
    step = _block_rows(k, d)
    ws = Workspace()
    for start in range(0, block.shape[0], step):
        diff = _centred(block[start : start + step], c, ws)
        b = diff.shape[1]
        resp = row_uniforms(seed, row0 + start, b, k).T.copy()
        resp /= resp.sum(axis=0)
        finite = np.isfinite(diff).all(axis=(0, 2))
        acc.add(diff, resp, finite, np.zeros(b), ws, None if sw is None else sw[start : start + b])
    return acc.result(block.shape[0])


def _map_rows(block, weights, means, precisions_cholesky, covariance_type, per_block, width, dtype):
    """A per-row result, sub-block by sub-block. Rows with a non-finite value get
    ``-1`` (integer results) or NaN: they have no label, probability or density."""
    block = as_2d(block)
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    n = block.shape[0]
    shape = (n,) if width is None else (n, model.n_components)
    out = np.empty(shape, dtype=dtype)
    step = model.block_rows
    ws = Workspace()
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
