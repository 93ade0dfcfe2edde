"""The commands of the ``daskgmm`` program, one function each (``args``: the
parsed options, see :mod:`daskgmm.cli.parser`); each returns the exit status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

from ..covariance import COVARIANCE_TYPES
from ..safety import check_apart, check_output, replace_atomically

__all__ = ["csv_list", "run_demo", "run_fit", "run_impute", "run_inspect", "run_predict",
           "run_search"]

logger = logging.getLogger("daskgmm.cli")


def csv_list(value: str | None):
    return None if value is None else [v for v in value.split(",") if v]


def _open_data(path: str, args, exclude=(), order=None):
    """The data argument as the estimator takes it: a Zarr path, or an xarray object
    (a Dataset without the variables in ``exclude``). ``order``: a model's feature
    names, which a Dataset's variables follow when it has them all (a store lists
    its variables in no set order)."""
    if getattr(args, "variable", None) or getattr(args, "dataset", False):
        import xarray as xr

        try:
            ds = xr.open_zarr(path, consolidated=None)
        except FileNotFoundError:
            raise FileNotFoundError(f"no Zarr store at {path}") from None
        if args.variable:
            if args.variable not in ds:
                raise ValueError(
                    f"{path} has no variable {args.variable!r} (variables: {', '.join(ds.data_vars)})"
                )
            return ds[args.variable]
        names = csv_list(args.variables) or list(ds.data_vars)
        if not args.variables and order is not None and set(order) <= set(names):
            names = list(order)
        return ds[[n for n in names if n not in exclude]]
    return path


def _estimator_xarray_options(args) -> dict:
    return {"sample_dims": csv_list(args.sample_dims), "feature_dim": args.feature_dim}


def _cluster(args):
    from ..clusters import cluster

    return cluster(
        args.cluster,
        config=args.cluster_config,
        n_workers=args.n_workers,
        wait_for_workers=(args.n_workers or 1) if args.cluster in ("slurm", "kubernetes") else None,
        timeout=args.wait,
    )


def _announce(client) -> None:
    if client is None:
        logger.info("running on threads in this process (no cluster)")
        return
    link = getattr(client, "dashboard_link", None)
    workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    logger.info("cluster: %s, %d worker(s)", client.scheduler.address, workers)
    if link:
        logger.info("dashboard: %s", link)


def _fit_options(args) -> dict:
    """The estimator parameters that ``fit`` and ``search`` take alike."""
    return dict(
        tol=args.tol,
        reg_covar=args.reg_covar,
        accelerate=args.accelerate,
        jitter_covar=args.recovery,
        reseed_collapsed=args.recovery,
        max_iter=args.max_iter,
        init_params=args.init,
        random_state=args.random_state,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        checkpoint_overwrite=args.overwrite,
        checkpoint_verify=args.verify,
        persist={"auto": "auto", "yes": True, "no": False}[args.persist],
        missing=args.missing,
        **_estimator_xarray_options(args),
    )


def _check_fit_paths(args) -> None:
    """The checkpoint and the model output, checked before anything is read."""
    if args.checkpoint:
        check_apart(args.checkpoint, {"input": args.data}, "--checkpoint")
    if args.output:
        check_apart(args.output, {"input": args.data, "checkpoint": args.checkpoint}, "-o/--output")
        check_output(args.output, parameter="-o/--output", replaceable=("model",),
                     overwrite=args.overwrite, how="pass --overwrite")


def _fit_on_cluster(estimator, args) -> float:
    """Fit ``estimator`` to the data (and sample weights) of ``args`` on the cluster
    they name; the seconds it took."""
    weights = args.sample_weight
    data = _open_data(args.data, args, exclude=[weights])
    if weights is not None and not isinstance(data, str):  # a variable of the store
        weights = _open_data(args.data, argparse.Namespace(variable=weights, dataset=False))
    with _cluster(args) as client:
        _announce(client)
        t0 = time.perf_counter()
        estimator.fit(data, sample_weight=weights)
        return time.perf_counter() - t0


def run_fit(args) -> int:
    from ..estimator import GaussianMixture

    gm = GaussianMixture(args.n_components, covariance_type=args.covariance_type,
                         n_init=args.n_init, **_fit_options(args))
    _check_fit_paths(args)
    elapsed = _fit_on_cluster(gm, args)
    logger.info(
        "fitted in %.1f s: %d iteration(s), converged=%s, lower bound %.6f",
        elapsed, gm.n_iter_, gm.converged_, gm.lower_bound_,
    )
    if args.output:
        gm.save(args.output, overwrite=args.overwrite)
        logger.info("model written to %s", args.output)
    np.set_printoptions(precision=4, suppress=True, linewidth=120)
    print(json.dumps(
        {
            "n_iter": gm.n_iter_,
            "converged": bool(gm.converged_),
            "lower_bound": gm.lower_bound_,
            "weights": gm.weights_.tolist(),
            "model": str(args.output) if args.output else None,
        }
    ))
    return 0


def run_search(args) -> int:
    import pandas as pd

    from ..search import GaussianMixtureSearch

    types = list(COVARIANCE_TYPES) if "all" in args.covariance_type else args.covariance_type
    search = GaussianMixtureSearch(args.n_components, types, criterion=args.criterion,
                                   held_out=args.held_out, n_init=args.n_init,
                                   **_fit_options(args))
    _check_fit_paths(args)
    if args.results:
        check_apart(args.results, {"input": args.data, "checkpoint": args.checkpoint,
                                   "-o/--output": args.output}, "--results")
        if os.path.lexists(args.results):
            raise ValueError(f"--results {args.results}: something is there already; daskgmm "
                             "writes a results table only to a new path")
    elapsed = _fit_on_cluster(search, args)
    table = search.results_.copy()
    table.insert(0, "best", np.where(table.index == search.best_index_, "*", ""))
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    best = search.best_params_
    logger.info("searched %d fits in %.1f s: the best by %s is %d %s", len(table), elapsed,
                args.criterion, best["n_components"], best["covariance_type"])
    if args.output:
        search.best_estimator_.save(args.output, overwrite=args.overwrite)
        logger.info("best model written to %s", args.output)
    if args.results:
        with open(args.results, "x") as f:  # never over a file that appeared meanwhile
            search.results_.to_csv(f, index=False)
        logger.info("results written to %s", args.results)
    print(json.dumps({"best": best, "model": args.output, "results": args.results}))
    return 0


def _write_zarr(result, path: str, overwrite: bool, kind: str) -> None:
    """Write a per-row result, marked as daskgmm's output (so that it may be replaced)."""
    import dask.array as da
    import zarr

    check_output(path, parameter="-o/--output", replaceable=("labels", "probabilities", "imputed"),
                 overwrite=overwrite, how="pass --overwrite")

    def write(where):
        if hasattr(result, "to_dataset"):  # xarray DataArray
            result.to_dataset().to_zarr(where, mode="w-", consolidated=False)
        elif hasattr(result, "data_vars"):  # xarray Dataset (imputed in its own layout)
            result.to_zarr(where, mode="w-", consolidated=False)
        else:
            da.to_zarr(result, where)
        zarr.open(store=where, mode="r+").attrs["daskgmm"] = {"kind": kind, "format": 1}

    replace_atomically(path, write)


