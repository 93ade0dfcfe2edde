"""Fit a cloud-gapped image cube with its missing values marginalised, then fill the gaps.

A (time, lat, lon, band) cube of three surface types loses its two visible bands
under clouds (the infrared band sees through them), in patches that differ from
one date to the next. The cube is written to Zarr and opened lazily with
xarray. ``missing="marginalize"`` fits every cell, using the observed bands of
the cloudy ones, where ``missing="drop"`` would lose every cloudy cell; ``impute``
then fills each gap with its conditional expectation under the mixture, lazily,
back into Zarr. The script prints the error of the filled values against the
truth next to that of filling with each band's mean, and draws both as a PNG.

    python examples/cloud_gaps.py [--out DIR]

Writes DIR/cube.zarr, DIR/filled.zarr and DIR/cloud_gaps.png (default DIR: a new
temporary folder, printed at the end).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import numpy as np
import xarray as xr

from daskgmm import GaussianMixture


def make_cube(nt=4, ny=80, nx=160, seed=0):
    """Three surface types with correlated spectra, and clouds over the visible bands."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-60, 60, ny)
    lon = np.linspace(-180, 180, nx, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    kind = (np.sin(np.radians(lo) * 2) + np.cos(np.radians(la) * 3) > 0.3).astype(int)
    kind[np.abs(la) > 45] = 2
    spectra = np.array([[0.05, 0.03, 0.30], [0.12, 0.10, 0.20], [0.60, 0.55, 0.05]])
    # within a surface type the bands vary together (brightness), so the infrared
    # band says something about the visible ones beyond the type's mean
    brightness = rng.normal(scale=0.03, size=(nt, ny, nx, 1))
    noise = rng.normal(scale=0.005, size=(nt, ny, nx, 3))
    values = spectra[kind][None] * (1 + 4 * brightness) + noise
    truth = xr.DataArray(
        values.astype(np.float32),
        dims=("time", "lat", "lon", "band"),
        coords={"time": np.arange(nt), "lat": lat, "lon": lon,
                "band": np.array(["blue", "green", "infrared"], dtype=object)},
        name="reflectance",
    )
    clouds = np.zeros((nt, ny, nx), dtype=bool)
    for t in range(nt):  # a few elliptic cloud patches per date
        for _ in range(6):
            cy, cx = rng.uniform(-60, 60), rng.uniform(-180, 180)
            ry, rx = rng.uniform(8, 20), rng.uniform(15, 40)
            clouds[t] |= ((la - cy) / ry) ** 2 + ((lo - cx) / rx) ** 2 < 1
    gapped = truth.copy()
    gapped.values[clouds[..., None] & np.array([True, True, False])] = np.nan
    return truth, gapped, clouds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="daskgmm-gaps-"))
    out.mkdir(parents=True, exist_ok=True)

    truth, gapped, clouds = make_cube()
    gapped.chunk({"time": 1, "lat": 40, "lon": 80}).to_dataset().to_zarr(
        out / "cube.zarr", mode="w", consolidated=False)
    lazy = xr.open_zarr(out / "cube.zarr", consolidated=False)["reflectance"]

    gm = GaussianMixture(3, missing="marginalize", feature_dim="band", random_state=0).fit(lazy)
    filled = gm.impute(lazy)  # lazy, the cube's own layout: gaps filled, the rest as it was
    filled.to_dataset().to_zarr(out / "filled.zarr", mode="w", consolidated=False)
    filled = xr.open_zarr(out / "filled.zarr", consolidated=False)["reflectance"].load()

    gaps = np.isnan(gapped.values)
    err_model = np.abs(filled.values - truth.values)[gaps].mean()
    band_means = np.nanmean(gapped.values, axis=(0, 1, 2))
    err_mean = np.abs(np.broadcast_to(band_means, truth.shape) - truth.values)[gaps].mean()
    print(f"fitted {gm.n_iter_} iterations on {clouds.mean():.0%} cloudy cells, "
          f"converged={gm.converged_}")
    print(f"mean absolute error in the gaps: mixture {err_model:.4f}, band means {err_mean:.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True, layout="constrained")
    shown = [(truth, "truth"), (gapped, "under clouds (grey: NaN)"),
             (filled, "gaps filled by impute")]
    for ax, (cube, title) in zip(axes, shown):
        band = cube.sel(band="blue").isel(time=0)
        mesh = ax.pcolormesh(band["lon"], band["lat"], band, vmin=0, vmax=0.7, shading="auto")
        ax.set_facecolor("0.75")
        ax.set_title(title)
        ax.set_xlabel("longitude")
    axes[0].set_ylabel("latitude")
    fig.suptitle("blue band, time 0")
    fig.colorbar(mesh, ax=axes, label="reflectance")
    fig.savefig(out / "cloud_gaps.png", dpi=80)
    print(f"wrote {out / 'cloud_gaps.png'}")


if __name__ == "__main__":
    main()
