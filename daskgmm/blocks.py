"""The parts that the NumPy chunk kernels (:mod:`daskgmm.kernels`,
:mod:`daskgmm.row_kernels`) are built from: work arrays kept from one sub-block
and one chunk task to the next (:class:`Workspace`), the parameters of one
E-step cast to the data's dtype (:class:`Model`), the log-sum-exp into
responsibilities, and the flat statistics row of a chunk (:class:`Accumulator`).
Pure NumPy, no Dask.

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
from .missing import Marginal
from .params import StatsLayout

__all__ = [
    "Accumulator",
    "Model",
    "Workspace",
    "as_2d",
    "centred",
    "marginal_sub_blocks",
    "normalise_in_place",
    "row_weights",
    "sub_block_rows",
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


def sub_block_rows(n_components: int, n_features: int, expansion=None) -> int:
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


class Model:
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
        return sub_block_rows(self.n_components, self.n_features, self.expanded)

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
        work = centred(block, self.means, ws)
        wlp[...] = self.cov.mahalanobis(work, self.pc, ws)
        if self.correction is not None:
            p_r, const = self.correction
            wlp += 2.0 * np.matmul(work, p_r[:, :, None])[:, :, 0]
            wlp += const[:, None]
        wlp *= -0.5
        wlp += self.offset[:, None]
        return wlp, work


def centred(block, centers, ws):
    """``x - c_k`` for every centre: (K, rows, D) in the dtype of ``centers``."""
    out = ws("diff", (centers.shape[0],) + block.shape, centers.dtype)
    np.subtract(block[None, :, :], centers[:, None, :], out=out)
    return out


def normalise_in_place(wlp, ws=None):
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


def marginal_sub_blocks(model, rows, ws, marginal=None, keep_empty=True):
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
