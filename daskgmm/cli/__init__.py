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

The options are in :mod:`daskgmm.cli.parser`, each command in
:mod:`daskgmm.cli.commands`; :func:`main` (here) runs one and turns its errors
into those lines.
"""

from __future__ import annotations

import logging
import sys

from ..errors import ClusterError
from .commands import run_fit, run_search
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
    if getattr(args, "func", None) not in (run_fit, run_search):
        return ""
    if not checkpoint:
        return "; a fit with --checkpoint PATH can be resumed after such a loss"
    from ..models import inspect

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
