"""The examples run as a user runs them, and produce what they promise."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import xarray as xr

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_gridded_map_example(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "gridded_map.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    png = tmp_path / "gridded_map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = xr.open_zarr(tmp_path / "labels.zarr", consolidated=False)["label"]
    cube = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False)["reflectance"]
    land = cube.isnull().any("band")
    assert labels.dims == ("time", "lat", "lon")
    values, masked = labels.values, land.values
    assert (values[masked] == -1).all()
    assert set(np.unique(values[~masked])) == {0, 1, 2}


def test_cloud_gaps_example_fills_the_gaps_better_than_band_means(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "cloud_gaps.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "cloud_gaps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = re.search(r"in the gaps: mixture ([0-9.]+), band means ([0-9.]+)", done.stdout)
    assert errors and float(errors[1]) < 0.25 * float(errors[2]), done.stdout
    gapped = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False)["reflectance"].load()
    filled = xr.open_zarr(tmp_path / "filled.zarr", consolidated=False)["reflectance"].load()
    assert filled.dims == gapped.dims and not filled.isnull().any()
    seen = ~gapped.isnull()
    assert (filled.values[seen.values] == gapped.values[seen.values]).all()


def test_cluster_fit_example_connects_fits_and_shows_progress():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "cluster_fit.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dashboard: http" in done.stdout
    assert "converged=True" in done.stdout
    assert "daskgmm.em iteration 1  lower bound" in done.stderr


def test_model_selection_example_finds_the_true_model_and_draws_the_bic(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "model_selection.py"), "--out", str(tmp_path),
         "--n-samples", "30000"], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best by BIC: 5 components, full covariance" in done.stdout, done.stdout
    assert (tmp_path / "model_selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results.csv").read_text().count("\n") == 33


def test_the_readme_layout_lists_every_module():
    """Each module of the package is in the README's layout section, at its place:
    ``daskgmm/x.py`` for the top level, ``y.py`` under ``daskgmm/pkg/``."""
    root = EXAMPLES.parent
    layout = root.joinpath("README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    entries = [line.split()[0] for line in layout.splitlines() if line.startswith("    ")]
    listed, package = set(), None
    for entry in entries:
        if entry.startswith("daskgmm/"):
            package = entry if entry.endswith("/") else None
            listed.add(entry)
        elif package is not None:
            listed.add(package + entry)
    modules = {p.relative_to(root).as_posix() for p in (root / "daskgmm").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") or p.parent.name == "daskgmm"}
    assert sorted(modules - listed) == []
