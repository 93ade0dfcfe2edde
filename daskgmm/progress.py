"""Progress output of a fit as scikit-learn prints it (``verbose``, ``verbose_interval``).

With several initialisations, which run in lockstep, each line also names its
initialisation; with one the output is scikit-learn's, line for line. A search
logs one line per pass instead, and a line for each model as it stops.
"""

from __future__ import annotations

import logging
import time

from .em import EMResult, IterationInfo
from .fitting import FitHooks

__all__ = ["search_progress", "verbose_hooks"]

logger = logging.getLogger("daskgmm.search")


class _Printer:
    def __init__(self, verbose: int, interval: int, several: bool):
        self.verbose, self.interval, self.several = verbose, interval, several
        self.times = {"start": time.perf_counter()}

    def _which(self, i: int) -> str:
        return f" (initialization {i})" if self.several else ""

    def _lapse(self, key, now: float) -> float:
        """Seconds since ``key`` was last stamped (since the fit started, if never)."""
        return now - self.times.get(key, self.times["start"])

    def init_start(self, i: int) -> None:
        print("Initialization %d" % i)
        now = time.perf_counter()
        self.times[("init", i)] = self.times[("iteration", i)] = now

    def iteration(self, info: IterationInfo) -> None:
        if info.n_iter % self.interval:
            return
        if self.verbose == 1:
            print("  Iteration %d%s" % (info.n_iter, self._which(info.init)))
        elif self.verbose >= 2:
            now = time.perf_counter()
            print(
                "  Iteration %d%s\t time lapse %.5fs\t ll change %.5f"
                % (info.n_iter, self._which(info.init),
                   self._lapse(("iteration", info.init), now), info.change)
            )
            self.times[("iteration", info.init)] = now

    def init_end(self, i: int, result: EMResult) -> None:
        msg = "converged" if result.converged else "did not converge"
        extra = ""
        if self.verbose >= 2:
            extra = (
                f" time lapse {self._lapse(('init', i), time.perf_counter()):.5f}s\t "
                f"lower bound {result.lower_bound:.5f}."
            )
        which = f" {i}" if self.several else ""
        print(f"Initialization{which} {msg}.{extra}")


def verbose_hooks(verbose: int, interval: int, n_init: int) -> FitHooks:
    """Hooks that print the progress of a fit (none with ``verbose=0``)."""
    if not verbose:
        return FitHooks()
    p = _Printer(verbose, interval, n_init > 1)
    return FitHooks(p.init_start, p.iteration, p.init_end)


def search_progress(n_runs: int, max_iter: int):
    """A pass-end hook that logs each pass, with the models still running, and each
    model as it stops."""
    count = [0]

    def pass_end(runs, infos) -> None:
        count[0] += 1
        running = sum(not r.converged and r.n_iter < max_iter for r in runs)
        logger.info("pass %d: %d of %d fits still running, %.3f s", count[0], running, n_runs,
                    infos[0].seconds if infos else 0.0)
        for info in infos:
            run = runs[info.init]
            if run.converged or run.n_iter >= max_iter:
                k, t = run.params.n_components, run.params.covariance_type
                logger.info("  %s %d: %s after %d iterations, lower bound %.6f", t, k,
                            "converged" if run.converged else "stopped", run.n_iter,
                            run.lower_bound)

    return pass_end
