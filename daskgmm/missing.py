"""Rows with missing features (NaN), marginalised: the per-chunk math, pure NumPy.

For a row with observed features ``o`` and missing features ``m``, under a
component of mean ``mu``, covariance ``S`` and precision ``P = S^-1``
(Ghahramani & Jordan 1994)::

    log p(x_o | k)    = log N(x_o | mu_o, S_oo)
    E[x_m | x_o, k]   = mu_m + S_mo S_oo^-1 (x_o - mu_o) = mu_m - P_mm^-1 P_mo (x_o - mu_o)
    Cov[x_m | x_o, k] = S_mm - S_mo S_oo^-1 S_om     = P_mm^-1

The E-step takes the responsibilities from the first; the statistics take the
row with its missing part filled by the second (``x^``) and add the third to
the second moments. Everything is computed from the precision, whose block on
the missing features is all that a pattern needs factorised (``|m| x |m|``,
small when few features are missing), not the ``|o| x |o|`` marginal
covariance:

* with ``d = x^ - mu`` (the filled row, centred) and ``g = P d0`` where ``d0``
  is ``d`` with zeros at ``m``, the missing part of ``d`` is
  ``t = -P_mm^-1 g_m``, and the marginal's squared Mahalanobis distance is
  ``(x_o - mu_o)^T S_oo^-1 (x_o - mu_o) = d^T P d = d0 . g + t . g_m``;
* ``log det S_oo = log det S + log det P_mm``.

So a row costs one product with ``P`` per component (as a complete row's
distance does) and a ``|m|``-sized solve. Rows are grouped by their pattern
(:mod:`daskgmm.patterns`) and their number of missing features: each
pattern's ``P_mm`` of every component is inverted once per chunk, all patterns
at once (a Cholesky vectorised over them). With one
shared precision (tied) a row needs no per-component work at all: its filled
row ``y`` is the same under every component up to a term per pattern and
component (see :mod:`daskgmm.missing_shared`). Diagonal covariances (diag,
spherical) need no factorisation: ``t = 0`` (``E[x_m | x_o] = mu_m``) and the
conditional covariance is the variances of ``m``. float32 data keep the
per-component products of dense types in float32, centred in float64 first.
For the compiled kernels of :mod:`daskgmm.fused` the patterns come in one group
instead, padded to the most features missing (:meth:`Marginal._padded_group`),
found, factorised and summed there.
"""

from __future__ import annotations

import math

import numpy as np

from . import fused
from .covariance.base import Expansion
from .missing_shared import SharedPrecision
from .patterns import (
    Group,
    find_patterns,
    inverse_and_logdet,
    pattern_codes,
    pattern_sums,
    solve_rows,
)

__all__ = ["Marginal"]

_LOG_2PI = math.log(2.0 * math.pi)