def run_predict(args) -> int:
    kind = "probabilities" if args.proba else "labels"
    return _map_model(args, kind, lambda gm, data: gm.predict_proba(data) if args.proba
                      else gm.predict(data))


def run_impute(args) -> int:
    return _map_model(args, "imputed", lambda gm, data: gm.impute(data))


def _map_model(args, kind: str, apply) -> int:
    """``apply(model, data)`` (predict, predict_proba, impute), written to ``-o``."""
    import dask.array as da

    from ..estimator import load

    check_apart(args.output, {"input": args.data, "model": args.model}, "-o/--output")
    gm = load(args.model)
    for name, value in _estimator_xarray_options(args).items():
        if value is not None:
            setattr(gm, name, value)
    data = _open_data(args.data, args, order=getattr(gm, "feature_names_in_", None))
    with _cluster(args) as client:
        _announce(client)
        result = apply(gm, data)
        if not isinstance(result, da.Array) and not hasattr(result, "dims"):
            result = da.from_array(result)
        t0 = time.perf_counter()
        _write_zarr(result, args.output, args.overwrite, kind)
    logger.info("%s written to %s in %.1f s", kind, args.output, time.perf_counter() - t0)
    return 0


def run_inspect(args) -> int:
    from ..models import inspect

    info = inspect(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    lbs = info.get("lower_bounds") or []
    print(f"{info['path']}: daskgmm {info['kind']} (written by daskgmm {info.get('version')})")
    print(f"  status:              {info['status']}")
    print(f"  components:          {info.get('n_components')} ({info.get('covariance_type')})")
    runs = info.get("initialisations") or []
    if len(runs) > 1:
        for i, r in enumerate(runs):
            bound = "-" if r["lower_bound"] is None else f"{r['lower_bound']:.6f}"
            kept = " (kept)" if info.get("best") == i else ""
            which = (f"{r['covariance_type']} {r['n_components']}, init {r['init']}:"
                     if "n_components" in r else f"initialisation {i}:")
            print(f"  {which:<21}{r['n_iter']} iterations, lower bound {bound}, "
                  f"{'converged' if r['converged'] else 'not converged'}{kept}")
    print(f"  iterations:          {info.get('n_iter')}")
    if lbs:
        shown = ", ".join(f"{b:.6f}" for b in lbs[-5:])
        print(f"  lower bounds:        {'..., ' if len(lbs) > 5 else ''}{shown}")
    for name, shape in (info.get("shapes") or {}).items():
        print(f"  {name + ':':<21}{tuple(shape)}")
    if "data" in info:
        d = info["data"]
        print(f"  data:                {tuple(d['shape'])} {d['dtype']}, {len(d['row_chunks'])} row chunks")
        print("  chunk digests:       " + ("recorded (a resume verifies the data against them)"
                                         if info.get("chunk_digests") else "not recorded yet"))
    if info.get("recoveries"):
        actions = [e["action"] for e in info["recoveries"]]
        counts = ", ".join(f"{actions.count(a)} {a}" for a in sorted(set(actions)))
        print(f"  recovered:           {counts} (RecoveryWarning; see recoveries_)")
    return 0


def run_demo(args) -> int:
    from sklearn.metrics import adjusted_rand_score

    from ..estimator import GaussianMixture
    from ..demo import make_blobs

    X, truth, _ = make_blobs(
        args.n_samples, args.n_features, args.n_components, chunks=args.chunk_rows, random_state=0
    )
    print(
        f"demo: {X.shape[0]:,} x {X.shape[1]} float64 rows from {args.n_components} Gaussian "
        f"components, {X.numblocks[0]} chunks; cluster: {args.cluster}"
    )
    with _cluster(args) as client:
        if client is not None and getattr(client, "dashboard_link", None):
            print(f"dashboard: {client.dashboard_link}")
        t0 = time.perf_counter()
        gm = GaussianMixture(
            args.n_components, covariance_type="full", random_state=0, max_iter=args.max_iter
        ).fit(X)
        elapsed = time.perf_counter() - t0
        ari = adjusted_rand_score(truth.compute(), gm.predict(X).compute())
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    print(f"fitted in {elapsed:.2f} s: {gm.n_iter_} iterations, converged={gm.converged_}")
    print("lower bound per iteration:", " ".join(f"{b:.4f}" for b in gm.lower_bounds_))
    print("weights:", gm.weights_)
    print("means (first 4 features):")
    print(gm.means_[:, :4])
    print(f"adjusted Rand index against the true components: {ari:.4f}")
    return 0
