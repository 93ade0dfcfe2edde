"""The benchmark scripts run, at small sizes, and print the comparisons they promise.

Their figures are not checked here (no timed assertions); this keeps the scripts
that back the README's figures working.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"

RUNS = {
    "bench_em.py": (["--n-samples", "20000", "--iterations", "2"], "speed-up per iteration"),
    "bench_init.py": (["--n-samples", "6000", "--n-components", "5", "--seeds", "1",
                       "--chunk-rows", "2000"], "mean lower bound, daskgmm - scikit-learn"),
    "bench_stream.py": (["--sizes", "20000", "40000", "--chunk-rows", "10000", "--iterations", "2",
                         "--covariance-type", "diag", "--cold"], "(cold): peak RSS"),
    "bench_n_init.py": (["--n-samples", "40000", "--chunk-rows", "10000", "--iterations", "2",
                         "--cold"], "lockstep speed-up for n_init=3"),
    "bench_kernels.py": (["--rows", "4000", "--repeats", "1"], "ratio: scikit-learn / daskgmm"),
    "bench_missing.py": (["--rows", "4000", "--repeats", "1", "--covariance-type", "full",
                          "--fit-rows", "8000", "--iterations", "2", "--fit-repeats", "1"],
                         "EM iterations of GaussianMixture"),
    "bench_search.py": (["--n-samples", "8000", "--chunk-rows", "2000", "--max-components", "3",
                         "--n-features", "3", "--separate", "4"], "search speed-up over separate"),
    "bench_fit.py": (["--n-samples", "6000", "--chunk-rows", "2000", "--n-components", "4",
                      "--n-features", "4", "--accelerate"], "plain EM's bound after"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs(script, tmp_path):
    args, expected = RUNS[script]
    if script in ("bench_stream.py", "bench_n_init.py", "bench_search.py"):
        args = [*args, "--dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True, text=True, timeout=300, cwd=BENCHMARKS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout[-3000:]
