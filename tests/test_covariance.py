"""Each covariance type's math against scikit-learn's own functions and naive references."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import _gaussian_mixture as skgm
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from daskgmm.covariance import COVARIANCE, COVARIANCE_TYPES

from helpers import TYPES, random_params


def test_every_type_is_registered_once():
    assert COVARIANCE_TYPES == ("full", "tied", "diag", "spherical")
    assert all(COVARIANCE[name].name == name for name in COVARIANCE_TYPES)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_conversions_round_trip(covariance_type):
    p = random_params(covariance_type)
    cov = COVARIANCE[covariance_type]
    pc = cov.precision_cholesky(p.covariances)
    np.testing.assert_allclose(cov.covariances(pc), p.covariances, rtol=1e-10)
    prec = cov.precisions(pc)
    np.testing.assert_allclose(cov.precision_cholesky_from_precisions(prec), pc, rtol=1e-8)
    if covariance_type in ("full", "tied"):
        np.testing.assert_allclose(prec @ p.covariances, np.broadcast_to(np.eye(4), prec.shape), atol=1e-10)



@pytest.mark.parametrize("covariance_type", TYPES)
def test_precision_cholesky_and_log_det_equal_scikit_learn(covariance_type):
    p = random_params(covariance_type, k=3, d=4)
    cov = COVARIANCE[covariance_type]
    want = skgm._compute_precision_cholesky(p.covariances, covariance_type)
    np.testing.assert_allclose(cov.precision_cholesky(p.covariances), want, rtol=1e-12)
    np.testing.assert_allclose(
        cov.log_det_cholesky(want, 4),
        skgm._compute_log_det_cholesky(want, covariance_type, 4),
        rtol=1e-12,
    )


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("k,d", [(1, 1), (3, 4), (8, 16)])
def test_n_parameters_equals_scikit_learn(covariance_type, k, d):
    sk = SkGaussianMixture(k, covariance_type=covariance_type)
    sk.means_ = np.zeros((k, d))
    assert COVARIANCE[covariance_type].n_parameters(k, d) == sk._n_parameters()


@pytest.mark.parametrize("covariance_type", TYPES)
def test_m_step_covariances_equal_scikit_learn_from_the_same_responsibilities(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    resp = rng.dirichlet(np.ones(4), size=500)
    nk = resp.sum(0) + 10 * np.finfo(float).eps
    means = resp.T @ X / nk[:, None]
    want = {
        "full": skgm._estimate_gaussian_covariances_full,
        "tied": skgm._estimate_gaussian_covariances_tied,
        "diag": skgm._estimate_gaussian_covariances_diag,
        "spherical": skgm._estimate_gaussian_covariances_spherical,
    }[covariance_type](resp, X, nk, means, 1e-6)
    centers = means + 0.5  # statistics centred elsewhere than on the new means
    diff = X[None] - centers[:, None]
    sk = np.einsum("nk,knd->kd", resp, diff)
    full = np.einsum("nk,kni,knj->kij", resp, diff, diff)
    Sk = {"full": full, "tied": full.sum(0)}.get(covariance_type, np.einsum("kii->ki", full))
    got = COVARIANCE[covariance_type].m_step_covariances(nk, sk / nk[:, None], Sk, 1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_sample_draws_as_scikit_learn(covariance_type):
    p = random_params(covariance_type, k=3, d=2)
    counts = np.array([5, 0, 7])
    parts = COVARIANCE[covariance_type].sample(np.random.RandomState(3), p.means, p.covariances, counts)
    assert [len(x) for x in parts] == [5, 0, 7]
    sk = SkGaussianMixture(3, covariance_type=covariance_type, random_state=3)
    sk.weights_, sk.means_, sk.covariances_ = p.weights, p.means, p.covariances
    rng = np.random.RandomState(3)
    want_counts = rng.multinomial(12, p.weights)
    mine = COVARIANCE[covariance_type].sample(rng, p.means, p.covariances, want_counts)
    np.testing.assert_allclose(np.vstack(mine), sk.sample(12)[0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precisions_that_are_not_positive_definite_get_scikit_learn_wording(covariance_type):
    cov = COVARIANCE[covariance_type]
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="should be symmetric, positive-definite: precisions_init"):
        cov.check_precisions(bad[None] if covariance_type == "full" else bad)
