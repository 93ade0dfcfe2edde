"""Choose the number of components and the covariance type of a mixture, out of core.

Data drawn from a known mixture (5 elongated clusters in 6 dimensions) are
written to a Zarr store on disk; a ``GaussianMixtureSearch`` over 1-8
components and the four covariance types (32 models) streams the store
(``persist=False``), every pass serving all the models still running, with a
tenth of the rows held out and scored; the BIC of every model is drawn, the
best marked, and the table printed.

    python examples/model_selection.py [--out DIR]

Writes DIR/data.zarr, DIR/results.csv and DIR/model_selection.png (default DIR:
a new temporary folder, printed at the end).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import dask.array as da
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from daskgmm import GaussianMixtureSearch  # noqa: E402

TRUE_COMPONENTS = 5


def write_data(path, n=200_000, d=6, chunk_rows=25_000, seed=0):
    """Rows of a mixture of TRUE_COMPONENTS correlated Gaussians, generated chunk by chunk."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=5.0, size=(TRUE_COMPONENTS, d))
    factors = rng.normal(size=(TRUE_COMPONENTS, d, d)) * 0.6 + np.eye(d)

    def block(b, block_info=None):
        lo, hi = block_info[0]["array-location"][0]
        g = np.random.default_rng([seed, lo])
        lab = g.integers(TRUE_COMPONENTS, size=hi - lo)
        z = g.standard_normal((hi - lo, d))
        return np.einsum("nd,nde->ne", z, factors[lab]) + means[lab]

    template = da.zeros((n, d), chunks=(chunk_rows, d))
    template.map_blocks(block, dtype=np.float64).to_zarr(str(path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--n-samples", type=int, default=200_000)
    args = parser.parse_args()
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="daskgmm-search-"))
    out.mkdir(parents=True, exist_ok=True)
    store = out / "data.zarr"
    write_data(store, n=args.n_samples)

    search = GaussianMixtureSearch(range(1, 9), "all", held_out=0.1, random_state=0,
                                   persist=False)
    search.fit(str(store))
    table = search.results_
    table.to_csv(out / "results.csv", index=False)
    print(table[["n_components", "covariance_type", "n_iter", "bic",
                 "held_out_log_likelihood"]].to_string(index=False))
    best = search.best_params_
    print(f"best by BIC: {best['n_components']} components, {best['covariance_type']} "
          f"covariance (the data have {TRUE_COMPONENTS} full-covariance components)")
    passes = 8 + int(table["n_iter"].max()) + 1
    print(f"{len(table)} models in about {passes} passes over the data; fitted one by one "
          f"they would take about {8 * len(table) + int(table['n_iter'].sum())}")

    ax = search.plot()
    ax.set_title("BIC of every model of the search")
    ax.figure.tight_layout()
    ax.figure.savefig(out / "model_selection.png", dpi=110)
    plt.close(ax.figure)
    print(f"wrote {out / 'model_selection.png'}")


if __name__ == "__main__":
    main()
