"""Nearest-centre kernels against naive sums."""

from __future__ import annotations

import numpy as np
import pytest

from daskgmm import kmeans
from daskgmm.params import SufficientStatistics


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_assignment_statistics_use_nearest_centre(covariance_type, dtype):
    """Against naive sums over the rows nearest to each centre; rows with NaN are
    counted and left out; a centre that no row is nearest to gets nothing."""
    rng = np.random.default_rng(7)
    C = np.array([[0.0, 0.0, 0.0], [3.0, 3.0, 0.0], [1e3, 1e3, 1e3]]) + 50.0
    X = (C[rng.integers(2, size=20_000)] + rng.normal(size=(20_000, 3))).astype(dtype)
    X[[5, 9000, 17000], 1] = np.nan
    st = SufficientStatistics.from_vector(
        kmeans.chunk_assignment_statistics(X, C, covariance_type)[0], C, covariance_type
    )
    ok = np.isfinite(X).all(axis=1)
    X64 = X[ok].astype(np.float64)
    lab = ((X64[:, None] - C[None]) ** 2).sum(-1).argmin(1)
    assert st.n_nonfinite == 3 and st.n_samples == 20_000
    np.testing.assert_array_equal(st.nk, np.bincount(lab, minlength=3))
    np.testing.assert_allclose(st.log_lik_sum, ((X64 - C[lab]) ** 2).sum(), rtol=1e-12)
    for j in range(2):
        diff = X64[lab == j] - C[j]
        np.testing.assert_allclose(st.sk[j], diff.sum(0), rtol=1e-10, atol=1e-9)
        second = {"full": diff.T @ diff, "tied": None}.get(covariance_type, (diff**2).sum(0))
        if second is not None:
            np.testing.assert_allclose(st.Sk[j], second, rtol=1e-10)
    if covariance_type == "tied":
        total = sum((X64[lab == j] - C[j]).T @ (X64[lab == j] - C[j]) for j in range(2))
        np.testing.assert_allclose(st.Sk, total, rtol=1e-10)
    assert st.nk[2] == 0 and not st.sk[2].any()
