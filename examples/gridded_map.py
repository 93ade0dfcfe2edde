"""Cluster a gridded data set out of core and draw the labels as a map.

A (time, lat, lon, band) cube of three surface types, with NaN over a land mask,
is written to a Zarr store on disk, opened lazily with xarray, fitted without
ever being loaded whole (``persist=False``: each EM iteration streams the store),
and labelled; the labels go back to Zarr chunk by chunk and are drawn as a map.

    python examples/gridded_map.py [--out DIR]

Writes DIR/cube.zarr, DIR/labels.zarr and DIR/gridded_map.png (default DIR: a
new temporary folder, printed at the end).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import numpy as np
import xarray as xr

from daskgmm import GaussianMixture


def make_cube(nt=6, ny=90, nx=180, seed=0):
    """Three surface types with different spectra; NaN over two 'continents'."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-60, 60, ny)
    lon = np.linspace(-180, 180, nx, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    kind = (np.sin(np.radians(lo) * 2) + np.cos(np.radians(la) * 3) > 0.3).astype(int)
    kind[np.abs(la) > 45] = 2  # polar water
    spectra = np.array([[0.05, 0.02, 0.01], [0.10, 0.08, 0.03], [0.60, 0.55, 0.50]])
    values = spectra[kind][None] + rng.normal(scale=0.015, size=(nt, ny, nx, 3))
    land = ((la - 10) ** 2 / 400 + (lo + 90) ** 2 / 900 < 1) | (
        (la + 20) ** 2 / 300 + (lo - 40) ** 2 / 600 < 1
    )
    values[:, land, :] = np.nan
    return xr.DataArray(
        values.astype(np.float32),
        dims=("time", "lat", "lon", "band"),
        coords={"time": np.arange(nt), "lat": lat, "lon": lon, "band": np.array(["blue", "green", "red"], dtype=object)},
        name="reflectance",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="daskgmm-map-"))
    out.mkdir(parents=True, exist_ok=True)

    cube = make_cube().chunk({"time": 1, "lat": 45, "lon": 60})
    cube.to_dataset().to_zarr(out / "cube.zarr", mode="w", consolidated=False)

    lazy = xr.open_zarr(out / "cube.zarr", consolidated=False)["reflectance"]
    gm = GaussianMixture(
        3,
        covariance_type="diag",
        sample_dims=["time", "lat", "lon"],
        feature_dim="band",
        persist=False,  # stream the store at every iteration
        random_state=0,
    ).fit(lazy)
    labels = gm.predict(lazy)  # lazy, over (time, lat, lon); -1 on land
    labels.to_dataset().to_zarr(out / "labels.zarr", mode="w", consolidated=False)
    print(f"fitted {gm.n_iter_} iterations, converged={gm.converged_}")
    print("weights:", np.round(gm.weights_, 3))
    print("mean spectrum per component:\n", np.round(gm.means_, 3))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = xr.open_zarr(out / "labels.zarr", consolidated=False)["label"].isel(time=0).load()
    shown = first.where(first >= 0)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    mesh = ax.pcolormesh(
        first["lon"], first["lat"], shown, cmap=plt.get_cmap("viridis", 3), shading="auto"
    )
    ax.set_facecolor("0.75")  # land (no label) in grey
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("daskgmm labels, time 0 (grey: masked land)")
    fig.colorbar(mesh, ax=ax, ticks=[0, 1, 2], label="component")
    fig.tight_layout()
    fig.savefig(out / "gridded_map.png", dpi=80)
    print(f"wrote {out / 'gridded_map.png'}")


if __name__ == "__main__":
    main()
