"""The options of the ``daskgmm`` program (argparse)."""

from __future__ import annotations

import argparse

from ..covariance import COVARIANCE_TYPES
from .commands import run_demo, run_fit, run_impute, run_inspect, run_predict, run_search

__all__ = ["build_parser", "positive_int"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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
    p.add_argument("--n-init", type=positive_int, default=1)
    p.add_argument("--sample-weight", metavar="PATH_OR_VARIABLE",
                   help="weight of each row: a 1-D Zarr array (path or URL), or a variable "
                        "of the store with --variable/--dataset")
    p.add_argument("--random-state", type=int, default=None, metavar="S")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="Zarr checkpoint: saved during the fit, resumed from if it exists")
    p.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="N")
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
    g.add_argument("--n-workers", type=positive_int, default=None, metavar="N",
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
    fit.add_argument("-k", "--n-components", type=positive_int, required=True, metavar="K")
    fit.add_argument("--covariance-type", default="full", choices=list(COVARIANCE_TYPES))
    _add_fit_options(fit, "kmeans")
    _add_cluster_options(fit)
    _add_xarray_options(fit)
    fit.set_defaults(func=run_fit)

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
    search.set_defaults(func=run_search)

    pred = sub.add_parser("predict", help="write labels (or probabilities) of a data set to Zarr",
                          description="Label every row of DATA with MODEL, chunk by chunk.")
    pred.add_argument("model", metavar="MODEL", help="a model written by 'daskgmm fit --output'")
    pred.add_argument("data", metavar="DATA", help="Zarr array path or URL")
    pred.add_argument("-o", "--output", required=True, metavar="PATH", help="Zarr path for the result")
    pred.add_argument("--proba", action="store_true", help="write probabilities, not labels")
    pred.add_argument("--overwrite", action="store_true", help="replace what is at --output")
    _add_cluster_options(pred)
    _add_xarray_options(pred)
    pred.set_defaults(func=run_predict)

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
    imp.set_defaults(func=run_impute)

    insp = sub.add_parser("inspect", help="summarise a checkpoint or a model",
                          description="Status, iteration, lower bounds and shapes of a checkpoint or model.")
    insp.add_argument("path", metavar="PATH")
    insp.add_argument("--json", action="store_true", help="print JSON")
    insp.set_defaults(func=run_inspect)

    demo = sub.add_parser(
        "demo", help="fit generated data on a local cluster and print a summary",
        description="Generate well-separated Gaussian clusters, fit them on a local cluster, "
        "and print the fitted weights, means and lower bounds.",
    )
    demo.add_argument("--n-samples", type=positive_int, default=200_000)
    demo.add_argument("--n-features", type=positive_int, default=4)
    demo.add_argument("--n-components", type=positive_int, default=3)
    demo.add_argument("--chunk-rows", type=positive_int, default=50_000)
    demo.add_argument("--max-iter", type=int, default=100)
    _add_cluster_options(demo, default="local")
    demo.set_defaults(func=run_demo, n_workers=2)
    return parser
