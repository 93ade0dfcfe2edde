"""The statistics of a chunk (an EM pass's, and those of the 'random' start): pure
NumPy, no Dask.

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
log-probabilities alone. Per-row results (labels, probabilities, densities,
imputations) are in :mod:`daskgmm.row_kernels`, the parts both are built from
in :mod:`daskgmm.blocks`.
"""

from __future__ import annotations

import numpy as np

from . import fused
from .blocks import (
    Accumulator,
    Model,
    Workspace,
    as_2d,
    centred,
    marginal_sub_blocks,
    normalise_in_place,
    row_weights,
    sub_block_rows,
)
from .patterns import has_missing
from .params import StatsLayout
from .recovery import WorstRows

__all__ = ["FUSED", "chunk_random_statistics", "chunk_statistics", "row_uniforms"]

#: Whether an EM pass over rows that an expansion applies to runs the compiled
#: kernels of :mod:`daskgmm.fused` (False: the NumPy sub-block loop, kept for
#: the centred path and as the reference the tests compare them with).
FUSED = True
#: rows of a sub-block of the compiled kernels for rows with NaN (daskgmm.fused)
_FUSED_MARGINAL_ROWS = 1024


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
    model = Model(weights, means, precisions_cholesky, covariance_type, block.dtype, reg_covar,
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
        lse = normalise_in_place(resp, ws)
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
    for part, resp, work in marginal_sub_blocks(model, block, ws, marginal, keep_empty=False):
        lse = normalise_in_place(resp, ws)
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
    step = sub_block_rows(k, d)
    with Workspace.of_thread() as ws:
        for start in range(0, block.shape[0], step):
            diff = centred(block[start : start + step], c, ws)
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
