"""scikit-learn's own GaussianMixture tests, run against ``daskgmm.GaussianMixture``.

The test file is read from the installed scikit-learn when the test runs (nothing
of it is kept in this repository); its import of scikit-learn's class is
replaced by ours, and pytest runs it in a subprocess with scikit-learn's conftest
as a plugin (its fixtures: ``global_dtype``, ``global_random_seed``). The tests
that exercise scikit-learn's private functions rather than the estimator's
behaviour are deselected, each with its reason.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import sklearn

SOURCE = pathlib.Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"
IMPORT = "from sklearn.mixture import GaussianMixture\n"

#: test name -> why it does not apply to daskgmm.
DESELECTED = {
    "test_suffstat_sk_full": "scikit-learn's private _estimate_gaussian_covariances_full",
    "test_suffstat_sk_tied": "scikit-learn's private _estimate_gaussian_covariances_tied",
    "test_suffstat_sk_diag": "scikit-learn's private _estimate_gaussian_covariances_diag",
    "test_gaussian_suffstat_sk_spherical": "scikit-learn's private _estimate_gaussian_covariances_spherical",
    "test_compute_log_det_cholesky": "scikit-learn's private _compute_log_det_cholesky",
    "test_gaussian_mixture_log_probabilities": "scikit-learn's private _estimate_log_gaussian_prob",
    "test_gaussian_mixture_estimate_log_prob_resp": "the private method _estimate_log_prob_resp",
    "test_gaussian_mixture_precisions_init": "the private methods _set_parameters and _initialize",
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters":
        "mocks scikit-learn's private _estimate_gaussian_parameters",
    "test_gaussian_mixture_array_api_compliance":
        "array API dispatch (CuPy, PyTorch arrays) is scikit-learn's; daskgmm takes NumPy, "
        "Dask, xarray and Zarr",
    "test_gaussian_mixture_raises_where_array_api_not_implemented": "array API dispatch, as above",
}


def test_the_deselected_tests_exist():
    """A deselected name that scikit-learn no longer has would hide nothing: say so."""
    names = set(re.findall(r"^def (test_\w+)", SOURCE.read_text(), flags=re.M))
    assert set(DESELECTED) <= names, sorted(set(DESELECTED) - names)


@pytest.mark.slow
def test_scikit_learn_gaussian_mixture_tests_pass(tmp_path):
    text = SOURCE.read_text()
    assert text.count(IMPORT) == 1, "scikit-learn's test file imports its class differently"
    path = tmp_path / "test_sklearn_gaussian_mixture.py"
    path.write_text(text.replace(IMPORT, "from daskgmm import GaussianMixture\n"))
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", str(path), "-p", "sklearn.conftest",
            "-p", "no:cacheprovider", "-q", "-rs", "--rootdir", str(tmp_path),
            "-k", " and ".join(f"not {name}" for name in DESELECTED),
        ],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "SKLEARN_RUN_FLOAT32_TESTS": "1"},  # float32 too
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 50 and "failed" not in summary, done.stdout[-3000:]