class Marginal(SharedPrecision):
    """A mixture's marginals and conditionals for rows with missing features.

    ``offset``: ``log w_k + log N``'s constant for complete rows
    (``log w_k + log|det U_k| - D/2 log 2 pi``, (K,)). ``precisions``: the
    dense precisions, one (D, D) per unit (component, or the one tied matrix).
    """

    def __init__(self, means, precisions_cholesky, cov, offset, dtype=np.float64):
        #: the dtype of the per-component work of dense types (the data's, float32
        #: or float64: as the complete rows' products; centring is in float64)
        self.dtype = np.dtype(dtype)
        self.means = np.asarray(means, dtype=np.float64)
        self.n_components, self.n_features = self.means.shape
        self.cov = cov
        self.offset = offset
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        self.shared = False  # one precision for all components (tied), see below
        self.shift = self.means.mean(axis=0)  # the expansions below are about it
        self.mu_shifted = mu = self.means - self.shift
        self.diagonal = False
        if cov.unit_ndim < 2:
            # (K, D) precisions: the squares of the Cholesky factors' diagonals
            p = np.broadcast_to(np.reshape(pc, (self.n_components, -1)) ** 2, self.means.shape)
            p = np.ascontiguousarray(p)
            # log-probs as one product with the features [x~0^2, x~0, o, 1] of a row
            # (x~0: x - c with zeros at the missing features, o: 1 where observed),
            # where that is as exact as the complete rows' Expansion
            self.diagonal = Expansion.close_enough(np.einsum("kd,kd->k", mu * mu, p))
            self.precision_diag = p
            constant = offset - 0.5 * np.log(p).sum(axis=1) + 0.5 * self.n_features * _LOG_2PI
            self.coef = np.concatenate(
                [-0.5 * p, mu * p, -0.5 * mu * mu * p + 0.5 * np.log(p) - 0.5 * _LOG_2PI,
                 constant[:, None]], axis=1)
            #: the sub-blocks' sums of r [x~0^2, x~0, o, 1], (K, 3D + 1): the statistics
            #: are linear in them, and are taken once, in finish
            self.sums = np.zeros(self.coef.shape)
        if not self.diagonal and cov.unit_ndim < 2:  # means too far apart: as dense ones
            self.precisions = self.precision_diag[:, :, None] * np.eye(self.n_features)
        elif not self.diagonal:
            units = cov.units(pc)  # (U, D, D), U = K or 1
            self.precisions = np.matmul(units, np.swapaxes(units, 1, 2))
        if not self.diagonal:
            self.work_precisions = self.precisions.astype(self.dtype, copy=False)
            if not cov.per_component:
                # one precision for all: per row only products with P, and per
                # pattern and component the rest (see _shared_terms), about the
                # mean of the means (as the complete rows' Expansion, and only
                # where it is as exact)
                self.mu_precision = np.dot(mu, self.precisions[0])  # rows P mu~_k
                self.mu_p_mu = np.einsum("kd,kd->k", self.mu_precision, mu)
                self.shared = Expansion.close_enough(self.mu_p_mu)

    @property
    def block_rows(self) -> int:
        """Rows per sub-block. With one shared precision a row's work is small
        ((rows, D) arrays): 16,384 rows make fewer, longer NumPy calls, 1.3x faster
        than 2,048 on two threads (each call takes and releases the GIL) and as
        fast on one. The others, whose work is (K, rows, D) or (3D, rows), are
        fastest at 2,048 on one thread (measured: up to 1.3x slower at 16,384)."""
        return 16384 if self.shared else 2048

    # ------------------------------------------------------------ patterns

    def groups(self, block: np.ndarray | None, keep_empty: bool = True, ws=None,
               compiled: bool = False, found=None) -> list[Group]:
        """The rows of ``block`` with a NaN: for dense types grouped by their number
        of missing features, with what each pattern needs. Rows with every feature
        missing are left out unless ``keep_empty``; ``n_empty`` counts them, and
        ``n_without_nan`` the rows with none. ``ws``: a workspace for the mask.
        ``compiled``: for the kernels of :mod:`daskgmm.fused`, which take ``inv``
        and the patterns as they are (no inverses by columns, no flat positions).
        ``found``: instead of ``block``, the rows' patterns as
        :func:`daskgmm.fused.nan_patterns` finds them without gathering the rows
        (up to 64 features): the pattern of each row, each pattern's mask as an
        integer (bit ``j`` set where feature ``j`` is missing) and the rows
        sorted by pattern."""
        if found is None:
            miss = np.isnan(block, out=None if ws is None else ws("m_miss", block.shape, bool))
            first, row_ids, order = find_patterns(pattern_codes(miss))
            masks = miss[first]  # the patterns, in the order of their keys
        else:
            row_ids, codes, order = found
            bits = np.arange(self.n_features, dtype=np.uint64)
            masks = (codes[:, None] >> bits) & np.uint64(1) == 1
        sizes = masks.sum(axis=1)
        counts = np.bincount(row_ids, minlength=len(masks))
        self.n_without_nan = int(counts[sizes == 0].sum())
        self.n_empty = int(counts[sizes == self.n_features].sum())
        usable = (sizes > 0) & (keep_empty | (sizes < self.n_features))
        row_sizes = sizes[row_ids]
        if self.diagonal:
            out = [Group(np.flatnonzero(usable[row_ids]), self.n_features)]
        elif compiled:
            out = ([self._padded_group(masks, sizes, usable, row_ids, order)] if usable.any()
                   else [])
        else:
            out = []
            renumber = np.empty(len(masks), dtype=np.intp)
            for c in np.unique(sizes[usable]):
                chosen = np.flatnonzero(sizes == c)
                patterns = np.nonzero(masks[chosen])[1].reshape(len(chosen), c)
                renumber[chosen] = np.arange(len(chosen))
                # the rows of c missing features, in their order in ``block`` (read
                # in one sweep, faster than pattern by pattern from memory)
                rows = np.flatnonzero(row_sizes == c)
                pattern = renumber[row_ids[rows]]
                # P_mm of every pattern and unit: (n_patterns, U, c, c)
                sub = np.swapaxes(
                    self.precisions[:, patterns[:, :, None], patterns[:, None, :]], 0, 1)
                inv, logdet = inverse_and_logdet(sub)
                # log N(x_o) = offset_k - 1/2 (maha + log det P_mm) + c/2 log 2 pi
                const = self.offset - 0.5 * logdet + (0.5 * _LOG_2PI) * c  # (P, K) or (P, 1)
                h = unit_inv = None
                if self.shared:
                    h, q = self._shared_terms(patterns, inv[:, 0])
                    const = const - 0.5 * q
                if self.shared:
                    # by columns, the patterns last: (c, U, c, P); one shared precision
                    # (c, c, P) in float64, as its rows' work
                    unit_inv = np.ascontiguousarray(np.transpose(inv[:, 0], (2, 1, 0)))
                else:
                    unit_inv = np.ascontiguousarray(np.transpose(inv, (3, 1, 2, 0)),
                                                    dtype=self.dtype)
                mass = np.zeros((len(patterns), self.n_components))
                const = np.ascontiguousarray(np.broadcast_to(const, mass.shape).T)
                out.append(Group(rows, self.n_features, pattern, patterns, inv, const, mass,
                                  h, unit_inv))
        self._groups = out
        return out

    def _padded_group(self, masks, sizes, usable, row_ids, order) -> Group:
        """The ``usable`` patterns of :meth:`groups` (``masks``, ``sizes`` per
        pattern) in one group, for the compiled kernels: ``patterns`` (P, c) the
        missing features of each, in order, padded to the most ``c`` missing;
        ``sizes`` their numbers; ``inv`` and ``shared`` zero beyond them (so that
        :meth:`finish` may sum over the padding), from one compiled sweep
        (:func:`daskgmm.fused.pattern_factors`). The rows come by pattern (then by
        position, ``order`` the rows sorted so): the kernels' loops over them run
        alike from row to row, on the same inverses (measured 0.9x the time of
        the rows in their order in the chunk)."""
        chosen = np.flatnonzero(usable)
        renumber = np.empty(len(masks), dtype=np.intp)
        renumber[chosen] = np.arange(len(chosen))
        rows = order[usable[row_ids[order]]]
        pattern = renumber[row_ids[rows]]
        masks, sizes = masks[chosen], sizes[chosen]
        c = int(sizes.max())
        n_patterns, units = len(masks), len(self.precisions)
        patterns = np.empty((n_patterns, c), dtype=np.intp)
        inv = np.zeros((n_patterns, units, c, c))
        logdet = np.empty((n_patterns, units))
        k = self.n_components if self.shared else 0
        h, q = np.zeros((n_patterns, c, k)), np.empty((n_patterns, k))
        fused.pattern_factors(self.precisions, masks, self.mu_precision if self.shared
                              else np.empty((0, self.n_features)),
                              self.mu_p_mu if self.shared else np.empty(0),
                              patterns, inv, logdet, h, q)
        # log N(x_o) = offset_k - 1/2 (maha + log det P_mm) + c/2 log 2 pi
        const = self.offset - 0.5 * logdet + (0.5 * _LOG_2PI) * sizes[:, None]  # (P, K or 1)
        if self.shared:
            const = const - 0.5 * q
        mass = np.zeros((n_patterns, self.n_components))
        const = np.ascontiguousarray(np.broadcast_to(const, mass.shape).T)
        return Group(rows, self.n_features, pattern, patterns, inv, const, mass,
                      h if self.shared else None, positions=False, sizes=sizes)

    # ------------------------------------------------------------- per row

    def evaluate(self, x: np.ndarray, group: Group, ws) -> tuple[np.ndarray, np.ndarray]:
        """Weighted log-probabilities (K, n) of rows ``x`` (one group's, NaN at their
        missing features) and the work its statistics are taken from: the rows filled
        with their conditional expectations, centred on each mean, (K, n, D) in the
        work's dtype (one shared precision: ``y``, (n, D); diagonal types: the
        features [x~0^2, x~0, o, 1], (3D + 1, n))."""
        k, d = self.means.shape
        n = len(x)
        wlp = ws("m_wlp", (k, n))
        if self.diagonal:
            features = ws("m_features", (3 * d + 1, n))
            x0, gap = features[d : 2 * d], features[2 * d : 3 * d]
            np.subtract(x.T, self.shift[:, None], out=x0, dtype=np.float64)
            miss = np.isnan(x0)  # the rows' NaN, and only theirs
            np.logical_not(miss, out=gap, casting="unsafe")
            np.copyto(x0, 0.0, where=miss)
            np.square(x0, out=features[:d])
            features[3 * d] = 1.0
            np.dot(self.coef, features, out=wlp)
            return wlp, features
        if self.shared:
            return self._evaluate_shared(x, group, wlp, ws)
        diff = ws("m_diff", (k, n, d), self.dtype)
        np.subtract(x.astype(np.float64, copy=False)[None], self.means[:, None, :], out=diff,
                    casting="same_kind")
        group.put(diff, 0.0)  # d0: zero at the missing features
        # P symmetric: rows of d0 P
        g = np.matmul(diff, self.work_precisions, out=ws("m_g", diff.shape, self.dtype))
        maha = np.einsum("knd,knd->kn", diff, g, out=ws("m_maha", (k, n)))
        gm = group.take(g, ws, "m_gm")  # (K, c, n)
        units, c = group.unit_inv.shape[1], len(group.flat)
        inv = np.take(group.unit_inv, group.pattern, axis=3,
                      out=ws("m_inv", (c, units, c, n), self.dtype), mode="clip")
        t = solve_rows(inv, gm, ws, "m_t")
        t *= -1.0  # t = -P_mm^-1 g_m
        maha += np.einsum("kin,kin->kn", t, gm, out=ws("m_maha+", (k, n)))
        group.put(diff, t)
        np.multiply(maha, -0.5, out=wlp)
        wlp += group.row_const(ws)
        return wlp, diff

    def accumulate(self, acc, group: Group, work, resp, lse, ws, weight=None) -> None:
        """Add the expected statistics of one sub-block to ``acc`` (an
        :class:`~daskgmm.blocks.Accumulator` centred on the means): ``work`` and
        ``resp`` from :meth:`evaluate` (responsibilities by now), ``lse`` the rows'
        log-likelihoods, ``weight`` their sample weights."""
        finite = np.isfinite(lse, out=ws("m_finite", lse.shape, bool))
        if self.shared:
            self._accumulate_shared(acc, group, work, resp, lse, finite, weight, ws)
        elif not self.diagonal:
            acc.add(work, resp, finite, lse, ws, weight)
        if not self.diagonal:
            pattern_sums(resp, group.pattern, group.mass)  # resp weighted, 0 if left out
            return
        left_out = acc.weigh(resp, finite, lse, weight)
        if left_out is not None:
            work[:, left_out] = 0.0
        self.sums += np.dot(resp, work.T)  # sums of r x~0^2, r x~0, r o, r

    def expected(self, group: Group, work, resp, ws) -> np.ndarray:
        """``sum_k r_nk E[x | x_o, k]`` of one sub-block's rows, (n, D) (only its
        missing entries differ from the rows)."""
        if self.diagonal:
            return np.dot(resp.T, self.means)
        if self.shared:  # y + E + the shift (the responsibilities sum to one)
            return self._gap_correction(group, resp, ws) + work + self.shift
        return np.einsum("kn,knd->nd", resp, work) + np.dot(resp.T, self.means)

    def finish(self, acc) -> None:
        """Add ``sum_n r_nk Cov[x_m | x_o, k]`` of every row accumulated to ``acc``'s
        second moments: per pattern, its summed responsibilities times ``P_mm^-1``
        (diagonal types: the variances of the missing features, with the
        statistics themselves, from the sums of :meth:`accumulate`). With
        one shared precision, add the parts of the statistics in ``z`` alone too
        (:meth:`_accumulate_shared`), from ``z_pk = mu~_k - [h_pk at m]``::

            sum_pk M_pk z_pk z_pk^T = sum_k M_k mu~_k mu~_k^T - (C + C^T) + H,
            C = sum_pk M_pk mu~_k [h_pk at m]^T,  H = sum_pk M_pk [h_pk h_pk^T at m, m]
        """
        k, d = self.means.shape
        if self.diagonal:
            sq, lin, seen = self.sums[:, :d], self.sums[:, d : 2 * d], self.sums[:, 2 * d : 3 * d]
            nk, mu = self.sums[:, 3 * d], self.mu_shifted
            acc.nk += nk
            acc.sk += lin - mu * seen  # E[x_m | x_o] = mu_m: only the observed part moves
            acc.Sk += (sq - 2.0 * mu * lin + mu * mu * seen
                       + (nk[:, None] - seen) / self.precision_diag)
            return
        dense = np.zeros(k * d * d)
        for group in self._groups:
            p, mass = group.patterns, group.mass  # (P, c), (P, K)
            if group.sizes is not None:  # padded, for the compiled kernels: compiled too
                at_m = np.zeros((d, k if self.shared else 0))
                fused.pattern_moments(p, group.sizes, mass, group.inv,
                                      group.shared if self.shared else np.empty((0, 0, 0)),
                                      dense.reshape(k, d, d), at_m)
                if self.shared:
                    self._add_shared_sums(acc, at_m, mass.sum(axis=0))
                continue
            units = group.inv.shape[1]
            if units == k:
                contrib = mass[:, :, None, None] * group.inv  # (P, K, c, c)
            else:  # one precision for all (tied): the components' masses summed first
                contrib = mass.sum(axis=1)[:, None, None, None] * group.inv  # (P, 1, c, c)
            if self.shared:
                self._add_shared_parts(acc, p, mass, group.shared, contrib)
            flat = (np.arange(units)[None, :, None, None] * d * d
                    + p[:, None, :, None] * d + p[:, None, None, :])
            dense[: units * d * d] += np.bincount(flat.ravel(), weights=contrib.ravel(),
                                                  minlength=units * d * d)
        acc.Sk += self.cov.moment_of_dense(dense.reshape(k, d, d))
