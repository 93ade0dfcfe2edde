"""The rows that the client's k-means look at ('kmeans' and 'k-means++' starts,
:mod:`daskgmm.init`): every row of data of at most :func:`client_rows` rows,
else a uniform sample of :func:`sample_size` rows, gathered in one pass."""

from __future__ import annotations

import dask.array as da
import numpy as np

from .passes import finite_rows, take_rows
from .reads import compute

__all__ = [
    "EXACT_ROWS",
    "SAMPLE_BYTES",
    "SAMPLE_MIN_ROWS",
    "SAMPLE_ROWS_PER_COMPONENT",
    "client_rows",
    "client_sample",
    "sample_rows",
    "sample_size",
]

#: Data of at most this many rows start as in scikit-learn: its KMeans on every row ...
EXACT_ROWS = 100_000
#: ... and on more the client's k-means run on a uniform sample of this many rows a
#: component, at least :data:`SAMPLE_MIN_ROWS` and at most :data:`EXACT_ROWS`: EM over
#: every row refines the centres, and on 1,000,000 x 16, k=8 fits from a 20,000-row
#: sample took the EM iterations of fits from 100,000 rows, to within 4e-4 per
#: sample of their lower bound, in two thirds of the time.
SAMPLE_ROWS_PER_COMPONENT = 2_500
SAMPLE_MIN_ROWS = 20_000
#: The client's rows take at most this many bytes as float64 (wide rows, more than
#: 167 features, get fewer; without this bound a sample of 100,000 rows of 10,000
#: features would take 8 GB of the client's memory).
SAMPLE_BYTES = 128 << 20


def client_rows(X) -> int:
    """The most rows the client's k-means look at: every row of ``X`` where it has at
    most this many (scikit-learn's start), a sample of at most this many where more."""
    return int(min(EXACT_ROWS, max(1, SAMPLE_BYTES // (8 * max(1, X.shape[1])))))


def sample_size(X, n_components: int) -> int:
    """The rows of the client's k-means of ``n_components`` on ``X``."""
    top = client_rows(X)
    if X.shape[0] <= top:
        return int(X.shape[0])
    return int(min(top, max(SAMPLE_MIN_ROWS, SAMPLE_ROWS_PER_COMPONENT * n_components)))


def sample_rows(X: da.Array, size: int, random_state: np.random.RandomState,
                sample_weight: da.Array | None = None):
    """A uniform sample of ``size`` rows in the order of ``X`` (all rows if there are
    fewer), their sample weights (None without), and each row's rank in the draw.

    One draw of ``random_state`` seeds a generator that draws the rows in a
    random order; the sample is the first ``size`` of them, so that samples of
    fewer rows from the same state are subsets of it: the rows of rank below
    ``m`` (the grid of :func:`initial_parameters_grid` draws once for all its
    models). ``RandomState.choice(n, replace=False)`` would permute all ``n``
    indices, 8 bytes a row of the client's memory and 0.04 s for 1,000,000 rows;
    ``Generator.choice`` takes time and memory in proportion to what it draws.
    """
    n = X.shape[0]
    parts = [X] if sample_weight is None else [X, sample_weight]
    rank = np.arange(n)
    if n > size:
        draw = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
        order = draw.choice(n, size=min(n, max(size, client_rows(X))), replace=False)[:size]
        rank = np.argsort(order, kind="stable")
        parts = [take_rows(a, order[rank]) for a in parts]
    got = [np.asarray(a) for a in compute(*parts)]
    return got[0], (None if sample_weight is None else got[1].ravel()), rank


def client_sample(X, n_components, random_state, missing, sample_weight, fewer=()):
    """The rows (and weights) that 'kmeans' and 'k-means++' cluster on the client.
    ``fewer``: numbers of components whose samples (subsets of this one, see
    :func:`sample_rows`) are also wanted; then a list of ``(rows, weights)`` is
    returned, for ``n_components`` and then each of them."""
    size = sample_size(X, n_components)
    rows, w, rank = sample_rows(X, size, random_state, sample_weight)
    w = np.ones(len(rows)) if w is None else w
    found = []
    for k in (n_components, *fewer):
        keep = rank < sample_size(X, k)
        part = (rows, w) if keep.all() else (rows[keep], w[keep])
        got, got_w = finite_rows(part[0], missing, part[1])
        if len(got) < k:
            kind = "with an observed feature" if missing == "marginalize" else "without NaN"
            of = ""
            if X.shape[0] > size:
                bound = (f"rows of {X.shape[1]} features: at most {SAMPLE_BYTES >> 20} MiB"
                         if client_rows(X) < EXACT_ROWS else
                         f"{SAMPLE_ROWS_PER_COMPONENT:,} rows a component")
                of = f" of {sample_size(X, k)} ({bound})"
            raise ValueError(
                f"X has {len(got)} rows {kind} in a sample{of}, fewer than "
                f"n_components={k}; init_params='k-means||' looks at every row"
            )
        found.append((got, None if sample_weight is None else got_w))
    return found if fewer else found[0]
