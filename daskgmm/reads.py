"""Every compute of a pass: BLAS on one thread in this process, and the digests
of the chunks read (:class:`ContentCheck`), which a resumed fit compares with
those its checkpoint recorded."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
from collections.abc import Iterator

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from threadpoolctl import ThreadpoolController

from .errors import CheckpointMismatchError

__all__ = ["DIGEST_SIZE", "ContentCheck", "chunk_digest", "compute", "single_threaded"]


def compute(*collections, reads: da.Array | None = None):
    """``dask.compute`` with BLAS limited to one thread in this process.

    Chunk tasks already run in parallel (threads or workers); letting BLAS start
    its own threads inside each would oversubscribe the cores. Worker processes
    of ``distributed`` get the same limit from their nanny's environment.

    ``reads``: the data, when this compute is a pass that reads every chunk of
    it. The first such pass inside :meth:`ContentCheck.watching` also takes the
    digests of the chunks it reads (see :class:`ContentCheck`).
    """
    check = _CONTENT_CHECK.get()
    hashing = check is not None and reads is not None and check.wants(reads)
    extra = (check.digest_tasks(),) if hashing else ()
    with single_threaded():
        results = dask.compute(*collections, *extra)
    if not hashing:
        return results
    check.record(results[-1])
    return results[:-1]


def single_threaded():
    """A context in which BLAS and OpenMP run on one thread: in a pass, the
    scheduler's threads are the parallelism; on the client, a result that does
    not depend on the number of cores (scikit-learn's KMeans sums its per-thread
    partial centres in an order that does)."""
    return _blas_controller().limit(limits=1)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS and OpenMP libraries of this process, found once: finding them
    (threadpoolctl walks the loaded libraries) took 5 ms a pass, a quarter of a
    small fit's time."""
    return ThreadpoolController()


#: bytes of a chunk digest (SHA-256)
DIGEST_SIZE = 32


def chunk_digest(block: np.ndarray) -> np.ndarray:
    """The SHA-256 of a chunk's dtype, shape and values, as a (1, 32) uint8 row."""
    h = hashlib.sha256(f"{block.dtype.str}{block.shape}".encode())
    h.update(np.ascontiguousarray(block).data)
    return np.frombuffer(h.digest(), dtype=np.uint8)[None, :]


_CONTENT_CHECK: contextvars.ContextVar = contextvars.ContextVar("daskgmm_content_check", default=None)


class ContentCheck:
    """The SHA-256 digest of every row chunk of ``X``, taken by the first pass that
    reads them all, and compared with those of an earlier fit.

    No pass of its own: inside :meth:`watching`, the first :func:`compute` that
    reads every chunk of ``X`` hashes each chunk it reads (a task beside the
    pass's own on the same chunk, so the chunk is read once). ``expected``: the
    digests recorded by the fit that a checkpoint holds; a difference stops the
    pass with :class:`CheckpointMismatchError`, before its results are used.
    """

    def __init__(self, X: da.Array, expected: np.ndarray | None = None, where: str = ""):
        self.X = X
        self.expected = expected
        self.where = where
        self.digests: np.ndarray | None = None

    @property
    def known(self) -> np.ndarray | None:
        """The digests of the data: taken in this fit, else those expected."""
        return self.digests if self.digests is not None else self.expected

    @contextlib.contextmanager
    def watching(self) -> Iterator["ContentCheck"]:
        token = _CONTENT_CHECK.set(self)
        try:
            yield self
        finally:
            _CONTENT_CHECK.reset(token)

    def wants(self, X: da.Array) -> bool:
        return self.digests is None and X.name == self.X.name

    def digest_tasks(self) -> Delayed:
        """The digests, stacked: a task on each chunk's key, as the pass's own
        (:func:`reduce_chunks`), so that the pass and the digests share each read."""
        name = f"chunk-digest-{tokenize(self.X.name)}"
        graph = {(name, i): (chunk_digest, (self.X.name, i, 0))
                 for i in range(self.X.numblocks[0])}
        graph[name] = (np.concatenate, list(graph))
        return Delayed(name, HighLevelGraph.from_collections(name, graph, dependencies=[self.X]),
                       layer=name)

    def verify(self) -> None:
        """A pass of its own that takes and compares the digests."""
        (digests,) = compute(self.digest_tasks())
        self.record(digests)

    def record(self, digests: np.ndarray) -> None:
        """Keep the digests of a pass (an array, or a list of rows); compare them."""
        self.digests = np.asarray(digests, dtype=np.uint8).reshape(-1, DIGEST_SIZE)
        if self.expected is None:
            return
        differ = np.flatnonzero((self.digests != self.expected).any(axis=1))
        if differ.size:
            ends = np.cumsum((0,) + self.X.chunks[0])
            shown = ", ".join(f"{i} (rows {ends[i]}-{ends[i + 1] - 1})" for i in differ[:5])
            more = f" and {differ.size - 5} more" if differ.size > 5 else ""
            raise CheckpointMismatchError(
                f"the data differ from those that the checkpoint at {self.where} was fitted on: "
                f"{differ.size} of {len(self.digests)} row chunks have other values, chunk "
                f"{shown}{more}. Pass checkpoint_overwrite=True to start over on these data."
            )
