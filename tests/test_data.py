"""Input from Zarr stores and xarray objects; results back onto dims and coords, and to Zarr."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import blobs

from daskgmm import GaussianMixture

START = {}


def gridded(seed=0, masked=True):
    """A (time, lat, lon, band) cube of three surface types, with NaN over 'land'."""
    rng = np.random.default_rng(seed)
    nt, ny, nx, nb = 4, 30, 40, 3
    lat = np.linspace(-30, 30, ny)
    lon = np.linspace(0, 80, nx)
    kind = (np.add.outer(np.sin(lat / 10), np.cos(lon / 12)) > 0).astype(int) + (lon > 60)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, 6.0]])
    values = centres[kind][None] + rng.normal(scale=0.7, size=(nt, ny, nx, nb))
    if masked:
        land = np.add.outer((lat - 10) ** 2, (lon - 20) ** 2) < 120
        values[:, land, :] = np.nan
    da_ = xr.DataArray(
        values,
        dims=("time", "lat", "lon", "band"),
        coords={"time": np.arange(nt), "lat": lat, "lon": lon, "band": ["red", "nir", "swir"]},
        name="reflectance",
    )
    return da_.chunk({"time": 1, "lat": 12, "lon": 15})


def rows_of(cube):
    return cube.transpose("time", "lat", "lon", "band").values.reshape(-1, cube.sizes["band"])


def init_for(X, k=3):
    X = X[np.isfinite(X).all(1)]
    gm = GaussianMixture(k, random_state=0, max_iter=2).fit(X)
    return dict(weights_init=gm.weights_, means_init=gm.means_, precisions_init=gm.precisions_)


@pytest.fixture
def zarr_path(tmp_path):
    X, _ = blobs(5000, 3, 3, seed=2)
    path = tmp_path / "data.zarr"
    da.from_array(X, chunks=(800, 3)).to_zarr(str(path))
    return X, path


def test_zarr_path_gives_the_same_model_as_the_array(zarr_path):
    X, path = zarr_path
    a = GaussianMixture(3, random_state=0).fit(str(path))
    b = GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(800, 3)))
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.lower_bounds_ == b.lower_bounds_
    labels = a.predict(str(path))
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), b.predict(X))


def test_zarr_group_and_array_name(tmp_path):
    X, _ = blobs(1000, 2, 2)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("pixels", data=X, chunks=(300, 2))
    group.create_array("other", data=np.zeros(3))
    gm = GaussianMixture(2, random_state=0).fit(str(tmp_path / "g.zarr" / "pixels"))
    assert gm.n_features_in_ == 2
    with pytest.raises(ValueError, match=r"is a Zarr group, not an array.*arrays: other, pixels"):
        GaussianMixture(2).fit(str(tmp_path / "g.zarr"))
    with pytest.raises(FileNotFoundError, match="no Zarr array or group"):
        GaussianMixture(2).fit(str(tmp_path / "missing.zarr"))


def test_stacked_sample_dims_without_rechunk_and_labels_at_the_right_coordinates():
    cube = gridded(masked=False)
    gm = GaussianMixture(3, random_state=0, sample_dims=["time", "lat", "lon"], feature_dim="band")
    gm.fit(cube)
    labels = gm.predict(cube)
    # The rows are laid out block by block: as many row chunks as blocks, none bigger.
    from daskgmm.data import as_rows

    rows = as_rows(cube, sample_dims=["time", "lat", "lon"], feature_dim="band").array
    assert rows.numblocks[0] == np.prod(cube.data.numblocks[:3])
    assert max(rows.chunks[0]) == 1 * 12 * 15
    # Labels: an xarray over the sample dims, same chunks and coordinates...
    assert isinstance(labels, xr.DataArray) and labels.dims == ("time", "lat", "lon")
    assert labels.chunks == cube.chunks[:3]
    for c in ("time", "lat", "lon"):
        np.testing.assert_array_equal(labels[c], cube[c])
    # ...and equal to predicting the hand-stacked rows, reshaped back.
    by_hand = gm.predict(rows_of(cube)).reshape(cube.shape[:3])
    np.testing.assert_array_equal(labels.values, by_hand)
    proba = gm.predict_proba(cube)
    assert proba.dims == ("time", "lat", "lon", "component")
    np.testing.assert_allclose(proba.sum("component").values, 1.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_masked_cells_are_left_out_and_get_missing_labels():
    cube = gridded(masked=True)
    X = rows_of(cube)
    start = init_for(X)
    a = GaussianMixture(3, feature_dim="band", max_iter=20, tol=0, **start).fit(cube)
    b = GaussianMixture(3, max_iter=20, tol=0, **start).fit(X[np.isfinite(X).all(1)])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)
    labels = a.predict(cube).values
    land = np.isnan(cube.values).any(axis=-1)
    assert (labels[land] == -1).all() and (labels[~land] >= 0).all()
    assert np.isnan(a.score_samples(cube).values[land]).all()
    assert np.isnan(a.predict_proba(cube).values[land]).all()
    assert a.score(cube) == pytest.approx(b.score(X[~land.ravel()]), rel=1e-10)
    assert a.bic(cube) == pytest.approx(b.bic(X[~land.ravel()]), rel=1e-10)


def test_missing_values_are_an_error_unless_dropped():
    cube = gridded(masked=True)
    with pytest.raises(ValueError, match="Pass missing='drop'"):
        GaussianMixture(3, feature_dim="band", missing="raise", random_state=0).fit(cube)
    X = rows_of(cube)
    Xd = da.from_array(X, chunks=(1000, 3))
    with pytest.raises(ValueError, match="Pass missing='drop'"):
        GaussianMixture(3, random_state=0).fit(Xd)
    gm = GaussianMixture(3, random_state=0, missing="drop").fit(Xd)
    assert (gm.predict(Xd).compute()[~np.isfinite(X).all(1)] == -1).all()


def test_dataset_variables_are_the_features():
    cube = gridded(masked=False)
    ds = cube.to_dataset(dim="band")
    gm = GaussianMixture(3, random_state=0).fit(ds)
    assert list(gm.feature_names_in_) == ["red", "nir", "swir"]
    labels = gm.predict(ds)
    assert labels.dims == ("time", "lat", "lon")
    ref = GaussianMixture(3, random_state=0, feature_dim="band").fit(cube)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)
    with pytest.raises(ValueError, match="feature names"):
        gm.predict(ds[["nir", "red", "swir"]])


def test_numpy_backed_xarray_returns_computed_xarray():
    X, _ = blobs(300, 2, 2)
    arr = xr.DataArray(X, dims=("pixel", "band"), coords={"pixel": np.arange(300) * 10})
    gm = GaussianMixture(2, random_state=0).fit(arr)
    out = gm.predict(arr)
    assert isinstance(out, xr.DataArray) and isinstance(out.data, np.ndarray)
    np.testing.assert_array_equal(out["pixel"], arr["pixel"])
    np.testing.assert_array_equal(out.values, gm.predict(X))


def test_bad_xarray_layouts_are_explained():
    cube = gridded(masked=False)
    with pytest.raises(ValueError, match="feature_dim="):
        GaussianMixture(2).fit(cube)
    with pytest.raises(ValueError, match="must together name every dimension"):
        GaussianMixture(2, sample_dims=["lat", "lon"], feature_dim="band").fit(cube)


@pytest.mark.parametrize("persist", [True, False])
def test_persisted_or_streamed_gives_the_same_result(zarr_path, persist):
    X, path = zarr_path
    ref = GaussianMixture(3, random_state=0, persist=True).fit(str(path))
    gm = GaussianMixture(3, random_state=0, persist=persist).fit(str(path))
    np.testing.assert_array_equal(gm.means_, ref.means_)


def test_results_written_to_zarr_chunk_by_chunk_read_back_equal(zarr_path, tmp_path):
    X, path = zarr_path
    gm = GaussianMixture(3, random_state=0).fit(str(path))
    gm.predict(str(path)).to_zarr(str(tmp_path / "labels.zarr"))
    gm.predict_proba(str(path)).to_zarr(str(tmp_path / "proba.zarr"))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "labels.zarr"))[:], gm.predict(X))
    np.testing.assert_allclose(zarr.open_array(str(tmp_path / "proba.zarr"))[:], gm.predict_proba(X))
    cube = gridded(masked=True)
    gm = GaussianMixture(3, feature_dim="band", random_state=0).fit(cube)
    gm.predict(cube).to_dataset().to_zarr(str(tmp_path / "map.zarr"), consolidated=False)
    back = xr.open_zarr(str(tmp_path / "map.zarr"), consolidated=False)["label"]
    np.testing.assert_array_equal(back.values, gm.predict(cube).values)
    np.testing.assert_array_equal(back["lat"], cube["lat"])


def test_dataset_variables_over_different_dimensions_or_not_numbers_are_refused():
    import xarray as xr

    from daskgmm.data import as_rows

    ds = xr.Dataset({"a": ("t", np.arange(4.0)), "b": ("s", np.arange(3.0))})
    with pytest.raises(ValueError, match=r"must all be over the sample dimensions \('t',\), but 'b' is over \('s',\)"):
        as_rows(ds)
    ds = xr.Dataset({"a": ("t", np.arange(4.0)), "when": ("t", np.array(["2020-01-01"] * 4, dtype="datetime64[ns]"))})
    with pytest.raises(ValueError, match="variable 'when' holds datetime64"):
        as_rows(ds)
    ds = xr.Dataset({"a": ("t", np.arange(4.0)), "name": ("t", np.array(list("wxyz")))})
    with pytest.raises(ValueError, match="variable 'name' holds <U1"):
        as_rows(ds)
