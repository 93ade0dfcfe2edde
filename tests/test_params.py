"""M-step and parameter conversions."""

from __future__ import annotations

import numpy as np
import pytest

from daskgmm.errors import EmptyComponentWarning
from daskgmm.covariance import COVARIANCE
from daskgmm.params import SufficientStatistics, m_step

from helpers import random_params


def _stats(nk, sk, Sk, centers, n):
    return SufficientStatistics(0.0, n, 0, float(n), np.asarray(nk, float), np.asarray(sk, float), np.asarray(Sk, float), np.asarray(centers, float))


def test_empty_component_keeps_previous_parameters_and_warns():
    prev = random_params("full", k=2, d=2)
    nk = np.array([10.0, 0.0])
    sk = np.zeros((2, 2))
    Sk = np.stack([np.eye(2) * 10, np.zeros((2, 2))])
    with pytest.warns(EmptyComponentWarning, match=r"Component\(s\) 1 received no samples"):
        new = m_step(_stats(nk, sk, Sk, prev.means, 10), prev, 1e-6, eps=np.finfo(float).eps)
    np.testing.assert_array_equal(new.means[1], prev.means[1])
    np.testing.assert_array_equal(new.covariances[1], prev.covariances[1])
    assert new.weights[1] < 1e-14 and np.isfinite(new.precisions_cholesky).all()


def test_not_positive_definite_covariance_names_the_component():
    prev = random_params("full", k=2, d=2)
    Sk = np.stack([np.eye(2) * 10, np.array([[1.0, 2.0], [2.0, 1.0]]) * 10])
    with pytest.raises(ValueError, match=r"component\(s\) 1 is not positive definite after adding reg_covar"):
        m_step(_stats([10.0, 10.0], np.zeros((2, 2)), Sk, prev.means, 20), prev, 1e-6, eps=1e-16)
    with pytest.raises(ValueError, match=r"component\(s\) 0 "):
        COVARIANCE["diag"].precision_cholesky(np.array([[-1.0, 1.0], [1.0, 1.0]]))
