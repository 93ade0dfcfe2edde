"""The ``daskgmm`` command-line program: parses options, then calls the library.

    daskgmm fit DATA --n-components K [options]     fit, save the model (and checkpoints)
    daskgmm search DATA -k 1-10 [options]           a grid of models in lockstep, the best kept
    daskgmm predict MODEL DATA --output PATH        labels (or probabilities) to Zarr
    daskgmm impute MODEL DATA --output PATH         the data with each NaN filled, to Zarr
    daskgmm inspect PATH                            a checkpoint or a model
    daskgmm demo                                    generated data on a local cluster

DATA is the path or URL of a Zarr array (``store.zarr/name`` for an array in a
group), or of an xarray Zarr store with ``--variable`` / ``--dataset``.
Errors are one line on stderr and a non-zero exit status (2: bad input or
options, 1: anything else; 130: interrupted); ``-v`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import numpy as np

from .covariance import COVARIANCE_TYPES
from .errors import ClusterError
from .safety import check_apart, check_output, replace_atomically

__all__ = ["build_parser", "main"]

logger = logging.getLogger("daskgmm.cli")


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else (logging.DEBUG if verbosity > 0 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(message)s" if sys.stderr.isatty() else "%(asctime)s %(name)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt, "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("daskgmm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # distributed logs worker start-up and shut-down chatter; keep it for -v only.
    # (It sets its own levels when first imported, so import it before ours.)
    import distributed  # noqa: F401

    logging.getLogger("distributed").setLevel(logging.INFO if verbosity > 0 else logging.ERROR)
    # A lost scheduler makes the client log its reconnection tracebacks; the
    # command ends with one line that says so instead (the tracebacks with -v).
    logging.getLogger("distributed.client").setLevel(
        logging.INFO if verbosity > 0 else logging.CRITICAL
    )


def _csv(value: str | None):
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
        names = _csv(args.variables) or list(ds.data_vars)
        if not args.variables and order is not None and set(order) <= set(names):
            names = list(order)
        return ds[[n for n in names if n not in exclude]]
    return path


def _estimator_xarray_options(args) -> dict:
    return {"sample_dims": _csv(args.sample_dims), "feature_dim": args.feature_dim}


def _cluster(args):
    from .clusters import cluster

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


def _cmd_fit(args) -> int:
    from .estimator import GaussianMixture

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


def _components(text: str) -> list[int]:
    """``1-10``, ``2,4,8`` or ``1-4,8``: the numbers of components of a search."""
    ks = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            ks += list(range(int(low), int(high or low) + 1))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected numbers of components as 1-10, 2,4,8 or 1-4,8; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers of components, got {text!r}")
    return sorted(set(ks))


def _cmd_search(args) -> int:
    import pandas as pd

    from .search import GaussianMixtureSearch

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


def _cmd_predict(args) -> int:
    kind = "probabilities" if args.proba else "labels"
    return _map_model(args, kind, lambda gm, data: gm.predict_proba(data) if args.proba
                      else gm.predict(data))


def _cmd_impute(args) -> int:
    return _map_model(args, "imputed", lambda gm, data: gm.impute(data))


def _map_model(args, kind: str, apply) -> int:
    """``apply(model, data)`` (predict, predict_proba, impute), written to ``-o``."""
    import dask.array as da

    from .estimator import load

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


def _cmd_inspect(args) -> int:
    from .models import inspect

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


def _cmd_demo(args) -> int:
    from sklearn.metrics import adjusted_rand_score

    from .estimator import GaussianMixture
    from .demo import make_blobs

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_fit_options(p, init, output_help="write the model (Zarr group) here"):
    """The options of a fit, which ``fit`` and ``search`` share (``init``: the default
    of ``--init``, the estimator's)."""
    p.add_argument("--init", default=init,
                   choices=["k-means||", "kmeans", "k-means++", "random", "random_from_data"],
                   help=f"initialisation (default: {init})")
    p.add_argument("--max-iter", type=int, default=100, metavar="N")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--reg-covar", type=float, default=1e-6)
    p.add_argument("--accelerate", action="store_true",
                   help="squared extrapolation (SQUAREM): fewer passes where EM is slow, never "
                        "ending lower than plain EM from the last accepted point")
    p.add_argument("--no-recovery", dest="recovery", action="store_false",
                   help="raise scikit-learn's error on a covariance that is not positive "
                        "definite instead of adding a jitter or re-seeding the component")
    p.add_argument("--n-init", type=_positive_int, default=1)
    p.add_argument("--sample-weight", metavar="PATH_OR_VARIABLE",
                   help="weight of each row: a 1-D Zarr array (path or URL), or a variable "
                        "of the store with --variable/--dataset")
    p.add_argument("--random-state", type=int, default=None, metavar="S")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="Zarr checkpoint: saved during the fit, resumed from if it exists")
    p.add_argument("--checkpoint-every", type=_positive_int, default=1, metavar="N")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="resume a checkpoint without comparing the digests of the data's "
                        "chunks with those it recorded (a finished one then needs no pass)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a checkpoint of another fit instead of refusing it")
    p.add_argument("--missing", default="auto", choices=["auto", "raise", "drop", "marginalize"],
                   help="rows with NaN: an error, left out, or their missing values integrated "
                        "out by EM (auto: left out for xarray input, else an error); the "
                        "model keeps it for predict")
    p.add_argument("--persist", default="auto", choices=["auto", "yes", "no"],
                   help="keep the data in cluster memory (auto: when it fits)")
    p.add_argument("-o", "--output", metavar="MODEL_PATH", help=output_help)


