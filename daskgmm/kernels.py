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

An EM pass over rows that a covariance type's expansion applies to runs the
compiled kernels of :mod:`daskgmm.fused` instead (:data:`FUSED`): one call per
chunk, which holds no GIL, and so are its rows with NaN but where the
expansion does not apply; the loop below stays for the centred path and for
log-probabilities alone.

Two-dimensional products are ``np.dot``, not ``@``: NumPy's matmul holds the
GIL around BLAS (numpy#11821), which serialises the chunk tasks of the threaded
scheduler and of multi-threaded workers, and ``np.dot`` releases it. Stacked
per-component products stay one ``np.matmul``: a loop of K ``np.dot`` calls
costs more in calls and GIL hand-overs than it gains (measured on threads).
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from . import fused
from .covariance import COVARIANCE
from .missing import Marginal, has_missing
from .params import StatsLayout
from .recovery import WorstRows

__all__ = [
    "Accumulator",
    "Workspace",
    "as_2d",
    "row_weights",
    "chunk_impute",
    "chunk_labels",
    "chunk_log_prob",
    "chunk_random_statistics",
    "chunk_responsibilities",
    "chunk_score_samples",
    "chunk_split_scores",
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
#: Where a sub-block's log-responsibilities less each row's maximum go below
#: this, they are floored to it before ``exp`` and responsibilities under
#: ``_FLUSHED`` (1.5e-304) set to exactly 0 after. Left alone, those of
#: well-separated clusters are subnormal (e^-708 to e^-745) or underflow, and
#: NumPy's ``exp`` takes its slow path on them (8 x 3,787 values: 2,000 us where
#: they are subnormal, 300 us where they underflow to 0, against 29 us), as do
#: the statistics' products: separated clusters, 100,000 x 16, K=8, diag, ran at
#: 0.035 s a chunk against 0.009 s for overlapping ones. Responsibilities above
#: about 1e-288 are bitwise unchanged; a row's log-likelihood changes by under
#: 1e-300 relative; the other sub-blocks take ``exp`` alone, as before.
_LOG_TINY = -700.0
_FLUSHED = 1.5 * math.exp(_LOG_TINY)
#: Most bytes of work arrays that a thread keeps from one chunk task to the next.
_RETAINED_BYTES = 16 << 20
_THREAD = threading.local()
#: Whether an EM pass over rows that an expansion applies to runs the compiled
#: kernels of :mod:`daskgmm.fused` (False: the NumPy sub-block loop, kept for
#: the centred path and as the reference the tests compare them with).
FUSED = True
#: rows of a sub-block of the compiled kernels for rows with NaN (daskgmm.fused)
_FUSED_MARGINAL_ROWS = 1024


def _block_rows(n_components: int, n_features: int, expansion=None) -> int:
    if expansion is not None:
        rows = _EXPANDED_BYTES // expansion.row_bytes
        if expansion.max_rows is not None:
            rows = min(rows, expansion.max_rows)
    else:
        rows = _WORKSET_ELEMENTS // max(1, n_components * n_features)
    return int(min(16384, max(256, rows)))


class Workspace:
    """Work arrays kept from one sub-block to the next, and from one chunk task to
    the next on the same thread (:meth:`of_thread`).

    Fresh arrays of a few MiB per sub-block would each be mapped and faulted
    in anew; page faults serialise the threads of a process, so reusing the
    arrays is what lets chunk tasks on threads run in parallel. A Dask worker
    process returns freed memory to the system at once (its nanny sets
    ``MALLOC_TRIM_THRESHOLD_``), so there work arrays made afresh for each task
    cost their page faults again every task: measured with that setting, a diag
    chunk took 29 ms against 22 without it, 51 ms against 33 with NaN.
    """

    def __init__(self):
        self._arrays = {}
        self._busy = False

    @classmethod
    @contextlib.contextmanager
    def of_thread(cls):
        """This thread's workspace for one chunk task (a fresh one when it is
        already in use further up the stack). At the end the largest buffers are
        dropped until what stays is at most :data:`_RETAINED_BYTES` (those of the
        sub-blocks; a chunk's own, such as its rows with NaN, are the largest)."""
        ws = getattr(_THREAD, "workspace", None)
        if ws is None:
            ws = _THREAD.workspace = cls()
        if ws._busy:
            yield cls()
            return
        ws._busy = True
        try:
            yield ws
        finally:
            ws._busy = False
            kept = 0
            for name, a in sorted(ws._arrays.items(), key=lambda item: item[1].nbytes):
                kept += a.nbytes
                if kept > _RETAINED_BYTES:
                    del ws._arrays[name]

    def __call__(self, name, shape, dtype=np.float64):
        """An array of ``shape``: a view of the buffer kept under ``name``, which
        grows when a larger one is asked for (sub-blocks of varying rows reuse it),
        by half again at least: sizes that creep up (the rows kept of successive
        sub-blocks) would otherwise map a fresh buffer each time."""
        size = math.prod(shape)
        a = self._arrays.get(name)
        if a is None or a.dtype != dtype:
            a = self._arrays[name] = np.empty(size, dtype=dtype)
        elif a.size < size:
            a = self._arrays[name] = np.empty(max(size, a.size * 3 // 2), dtype=dtype)
        return a[:size].reshape(shape)


def _row_weighted_sums(r_t, a):
    """``sum_n r[k, n] a[k, n, :]`` for every k: (K, D)."""
    return np.matmul(r_t[:, None, :], a)[:, 0, :]


class _Model:
    """The parameters of one E-step, cast once to the data's dtype."""

    def __init__(self, weights, means, precisions_cholesky, covariance_type, dtype,
                 reg_covar=0.0, chunk_rows=None):
        means = np.asarray(means, dtype=np.float64)
        self.means_f64, self.pc_f64 = means, precisions_cholesky
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
        self.expanded = self.cov.expansion(means, precisions_cholesky, self.offset,
                                           np.dtype(dtype), reg_covar, chunk_rows)

    def marginal(self) -> Marginal:
        """The marginals and conditionals for rows with missing features."""
        return Marginal(self.means_f64, self.pc_f64, self.cov, self.offset, self.means.dtype)

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


def _normalise_in_place(wlp, ws=None):
    """Turn weighted log-probs (K, rows) into responsibilities, in place.

    Returns the per-row log-sum-exp. A hand-written max/exp/sum/log is faster
    than scipy's ``logsumexp`` here and never exponentiates unnormalised values.
    With a :class:`Workspace` ``ws``, the per-row vectors are its arrays (the
    log-sum-exp one of them, valid until the next sub-block).
    """
    n = wlp.shape[1]
    mx = wlp.max(axis=0, out=None if ws is None else ws("n_max", (n,)))
    finite = np.isfinite(mx, out=None if ws is None else ws("n_finite", (n,), bool))
    if not finite.all():
        mx[~finite] = 0.0
    wlp -= mx
    if wlp.size and np.fmin.reduce(wlp, axis=None) < _LOG_TINY:  # see _LOG_TINY
        np.maximum(wlp, _LOG_TINY, out=wlp)
        np.exp(wlp, out=wlp)
        wlp -= _FLUSHED  # those at the floor, and any under 1.5e-304, to exactly 0
        np.maximum(wlp, 0.0, out=wlp)
    else:
        np.exp(wlp, out=wlp)
    tot = wlp.sum(axis=0, out=None if ws is None else ws("n_total", (n,)))
    with np.errstate(divide="ignore", invalid="ignore"):
        wlp /= tot
        lse = np.log(tot, out=tot)
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

    def add_score(self, score, finite, weight=None, empty=None) -> None:
        """Count the rows left out (``finite`` False) and add the others' ``score``
        (log-likelihood or inertia, times their ``weight`` if given) to the first
        entry, and their weight (or number) to ``total_weight``. Rows left out
        that are ``empty`` (every feature missing) are counted as such, not as
        non-finite."""
        if not finite.all():
            n_empty = 0 if empty is None else np.count_nonzero(empty & ~finite)
            total, mass, bad = fused.finite_sum(
                score, finite, fused.NO_WEIGHT if weight is None else weight)
            self.out[0] += total
            self.out[2] += bad - n_empty
            self.out[3] += mass
            self.out[4] += n_empty
            return
        if weight is None:
            self.out[0] += score.sum()
            self.out[3] += len(score)
        else:
            self.out[0] += np.dot(score, weight)
            self.out[3] += weight.sum()

    def weigh(self, resp, finite, score, weight=None, empty=None):
        """:meth:`add_score`, then ``resp`` (K, b) times the rows' sample ``weight``
        and zero on the rows left out, in place. Returns the mask of those rows
        (None if none), whose work the caller zeroes too."""
        self.add_score(score, finite, weight, empty)
        if weight is not None:
            resp *= weight
        if finite.all():
            return None
        left_out = ~finite
        resp[:, left_out] = 0.0
        return left_out

    def add(self, diff, resp, finite, score, ws, weight=None, empty=None):
        """Add a sub-block: centred data (K, b, D), responsibilities (K, b).

        With an ``expanded`` accumulator (an :class:`~daskgmm.covariance.Expansion`),
        ``diff`` holds its features (one row per feature, b columns) instead.
        Rows where ``finite`` is False are counted and left out; ``score`` (b,)
        is summed into the first entry. ``weight`` (b,): the rows' sample weights,
        which multiply their responsibilities and scores. ``ws`` is the chunk's
        :class:`Workspace`. ``empty``: see :meth:`add_score`.
        """
        left_out = self.weigh(resp, finite, score, weight, empty)
        if left_out is not None:
            if self.expanded is None:
                diff[:, left_out, :] = 0.0
            else:
                diff[:, left_out] = 0.0
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
                     marginalize=False, sample_weight=None, reg_covar=0.0):
    """E-step and sufficient statistics of one chunk, as a (1, size) float64 row.

    Non-finite input rows make the row's log-likelihood non-finite; they are
    counted (``n_nonfinite``) in the same pass instead of scanning the data twice.
    ``sample_weight`` (the chunk's weights, one per row) multiplies each row's
    responsibilities and log-likelihood. With ``n_worst``, the row also carries
    the chunk's ``n_worst`` rows of lowest log-likelihood
    (:class:`daskgmm.recovery.WorstRows`, flattened): the candidates for
    re-seeding a collapsed component, found in the same pass.

    With ``marginalize``, rows with NaN are not non-finite: their missing
    features are integrated out (:mod:`daskgmm.missing`) and their expected
    statistics added; rows whose every feature is NaN count for nothing and are
    counted (``n_empty``). A chunk without NaN takes the same path as without.
    ``reg_covar``: what the M-step adds to the covariances (a kernel whose
    rounding is far below it may be taken, see :class:`~daskgmm.covariance.Expansion`).
    """
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype, reg_covar,
                   block.shape[0] if FUSED else None)
    with Workspace.of_thread() as ws:
        if model.expanded is not None and FUSED:
            stats, incomplete, rows = _fused_statistics(block, model, covariance_type, n_worst,
                                                        sw, marginalize)
        else:
            stats, incomplete, rows = _complete_statistics(block, model, covariance_type,
                                                           n_worst, sw, ws, marginalize)
        if len(incomplete):
            size = StatsLayout(model.n_components, model.n_features, covariance_type).size
            source, index = (block, incomplete) if rows is None else (rows, None)
            stats[:, :size] += _incomplete_statistics(
                source, index, model, covariance_type, None if sw is None else sw[incomplete],
                ws)
    return stats


def _fused_statistics(block, model, covariance_type, n_worst, sw, marginalize=False):
    """:func:`_complete_statistics` in one compiled call of the model's expansion
    (:meth:`~daskgmm.covariance.Expansion.fused`): the rows with a non-finite
    value come out with a NaN log-likelihood and nothing added, and with
    ``marginalize`` those with a NaN are returned for :func:`_incomplete_statistics`
    (their indices; the rows themselves, the third value, are not gathered: None)."""
    n = block.shape[0]
    expanded = model.expanded
    acc = Accumulator(model.n_components, model.n_features, covariance_type, expanded)
    lse = np.empty(n)
    expanded.fused(block, fused.NO_WEIGHT if sw is None else sw, lse, acc.sums)
    finite = np.isfinite(lse)
    acc.add_score(lse, finite, sw)
    left = incomplete = np.empty(0, dtype=np.intp)  # rows counted elsewhere; returned
    rows = marginal_stats = None
    if marginalize and not finite.all():
        left = np.flatnonzero(~finite)
        marginal = model.marginal()
        if marginal.diagonal:  # those rows in one compiled call too
            marginal_stats = _diagonal_marginal_statistics(
                block, left, marginal, covariance_type, None if sw is None else sw[left])
        else:  # for _incomplete_statistics, which counts those with no NaN (an
            incomplete = left  # infinity) as non-finite again
    acc.out[2] -= len(left)
    stats = acc.result(n - len(left))
    if marginal_stats is not None:
        stats += marginal_stats
    if n_worst:
        worst = WorstRows(n_worst)
        worst.add(lse, 0, None, sw)
        stats = np.concatenate([stats, worst.result(block).reshape(1, -1)], axis=1)
    return stats, incomplete, rows


def _diagonal_marginal_statistics(block, index, marginal, covariance_type, sw):
    """The expected statistics of the rows ``block[index]`` of a diagonal type, whose
    log-likelihood was not finite, in one compiled call: rows with NaN integrated
    out, rows with every feature missing counted as empty, those with an infinity
    as non-finite."""
    acc = Accumulator(marginal.n_components, marginal.n_features, covariance_type)
    lse = np.empty(len(index))
    empty = np.empty(len(index), dtype=bool)
    fused.diagonal_marginal_rows(block, index, fused.NO_WEIGHT if sw is None else sw,
                                 marginal.shift, marginal.coef, _FUSED_MARGINAL_ROWS, lse,
                                 marginal.sums, empty)
    acc.add_score(lse, np.isfinite(lse), sw, empty)
    marginal.finish(acc)
    return acc.result(len(index))


def _complete_statistics(block, model, covariance_type, n_worst, sw, ws, marginalize=False):
    """The statistics of a chunk's rows, but with ``marginalize`` those with a NaN:
    their indices and the rows themselves are returned (the second and third
    values, the rows gathered while in cache), for :func:`_incomplete_statistics`.

    Rows with NaN show as rows of non-finite log-likelihood, which the pass counts
    and leaves out anyway: a chunk without NaN costs nothing more and takes the
    path of ``marginalize=False`` exactly. Once a sub-block has had some, the
    next ones are checked first (a product with ones, on data in cache: NaN
    propagates, infinities alone do not) and their rows with NaN set aside
    before the work, not after.
    """
    acc = Accumulator(model.n_components, model.n_features, covariance_type, model.expanded,
                      model.rounding)
    step = model.block_rows
    worst = WorstRows(n_worst) if n_worst else None
    incomplete = []
    gathered, n_gathered = None, 0  # the rows with NaN, once seen (a work array)
    ones = np.ones(block.shape[1], dtype=block.dtype)
    precheck = False  # set once rows with NaN are seen
    seen = 0  # rows with NaN that the pass counted as non-finite
    complete = [0, 0]  # rows read and kept complete since then: the window's scale
    start = 0
    while start < block.shape[0]:
        # once rows are set aside, a window that keeps about ``step`` of them: the
        # compacted sub-blocks stay as long as the others (as many calls per row)
        window = step if not precheck else min(4 * step, -(-step * complete[0] // complete[1]))
        sub = block[start : start + window]
        w = None if sw is None else sw[start : start + window]
        kept = None
        if precheck:
            # NaN propagates; so does inf - inf, whose rows the incomplete path
            # counts as non-finite. Work arrays throughout: a Dask worker gives
            # freed memory back at once, and faults it in again at the next use
            n = len(sub)
            # the sub-block copied first, to a work array: then read from cache (one
            # thread, 250,000 x 16, 20% of rows with NaN: 0.8x the time), and aligned
            # (Dask may hand a chunk over at any offset of a pickle's frame, and np.dot
            # and np.take then copy it to fresh memory each time: 2.1x the time in a
            # worker process)
            aligned = ws("aligned", sub.shape, sub.dtype)
            np.copyto(aligned, sub)
            sub = aligned
            nan = np.isnan(np.dot(sub, ones, out=ws("row_sums", (n,), sub.dtype)),
                           out=ws("row_nan", (n,), bool))
            if nan.any():
                left = np.flatnonzero(nan)
                np.take(sub, left, axis=0, mode="clip",
                        out=gathered[n_gathered : n_gathered + len(left)])
                n_gathered += len(left)
                left += start
                incomplete.append(left)
                kept = np.flatnonzero(np.logical_not(nan, out=nan))
                # mode="clip": with "raise", np.take writes to a fresh copy of ``out``
                sub = np.take(sub, kept, axis=0, mode="clip",
                              out=ws("kept", (len(kept), sub.shape[1]), sub.dtype))
                w = None if w is None else w[kept]
            complete[0] += n
            complete[1] += n if kept is None else max(1, len(kept))
        resp, work = model.log_prob_and_work(sub, ws)
        lse = _normalise_in_place(resp, ws)
        if worst is not None:  # rows with NaN are not seeds: not among ``kept``
            worst.add(lse, start, kept, w)
        finite = np.isfinite(lse, out=ws("finite", lse.shape, bool))
        if marginalize and not precheck and not finite.all():
            left = np.flatnonzero(~finite)
            left = left[has_missing(sub[left])]
            if len(left):
                incomplete.append(left + start)
                gathered = ws("m_rows", (block.shape[0] - start, block.shape[1]), block.dtype)
                gathered[: len(left)] = sub[left]
                n_gathered = len(left)
                seen += len(left)
                precheck = True
                complete = [len(sub), max(1, len(sub) - len(left))]
        acc.add(work, resp, finite, lse, ws, w)
        start += len(sub) if kept is None else window
    incomplete = np.concatenate(incomplete) if incomplete else np.empty(0, dtype=np.intp)
    acc.out[2] -= seen
    stats = acc.result(block.shape[0] - len(incomplete))
    rows = None if gathered is None else gathered[:n_gathered]
    if worst is not None:
        stats = np.concatenate([stats, worst.result(block).reshape(1, -1)], axis=1)
    return stats, incomplete, rows


def _incomplete_statistics(block, index, model, covariance_type, sw, ws):
    """The expected statistics of the rows ``block[index]`` (``index`` None: all of
    ``block``), whose features sum to NaN, centred on the means (see
    :mod:`daskgmm.missing`); ``sw``: their sample weights. Rows with every feature
    missing are counted (``n_empty``), rows with no NaN (an infinity) as non-finite."""
    acc = Accumulator(model.n_components, model.n_features, covariance_type)
    marginal = model.marginal()
    n = block.shape[0] if index is None else len(index)
    if FUSED and not marginal.diagonal and (marginal.shared or marginal.cov.unit_ndim == 2
                                            and marginal.cov.per_component):
        _dense_marginal_statistics(block, index, marginal, acc, sw, ws)
    else:
        _marginal_statistics(block if index is None else block[index], model, marginal, acc,
                             sw, ws)
    marginal.finish(acc)
    out = acc.result(n)
    out[0, 2] += marginal.n_without_nan
    out[0, 4] = marginal.n_empty
    return out[0]


def _dense_marginal_statistics(block, index, marginal, acc, sw, ws):
    """The rows ``block[index]`` (None: all) with NaN of a full-covariance model, or
    of a tied one with its shared precision, in one compiled call
    (:func:`daskgmm.fused.dense_marginal_rows`, :func:`~daskgmm.fused.shared_marginal_rows`;
    their patterns padded, :meth:`~daskgmm.missing.Marginal.groups`), read in
    place: their patterns too (:func:`daskgmm.fused.nan_patterns`), up to 64 features."""
    if index is None:
        index = np.arange(block.shape[0])
    found = fused.nan_patterns(block, index) if block.shape[1] <= 64 else None
    groups = marginal.groups(None if found is not None else block[index], keep_empty=False,
                             ws=ws, compiled=True, found=found)
    for group in groups:
        w = fused.NO_WEIGHT if sw is None else sw[group.rows]
        rows = index[group.rows]
        lse = np.empty(len(rows))
        if marginal.shared:
            fused.shared_marginal_rows(
                block, rows, group.pattern, group.patterns, group.sizes,
                np.ascontiguousarray(group.inv[:, 0]), group.const, marginal.shift,
                marginal.precisions[0], marginal.mu_precision, marginal.mu_shifted, w,
                _FUSED_MARGINAL_ROWS, lse, acc.nk, acc.sk, acc.Sk, group.mass)
        else:
            fused.dense_marginal_rows(
                block, rows, group.pattern, group.patterns, group.sizes,
                np.ascontiguousarray(group.inv, dtype=np.float64), group.const,
                marginal.means, marginal.precisions, w, _FUSED_MARGINAL_ROWS, lse, acc.nk,
                acc.sk, acc.Sk, group.mass)
        acc.add_score(lse, np.isfinite(lse), None if sw is None else w)


def _marginal_statistics(block, model, marginal, acc, sw, ws):
    """The rows with NaN, group by group and sub-block by sub-block (NumPy)."""
    for part, resp, work in _marginal_sub_blocks(model, block, ws, marginal, keep_empty=False):
        lse = _normalise_in_place(resp, ws)
        marginal.accumulate(acc, part, work, resp, lse, ws, None if sw is None else sw[part.rows])


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
                            block_info=None, marginalize=False):
    """Statistics of random responsibilities (scikit-learn's ``init_params='random'``).

    Each row's draws depend on the seed and its global row index only, so the
    result does not depend on the chunking. With ``marginalize`` a missing
    feature is taken at the centre's value, and rows with none observed are
    counted (``n_empty``), not used.
    """
    block = as_2d(block)
    sw = row_weights(sample_weight, block.shape[0])
    centers = np.asarray(centers, dtype=np.float64)
    k, d = centers.shape
    row0 = block_info[0]["array-location"][0][0] if block_info else 0
    c = centers.astype(block.dtype, copy=False)
    acc = Accumulator(k, d, covariance_type, offset=c.astype(np.float64) - centers)
    step = _block_rows(k, d)
    with Workspace.of_thread() as ws:
        for start in range(0, block.shape[0], step):
            diff = _centred(block[start : start + step], c, ws)
            b = diff.shape[1]
            resp = row_uniforms(seed, row0 + start, b, k).T.copy()
            resp /= resp.sum(axis=0)
            empty = None
            if marginalize:
                gap = np.isnan(block[start : start + step])
                diff[:, gap] = 0.0
                empty = gap.all(axis=1)
            finite = np.isfinite(diff).all(axis=(0, 2))
            if empty is not None:
                finite &= ~empty
            w = None if sw is None else sw[start : start + b]
            acc.add(diff, resp, finite, np.zeros(b), ws, w, empty)
        return acc.result(block.shape[0])


def _map_rows(block, weights, means, precisions_cholesky, covariance_type, per_block, width, dtype,
              marginalize=False):
    """A per-row result, sub-block by sub-block. Rows with a non-finite value get
    ``-1`` (integer results) or NaN: they have no label, probability or density.
    With ``marginalize``, rows with NaN get theirs from their observed features
    (a row with none: from the weights alone)."""
    block = as_2d(block)
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    n = block.shape[0]
    shape = (n,) if width is None else (n, model.n_components)
    out = np.empty(shape, dtype=dtype)
    step = model.block_rows
    with Workspace.of_thread() as ws:
        incomplete = []
        for start in range(0, n, step):
            sub = block[start : start + step]
            wlp = model.log_prob_and_work(sub, ws)[0]
            part = per_block(wlp)
            bad = ~np.isfinite(sub).all(axis=1)
            if bad.any():
                part[bad] = -1 if np.dtype(dtype).kind == "i" else np.nan
                if marginalize:
                    incomplete.append(np.flatnonzero(has_missing(sub)) + start)
            out[start : start + step] = part
        incomplete = np.concatenate(incomplete) if incomplete else ()
        if len(incomplete):
            rows = block[incomplete]
            for group, wlp, _ in _marginal_sub_blocks(model, rows, ws):
                part = per_block(wlp)
                if np.dtype(dtype).kind == "i":
                    part[~np.isfinite(wlp).all(axis=0)] = -1
                out[incomplete[group.rows]] = part
        return out


def _marginal_sub_blocks(model, rows, ws, marginal=None, keep_empty=True):
    """``(group, weighted log-probs (K, n), work)`` for the rows of ``rows`` with a
    NaN, sub-block by sub-block (see :meth:`daskgmm.missing.Marginal.groups` and
    :meth:`~daskgmm.missing.Marginal.evaluate`)."""
    marginal = marginal or model.marginal()
    groups = marginal.groups(rows, keep_empty, ws)
    if not groups:
        return
    # the groups' rows one after the other, read in one sweep (a group's rows
    # taken sub-block by sub-block from all of ``rows`` came from memory, out of
    # cache: 330 us against 55 us for 12,500 rows); one group of every row
    # (diagonal types) is ``rows`` itself
    if len(groups) == 1 and len(groups[0].rows) == len(rows):  # its rows: 0, 1, ...
        grouped = rows
    else:
        order = np.concatenate([group.rows for group in groups])
        grouped = np.take(rows, order, axis=0, mode="clip",
                          out=ws("m_x", (len(order), rows.shape[1]), rows.dtype))
    offset = 0
    step = marginal.block_rows
    for group in groups:
        for start in range(0, len(group.rows), step):
            part = group[start : start + step]
            x = grouped[offset + start : offset + start + len(part.rows)]
            yield part, *marginal.evaluate(x, part, ws)
        offset += len(group.rows)


def chunk_log_prob(block, weights, means, precisions_cholesky, covariance_type, marginalize=False):
    """Weighted log-probabilities ``log w_k + log N(x | k)``, shape (rows, K)."""
    return _map_rows(block, weights, means, precisions_cholesky, covariance_type,
                     lambda w: w.T, "K", np.float64, marginalize)


def chunk_score_samples(block, weights, means, precisions_cholesky, covariance_type,
                        marginalize=False):
    """Log-likelihood of each row under the mixture, shape (rows,)."""
    return _map_rows(block, weights, means, precisions_cholesky, covariance_type,
                     _normalise_in_place, None, np.float64, marginalize)


def chunk_split_scores(block, weights, means, precisions_cholesky, covariance_type,
                       sample_weight=None, marginalize=False):
    """The log-likelihood of the chunk's rows under the mixture, summed under each
    column of ``sample_weight`` (rows, m): ``[sum_n w_nj log p(x_n) for j] + [sum_n
    w_nj for j]``, a (1, 2m) row; without weights, m = 1 and every row weighs 1.
    Rows without a density (a non-finite value; with ``marginalize``, no observed
    feature) count in neither sum, as in ``GaussianMixture.score``. A search scores
    its fitted and its held-out rows in one pass (their weights as two columns).
    """
    block = as_2d(block)
    ll = chunk_score_samples(block, weights, means, precisions_cholesky, covariance_type,
                             marginalize)
    counted = np.isfinite(ll)
    if marginalize:
        counted &= ~np.isnan(block).all(axis=1)
    w = (np.ones((block.shape[0], 1)) if sample_weight is None
         else np.asarray(sample_weight, dtype=np.float64).reshape(block.shape[0], -1))
    w = np.where(counted[:, None], w, 0.0)
    return np.concatenate([np.dot(np.where(counted, ll, 0.0), w), w.sum(axis=0)])[None, :]


def chunk_responsibilities(block, weights, means, precisions_cholesky, covariance_type,
                           marginalize=False):
    """Posterior probability of each component for each row, shape (rows, K)."""

    def resp(wlp):
        _normalise_in_place(wlp)
        return wlp.T

    return _map_rows(block, weights, means, precisions_cholesky, covariance_type, resp, "K",
                     np.float64, marginalize)


def chunk_labels(block, weights, means, precisions_cholesky, covariance_type, marginalize=False):
    """Most probable component of each row, shape (rows,), int64."""
    return _map_rows(block, weights, means, precisions_cholesky, covariance_type,
                     lambda w: w.argmax(axis=0), None, np.int64, marginalize)


def chunk_impute(block, weights, means, precisions_cholesky, covariance_type):
    """The rows with each NaN replaced by its conditional expectation under the
    mixture, ``sum_k r_nk E[x_m | x_o, k]`` (a copy, in the block's dtype)."""
    block = as_2d(block)
    out = np.array(block, copy=True)
    incomplete = np.flatnonzero(has_missing(block))
    if not len(incomplete):
        return out
    model = _Model(weights, means, precisions_cholesky, covariance_type, block.dtype)
    rows = block[incomplete]
    marginal = model.marginal()
    with Workspace.of_thread() as ws:
        for group, wlp, work in _marginal_sub_blocks(model, rows, ws, marginal):
            _normalise_in_place(wlp)
            expected = marginal.expected(group, work, wlp, ws)
            r = incomplete[group.rows]
            out[r] = np.where(np.isnan(out[r]), expected, out[r])
        return out
