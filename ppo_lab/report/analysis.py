"""The numbers of a report: finished runs grouped by variant and env and normalized per env, the
estimators of the final-performance tables, and learning curves on a shared step grid."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from ppo_lab.report import stats
from ppo_lab.report.scores import Reference, RunResult, reference_for
from ppo_lab.report.stats import Interval
from ppo_lab.runs import Series

CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class FinalRow:
    """One variant's line in a final-performance table."""

    variant: str
    runs: int
    envs: int
    not_included: int
    estimates: dict[str, Interval]


class ScoredSweep:
    """Finished runs grouped by variant and env, with each env's normalization."""

    def __init__(self, results: Sequence[RunResult]):
        self.results = list(results)
        self.envs = sorted({r.run.env_id for r in results})
        self.cells: dict[tuple[str, str], list[RunResult]] = {}
        for r in results:
            self.cells.setdefault((r.run.variant, r.run.env_id), []).append(r)
        self.refs: dict[str, tuple[Reference, bool]] = {}  # env -> (reference, documented?)
        for env in self.envs:
            ref = reference_for(env)
            self.refs[env] = (ref, True) if ref else (self._min_max(env), False)
        order = sorted({r.run.variant for r in results})
        key = {v: float(stats.iqm_score(self.strata(v, normalized=True))) for v in order}
        self.variants = sorted(order, key=lambda v: -key[v])

    def _min_max(self, env: str) -> Reference:
        finals = [r.final for r in self.results if r.run.env_id == env]
        low, high = min(finals), max(finals)
        return Reference(low, high if high > low else low + 1.0, "min-max over this sweep")

    def runs(self, variant: str, env: str) -> list[RunResult]:
        return self.cells.get((variant, env), [])

    def envs_of(self, variant: str) -> list[str]:
        return [e for e in self.envs if self.runs(variant, e)]

    def normalize(self, env: str, x: np.ndarray) -> np.ndarray:
        ref = self.refs[env][0]
        return (np.asarray(x, dtype=float) - ref.low) / (ref.high - ref.low)

    def scores(self, variant: str, env: str, normalized: bool = False) -> np.ndarray:
        x = np.array([r.final for r in self.runs(variant, env)], dtype=float)
        return self.normalize(env, x) if normalized else x

    def strata(self, variant: str, normalized: bool = False) -> list[np.ndarray]:
        return [self.scores(variant, e, normalized) for e in self.envs_of(variant)]


def _run_median(strata: stats.Strata) -> np.ndarray:
    return np.median(np.asarray(strata[0], dtype=float), axis=-1)


def estimators(gamma: float, single_env: bool) -> dict[str, Callable[..., np.ndarray]]:
    """The four aggregates of the final-performance tables (Agarwal et al. 2021)."""
    return {
        "mean": stats.mean_score,
        "median": _run_median if single_env else stats.median_score,
        "IQM": stats.iqm_score,
        "optimality gap": functools.partial(stats.optimality_gap, gamma=gamma),
    }


CURVE_STATISTICS: dict[str, Callable[[stats.Strata], np.ndarray]] = {
    "mean": stats.mean_score,
    "iqm": stats.iqm_score,
}


def _step_grid(series: Sequence[Series], num: int) -> np.ndarray:
    """`num` evenly spaced steps from the first logged step to the last of any of `series`."""
    return stats.common_grid([s.steps[0] for s in series], [s.steps[-1] for s in series], num)


def env_curves(
    sweep: ScoredSweep, env: str, num: int, statistic: Callable, reps: int, seed: int
) -> dict[str, tuple[np.ndarray, Interval]]:
    """Each variant's curve on one env over a step grid shared by all variants of that env."""
    grid = _step_grid([r.series for r in sweep.results if r.run.env_id == env], num)
    curves = {}
    for v in sweep.variants:
        runs = sweep.runs(v, env)
        if runs:
            matrix = stats.interpolate_curves(
                [(r.series.steps, r.series.values) for r in runs], grid
            )
            curves[v] = (grid, stats.curve_band([matrix], statistic, reps=reps, seed=seed))
    return curves


def aggregate_curves(
    sweep: ScoredSweep, num: int, statistic: Callable, reps: int, seed: int
) -> dict[str, tuple[np.ndarray, Interval]]:
    """Normalized curves pooled over envs, on one step grid; bootstrap stratified by env."""
    grid = _step_grid([r.series for r in sweep.results], num)
    curves = {}
    for v in sweep.variants:
        strata = [
            stats.interpolate_curves(
                [(r.series.steps, sweep.normalize(e, r.series.values)) for r in sweep.runs(v, e)],
                grid,
            )
            for e in sweep.envs_of(v)
        ]
        curves[v] = (grid, stats.curve_band(strata, statistic, reps=reps, seed=seed))
    return curves