def _add_cluster_options(p, default="threads"):
    g = p.add_argument_group("cluster")
    g.add_argument(
        "--cluster", default=default,
        help="threads (no cluster), local (LocalCluster), slurm (dask-jobqueue), "
        f"kubernetes (dask-kubernetes operator), or a scheduler address tcp://HOST:PORT "
        f"(default: {default})",
    )
    g.add_argument("--cluster-config", metavar="FILE",
                   help="YAML mapping of keyword arguments for the cluster class")
    g.add_argument("--n-workers", type=_positive_int, default=None, metavar="N",
                   help="workers to start (local, slurm, kubernetes)")
    g.add_argument("--wait", type=float, default=300, metavar="SECONDS",
                   help="how long to wait for the workers of slurm or kubernetes to join, "
                        "or for a scheduler address to answer (default: 300)")


def _add_xarray_options(p):
    g = p.add_argument_group("xarray Zarr stores")
    g.add_argument("--variable", help="fit this DataArray of an xarray Zarr store")
    g.add_argument("--dataset", action="store_true",
                   help="use the data variables of an xarray Zarr store as the features")
    g.add_argument("--variables", help="comma-separated variables to use with --dataset")
    g.add_argument("--sample-dims", help="comma-separated dimensions that index samples")
    g.add_argument("--feature-dim", help="the dimension that indexes features (--variable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daskgmm", description="Gaussian mixture models fitted with EM on Dask."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output, and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser("fit", help="fit a mixture to a Zarr array and save the model",
                         description="Fit a Gaussian mixture with EM; progress is logged per iteration.")
    fit.add_argument("data", metavar="DATA", help="Zarr array path or URL (store.zarr/name in a group)")
    fit.add_argument("-k", "--n-components", type=_positive_int, required=True, metavar="K")
    fit.add_argument("--covariance-type", default="full", choices=list(COVARIANCE_TYPES))
    _add_fit_options(fit, "kmeans")
    _add_cluster_options(fit)
    _add_xarray_options(fit)
    fit.set_defaults(func=_cmd_fit)

    search = sub.add_parser(
        "search", help="fit a grid of mixtures in lockstep and keep the best",
        description="Fit every number of components and covariance type, one read of the data "
        "per pass for all; print the table of BIC, AIC (and held-out log-likelihood), the best "
        "marked. Progress is logged per pass, with the fits still running.")
    search.add_argument("data", metavar="DATA",
                        help="Zarr array path or URL (store.zarr/name in a group)")
    search.add_argument("-k", "--n-components", type=_components, default=list(range(1, 11)),
                        metavar="KS", help="numbers of components: 1-10, 2,4,8 or 1-4,8 "
                        "(default: 1-10)")
    search.add_argument("--covariance-type", nargs="+", default=["all"],
                        choices=[*COVARIANCE_TYPES, "all"], help="the types to try (default: all)")
    search.add_argument("--criterion", default="bic", choices=["bic", "aic", "held_out"])
    search.add_argument("--held-out", type=float, default=None, metavar="FRACTION",
                        help="hold this fraction of the rows out of the fits and score them")
    search.add_argument("--results", metavar="CSV", help="write the table here (a new path)")
    _add_fit_options(search, "k-means||", output_help="write the best model (Zarr group) here")
    _add_cluster_options(search)
    _add_xarray_options(search)
    search.set_defaults(func=_cmd_search)

    pred = sub.add_parser("predict", help="write labels (or probabilities) of a data set to Zarr",
                          description="Label every row of DATA with MODEL, chunk by chunk.")
    pred.add_argument("model", metavar="MODEL", help="a model written by 'daskgmm fit --output'")
    pred.add_argument("data", metavar="DATA", help="Zarr array path or URL")
    pred.add_argument("-o", "--output", required=True, metavar="PATH", help="Zarr path for the result")
    pred.add_argument("--proba", action="store_true", help="write probabilities, not labels")
    pred.add_argument("--overwrite", action="store_true", help="replace what is at --output")
    _add_cluster_options(pred)
    _add_xarray_options(pred)
    pred.set_defaults(func=_cmd_predict)

    imp = sub.add_parser(
        "impute", help="write a data set with its missing values (NaN) filled to Zarr",
        description="Replace each NaN of DATA by its conditional expectation under MODEL "
        "given the row's observed features, chunk by chunk.")
    imp.add_argument("model", metavar="MODEL", help="a model written by 'daskgmm fit --output'")
    imp.add_argument("data", metavar="DATA", help="Zarr array path or URL")
    imp.add_argument("-o", "--output", required=True, metavar="PATH", help="Zarr path for the result")
    imp.add_argument("--overwrite", action="store_true", help="replace what is at --output")
    _add_cluster_options(imp)
    _add_xarray_options(imp)
    imp.set_defaults(func=_cmd_impute)

    insp = sub.add_parser("inspect", help="summarise a checkpoint or a model",
                          description="Status, iteration, lower bounds and shapes of a checkpoint or model.")
    insp.add_argument("path", metavar="PATH")
    insp.add_argument("--json", action="store_true", help="print JSON")
    insp.set_defaults(func=_cmd_inspect)

    demo = sub.add_parser(
        "demo", help="fit generated data on a local cluster and print a summary",
        description="Generate well-separated Gaussian clusters, fit them on a local cluster, "
        "and print the fitted weights, means and lower bounds.",
    )
    demo.add_argument("--n-samples", type=_positive_int, default=200_000)
    demo.add_argument("--n-features", type=_positive_int, default=4)
    demo.add_argument("--n-components", type=_positive_int, default=3)
    demo.add_argument("--chunk-rows", type=_positive_int, default=50_000)
    demo.add_argument("--max-iter", type=int, default=100)
    _add_cluster_options(demo, default="local")
    demo.set_defaults(func=_cmd_demo, n_workers=2)
    return parser


def _scheduler_lost(exc: BaseException) -> bool:
    """Whether ``exc`` ends a computation whose client lost its scheduler: the
    connection closed, or the computation cancelled (daskgmm cancels none itself)."""
    import asyncio
    import concurrent.futures

    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    return isinstance(exc, (CommClosedError, FutureCancelledError, asyncio.CancelledError,
                            concurrent.futures.CancelledError))


def _resume_hint(args) -> str:
    checkpoint = getattr(args, "checkpoint", None)
    if getattr(args, "func", None) not in (_cmd_fit, _cmd_search):
        return ""
    if not checkpoint:
        return "; a fit with --checkpoint PATH can be resumed after such a loss"
    from .models import inspect

    try:
        info = inspect(checkpoint)
    except Exception:  # noqa: BLE001 - not written yet, or unreadable
        return f"; the checkpoint {checkpoint} holds no state yet: run the command again"
    return (f"; the checkpoint {checkpoint} holds the fit at iteration {info['n_iter']}: run the "
            "same command again to resume it")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(-1 if args.quiet else args.verbose)
    if args.quiet:  # -q: no warnings about convergence either, only errors
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("daskgmm: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, ImportError, TimeoutError, ClusterError) as exc:
        if args.verbose:
            raise
        print(f"daskgmm: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else: still one line, the traceback with -v
        if args.verbose:
            raise
        if _scheduler_lost(exc):
            print(f"daskgmm: error: lost the connection to the Dask scheduler ({args.cluster})"
                  f"{_resume_hint(args)}", file=sys.stderr)
            return 1
        print(f"daskgmm: error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
