"""A fit with a checkpoint, run as its own process so that tests can SIGKILL it.

    python checkpoint_worker.py DATA.zarr CHECKPOINT.zarr MODEL.zarr {threads|distributed} [recovery]

``recovery``: the fit of ``RECOVERY_FIT`` (a far singleton without ``reg_covar``:
its component collapses and is re-seeded) instead of ``FIT``.
"""

import sys
import warnings

import dask
import dask.array as da

from daskgmm import GaussianMixture

FIT = dict(n_components=4, n_init=2, random_state=0, tol=0.0, max_iter=25, checkpoint_every=1)
RECOVERY_FIT = dict(n_components=3, random_state=0, reg_covar=0.0, tol=0.0, max_iter=60,
                    checkpoint_every=1)


def fit(data, checkpoint=None, params=FIT):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(**params, checkpoint=checkpoint).fit(data)


if __name__ == "__main__":
    data_path, ckpt_path, model_path, scheduler = sys.argv[1:5]
    params = RECOVERY_FIT if sys.argv[5:] == ["recovery"] else FIT
    X = da.from_zarr(data_path)
    if scheduler == "distributed":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c, Client(c):
            fit(X, ckpt_path, params).save(model_path, overwrite=True)
    else:
        with dask.config.set(scheduler="threads"):
            fit(X, ckpt_path, params).save(model_path, overwrite=True)
