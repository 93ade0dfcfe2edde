"""What a search selects from: its grid of models, their scores as a table, the best
by a criterion, and the plot of that criterion. No data and no Dask: the inputs are
where the runs ended (:class:`daskgmm.em.EMResult`) and the final pass's sums."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from .covariance import COVARIANCE, COVARIANCE_TYPES
from .fitting import best_run
from .params import information_criteria

__all__ = ["CRITERIA", "choose", "grid", "plot_criterion", "results_table"]

CRITERIA = ("bic", "aic", "held_out")

#: The column each criterion reads, and the sign that makes lower better.
_KEYS = {"bic": ("bic", 1.0), "aic": ("aic", 1.0), "held_out": ("held_out_log_likelihood", -1.0)}


def grid(n_components, covariance_type) -> list[tuple[int, str]]:
    """The models, ``(n_components, covariance_type)``, by covariance type then K,
    from the search's parameters of those names (an int or an iterable of ints;
    a type, 'all' or an iterable of types)."""
    ks = [n_components] if isinstance(n_components, Integral) else list(n_components)
    if not ks or not all(isinstance(k, Integral) and not isinstance(k, bool) and k >= 1
                         for k in ks):
        raise ValueError(
            "The 'n_components' parameter of GaussianMixtureSearch must be a positive "
            f"int or a non-empty iterable of positive ints. Got {n_components!r} instead."
        )
    types = covariance_type
    types = list(COVARIANCE_TYPES) if types == "all" else [types] if isinstance(types, str) \
        else list(types)
    unknown = [t for t in types if t not in COVARIANCE_TYPES]
    if not types or unknown:
        raise ValueError(
            "The 'covariance_type' parameter of GaussianMixtureSearch must be 'all', one of "
            f"{list(COVARIANCE_TYPES)} or an iterable of them. Got {covariance_type!r} "
            "instead."
        )
    ks = sorted({int(k) for k in ks})
    types = list(dict.fromkeys(types))
    return [(k, t) for t in types for k in ks]


def results_table(models, runs, scores, *, n_init: int, n_features: int,
                  held_out: bool) -> list[dict]:
    """One record per run (the columns of ``GaussianMixtureSearch.results_`` but
    ``seconds``): ``runs`` the models' ``n_init`` runs each, in the order of
    ``models``; ``scores`` per run ``((fitted rows' sum, held-out sum),
    (their weights))`` of the log-likelihoods under the final parameters."""
    scores = np.asarray(scores, dtype=np.float64)
    records = []
    for m, (k, t) in enumerate(models):
        chunk = runs[m * n_init:(m + 1) * n_init]
        kept = best_run(chunk)
        for i, run in enumerate(chunk):
            (fit_sum, *held_sum), (fit_w, *held_w) = scores[m * n_init + i]
            p = COVARIANCE[t].n_parameters(k, n_features)
            mean = fit_sum / fit_w
            bic, aic = information_criteria(mean, fit_w, p)  # as GaussianMixture.bic/aic
            record = {
                "n_components": k, "covariance_type": t, "init": i, "n_iter": run.n_iter,
                "converged": bool(run.converged), "lower_bound": run.lower_bound,
                "log_likelihood": mean, "bic": bic, "aic": aic,
            }
            if held_out:
                record["held_out_log_likelihood"] = held_sum[0] / held_w[0]
            record.update(n_parameters=p, kept=i == kept)
            records.append(record)
    return records


def choose(table: list[dict], criterion: str) -> int:
    """The record of the best model by ``criterion`` among the runs each model
    keeps (the first on a tie)."""
    column, sign = _KEYS[criterion]
    kept = [j for j, r in enumerate(table) if r["kept"]]
    return min(kept, key=lambda j: (sign * table[j][column], j))


def plot_criterion(results, best_index: int, criterion: str, ax=None):
    """``criterion`` against ``n_components`` from a search's ``results_``, one line
    per covariance type (the initialisations each model keeps), the best marked."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("GaussianMixtureSearch.plot needs matplotlib: pip install "
                          "'daskgmm[examples]'") from None
    column = _KEYS[criterion][0]
    if ax is None:
        ax = plt.subplots(figsize=(6, 4))[1]
    kept = results[results["kept"]]
    for t, part in kept.groupby("covariance_type", sort=False):
        ax.plot(part["n_components"], part[column], marker="o", label=t)
    best = results.loc[best_index]
    ax.plot([best["n_components"]], [best[column]], marker="*", markersize=16, color="k",
            linestyle="none", label=f"best: {best['n_components']} {best['covariance_type']}")
    ax.set_xlabel("n_components")
    ax.set_ylabel({"bic": "BIC (lower is better)", "aic": "AIC (lower is better)",
                   "held_out": "held-out log-likelihood (higher is better)"}[criterion])
    ax.legend()
    return ax
