"""Making, or connecting to, the Dask cluster that a fit runs on.

``cluster(name)`` is a context manager usable from notebooks and the CLI alike::

    with cluster("local", n_workers=2) as client:   # None for "threads"
        GaussianMixture(8).fit(X)

Names: ``"threads"`` (no cluster: Dask's threaded scheduler), ``"local"`` (a
``distributed.LocalCluster`` of worker processes), or a scheduler address
(``"tcp://host:8786"``). The cluster is closed again when the block ends, also
on error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["cluster", "CLUSTER_KINDS"]

logger = logging.getLogger(__name__)

CLUSTER_KINDS = ("threads", "local")


def _is_address(name: str) -> bool:
    return "://" in name


@contextlib.contextmanager
def cluster(
    name: str = "threads",
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard: bool = True,
) -> Iterator[object | None]:
    """Yield a ``distributed.Client`` for ``name`` (or None for ``"threads"``)."""
    if name == "threads":
        yield None
        return
    from distributed import Client, LocalCluster

    if _is_address(name):
        with Client(name) as client:
            yield client
        return
    if name != "local":
        raise ValueError(
            f"cluster must be one of {CLUSTER_KINDS} or a scheduler address such as "
            f"'tcp://host:8786', got {name!r}."
        )
    kwargs = {"threads_per_worker": threads_per_worker, "processes": True}
    if n_workers is not None:
        kwargs["n_workers"] = n_workers
    if not dashboard:
        kwargs["dashboard_address"] = None
    with LocalCluster(**kwargs) as lc, Client(lc) as client:
        yield client
