"""Rows with missing features under one precision shared by every component (tied).

A mixin of :class:`daskgmm.missing.Marginal`, for ``Marginal.shared``: the filled
row ``y`` of a row with NaN is the same under every component up to a term per
pattern and component (:meth:`SharedPrecision._shared_terms`), so a row costs one
product with the precision ``P`` and a ``|m|``-sized solve whatever the number of
components, and its statistics are those of ``y`` plus sums per pattern, taken
once per chunk in :meth:`daskgmm.missing.Marginal.finish`. The attributes it
reads are ``Marginal``'s: ``precisions`` (1, D, D), ``mu_precision`` (rows
``P mu~_k``), ``mu_p_mu``, ``means``, ``mu_shifted`` and ``shift``.
"""

from __future__ import annotations

import numpy as np

from .patterns import solve_rows

__all__ = ["SharedPrecision"]


class SharedPrecision:
    """The shared-precision half of :class:`daskgmm.missing.Marginal`."""

    def _shared_terms(self, patterns, inv):
        """Per pattern and component, for one shared precision ``P``: the filled row
        centred on the component is ``e_nk = y_n - z_pk``, with ``y = x~0 + [u at m]``,
        ``u = -P_mm^-1 (P x~0)_m`` (per row) and ``z_pk = mu~_k - [h_pk at m]``,
        ``h_pk = P_mm^-1 (P mu~_k)_m`` (per pattern and component). Both satisfy
        ``(P y)_m = (P z)_m = 0``, so ``e^T P e = y^T P y - 2 (P y) . mu~_k + q_pk``
        with ``q_pk = z^T P z = mu~_k^T P mu~_k - h_pk . (P mu~_k)_m``.
        Returns ``(h, q)``: (P, c, K), (P, K)."""
        b_m = self.mu_precision.T[patterns]  # (P, c, K): (P mu~_k)_m
        h = np.matmul(inv, b_m)
        q = self.mu_p_mu[None, :] - np.einsum("pck,pck->pk", h, b_m)
        return h, q

    def _gap_correction(self, group, resp, ws):
        """``E`` of a sub-block's rows, (n, D): zero but at ``m``, where it is
        ``eta = P_mm^-1 (sum_k r_nk P mu~_k)_m``. With ``zbar = sum_k r_nk z_pk``
        (:meth:`_shared_terms`), ``zbar = sum_k r_nk mu~_k - E``; so ``y + E`` is
        the rows' expected value, ``sum_k r_nk (y - z_pk + mu~_k)``, less the shift
        (the responsibilities summing to one)."""
        n, d = resp.shape[1], self.n_features
        beta = np.dot(resp.T, self.mu_precision, out=ws("m_a", (n, d)))
        eta = solve_rows(group.row_inv, group.take(beta, ws, "m_am"), ws, "m_u")  # (c, n)
        gap = ws("m_gap", (n, d))
        gap.fill(0.0)
        group.put(gap, eta)
        return gap

    def _evaluate_shared(self, x, group, wlp, ws):
        """:meth:`evaluate` for one shared precision (:meth:`_shared_terms`): the work
        is ``y`` (n, D). With ``a = P x~0`` and ``u = -P_mm^-1 a_m``,
        ``y^T P y = x~0 . a + u . a_m`` and ``(P y) . mu~_k = y . (P mu~_k)``: one
        product with ``P`` per row."""
        precision = self.precisions[0]
        c, n = group.flat.shape
        y = ws("m_y", x.shape)
        np.subtract(x, self.shift, out=y, dtype=np.float64)
        group.put(y, 0.0)
        group.row_inv = np.take(group.unit_inv, group.pattern, axis=2,
                                out=ws("m_inv", (c, c, n)), mode="clip")
        a = np.dot(y, precision, out=ws("m_a", y.shape))
        a_m = group.take(a, ws, "m_am")
        u = solve_rows(group.row_inv, a_m, ws, "m_u")
        np.negative(u, out=u)
        quad = np.einsum("nd,nd->n", y, a, out=ws("m_quad", (n,)))
        quad += np.einsum("cn,cn->n", u, a_m, out=ws("m_quad+", (n,)))
        group.put(y, u)
        np.dot(self.mu_precision, y.T, out=wlp)  # (K, n): (P y) . mu~_k
        quad *= 0.5
        wlp -= quad
        wlp += group.row_const(ws)  # with -q_pk / 2
        return wlp, y

    def _accumulate_shared(self, acc, group, y, resp, lse, finite, weight, ws):
        """:meth:`accumulate` for one shared precision: with ``e_nk = y_n - z_pk``,
        ``sum_k r e e^T = rho y y^T - y zbar^T - zbar y^T + sum_k r z z^T``
        (``rho = sum_k r``: one, or the row's weight; ``zbar = sum_k r z =
        sum_k r mu~_k - E``, :meth:`_gap_correction`), so that
        ``sum_n y zbar^T = (R y)^T mu~ - y^T E``; the parts in ``z`` alone are
        summed per pattern in :meth:`finish`."""
        left_out = acc.weigh(resp, finite, lse, weight)
        if left_out is not None:
            y[left_out] = 0.0
        gap = self._gap_correction(group, resp, ws)
        ry = np.dot(resp, y)  # (K, D)
        cross = np.dot(ry.T, self.mu_shifted) - np.dot(y.T, gap)  # sum_n y zbar^T
        outer = np.dot(y.T, y if weight is None else y * weight[:, None])
        acc.nk += resp.sum(axis=1)
        acc.sk += ry
        acc.Sk += outer
        acc.Sk -= cross
        acc.Sk -= cross.T

    def _add_shared_parts(self, acc, patterns, mass, h, contrib):
        """The parts in ``z`` alone of one group's statistics (:meth:`finish`): into
        ``acc``, and ``H`` into ``contrib`` (P, 1, c, c). Sums over the patterns'
        missing features are counts by feature (``np.bincount``, one per component:
        no (P c, D) one-hot array)."""
        k, d = self.means.shape
        mh = h * mass[:, None, :]  # (P, c, K)
        n_k = mass.sum(axis=0)
        feature = patterns.ravel()
        by_component = np.ascontiguousarray(np.moveaxis(mh, 2, 0)).reshape(k, -1)  # (K, P c)
        # (D, K): sum_pk M_pk h_pk at m
        at_m = np.stack([np.bincount(feature, weights=w, minlength=d) for w in by_component],
                        axis=1)
        self._add_shared_sums(acc, at_m, n_k)
        contrib[:, 0] += np.matmul(mh, np.swapaxes(h, 1, 2))  # H

    def _add_shared_sums(self, acc, at_m, n_k):
        """What :meth:`_add_shared_parts` adds to ``acc`` from ``at_m`` (D, K),
        ``sum_pk M_pk h_pk at m``, and ``n_k`` the components' masses."""
        mu = self.mu_shifted
        acc.sk += at_m.T - n_k[:, None] * mu
        ct = np.dot(at_m, mu)  # C^T
        acc.Sk += np.dot(mu.T * n_k, mu) - ct - ct.T
