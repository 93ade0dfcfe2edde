"""The ``daskgmm`` command-line program: parses options, then calls the library."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

__all__ = ["main"]

logger = logging.getLogger("daskgmm.cli")


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO
    if verbosity > 0:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr if not sys.stdout.isatty() else sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("daskgmm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # distributed logs worker start-up and shut-down chatter; keep it for -v only.
    logging.getLogger("distributed").setLevel(logging.INFO if verbosity > 0 else logging.ERROR)


def _cmd_demo(args) -> int:
    from . import GaussianMixture
    from .clusters import cluster
    from .demo import make_blobs

    X, truth, true_means = make_blobs(
        args.n_samples, args.n_features, args.n_components, chunks=args.chunk_rows, random_state=0
    )
    print(
        f"demo: {X.shape[0]:,} x {X.shape[1]} float64 rows, {args.n_components} true "
        f"components, {X.numblocks[0]} chunks; cluster: {args.cluster}"
    )
    with cluster(args.cluster, n_workers=args.n_workers) as client:
        if client is not None and getattr(client, "dashboard_link", None):
            print(f"dashboard: {client.dashboard_link}")
        t0 = time.perf_counter()
        gm = GaussianMixture(
            args.n_components, covariance_type="full", random_state=0, max_iter=args.max_iter
        ).fit(X)
        elapsed = time.perf_counter() - t0
        from sklearn.metrics import adjusted_rand_score

        labels = gm.predict(X).compute()
        ari = adjusted_rand_score(truth.compute(), labels)
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    print(f"fitted in {elapsed:.2f} s: {gm.n_iter_} iterations, converged={gm.converged_}")
    print("lower bound per iteration:", " ".join(f"{b:.4f}" for b in gm.lower_bounds_))
    print("weights:", gm.weights_)
    print("means (first 4 features):")
    print(gm.means_[:, :4])
    print(f"adjusted Rand index against the true components: {ari:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daskgmm", description="Gaussian mixture models fitted with EM on Dask."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="fit generated data on a local cluster and print a summary",
        description="Generate well-separated Gaussian clusters, fit them on a local "
        "cluster, and print the fitted weights, means and lower bounds.",
    )
    demo.add_argument("--n-samples", type=int, default=200_000)
    demo.add_argument("--n-features", type=int, default=4)
    demo.add_argument("--n-components", type=int, default=3)
    demo.add_argument("--chunk-rows", type=int, default=50_000)
    demo.add_argument("--max-iter", type=int, default=100)
    demo.add_argument(
        "--cluster", default="local", help="threads, local, or a scheduler address (default: local)"
    )
    demo.add_argument("--n-workers", type=int, default=2)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(-1 if args.quiet else args.verbose)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("daskgmm: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"daskgmm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
