"""The numbers of a report: finished runs grouped by variant and env and normalized per env, the
estimators of the final-performance tables, and learning curves on a shared step grid."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence

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
    ceiling: bool = False  # every run at the env's ceiling: shown as "ceiling", not as a CI
    iqm_is_mean: bool = False  # fewer than 4 runs: the IQM cuts nothing and is the mean
    scores: tuple[float, ...] = ()  # each run's final score (normalized across envs)


class ScoredSweep:
    """Finished runs grouped by variant and env, with each env's normalization and ceiling.

    `variants` are ranked best first by the IQM of normalized final scores over all envs, or by
    the mean when some variant's IQM cuts nothing (fewer than 4 runs: the IQM is the mean);
    `rank_by` says which.
    """

    def __init__(self, results: Sequence[RunResult], ceilings: Mapping[str, float] | None = None):
        self.results = list(results)
        self.envs = sorted({r.run.env_id for r in results})
        self.cells: dict[tuple[str, str], list[RunResult]] = {}
        for r in results:
            self.cells.setdefault((r.run.variant, r.run.env_id), []).append(r)
        self.refs: dict[str, tuple[Reference, bool]] = {}  # env -> (reference, documented?)
        self.ceilings: dict[str, float | None] = {}
        for env in self.envs:
            ref = reference_for(env)
            self.refs[env] = (ref, True) if ref else (self._min_max(env), False)
            given = (ceilings or {}).get(env)
            self.ceilings[env] = float(given) if given is not None else self.refs[env][0].ceiling
        order = sorted({r.run.variant for r in results})
        self.rank_by = rank_statistic([self.counts(v) for v in order])
        rank = RANK_ESTIMATORS[self.rank_by]
        key = {v: float(rank(self.strata(v, normalized=True))) for v in order}
        self.variants = sorted(order, key=lambda v: -key[v])

    def _min_max(self, env: str) -> Reference:
        finals = [r.final for r in self.results if r.run.env_id == env]
        low, high = min(finals), max(finals)
        return Reference(low, high if high > low else low + 1.0, "min-max over this sweep")

    def runs(self, variant: str, env: str) -> list[RunResult]:
        return self.cells.get((variant, env), [])

    def envs_of(self, variant: str) -> list[str]:
        return [e for e in self.envs if self.runs(variant, e)]

    def counts(self, variant: str) -> list[int]:
        """Runs of `variant` on each env it has."""
        return [len(self.runs(variant, e)) for e in self.envs_of(variant)]

    def normalize(self, env: str, x: np.ndarray) -> np.ndarray:
        ref = self.refs[env][0]
        return (np.asarray(x, dtype=float) - ref.low) / (ref.high - ref.low)

    def scores(self, variant: str, env: str, normalized: bool = False) -> np.ndarray:
        x = np.array([r.final for r in self.runs(variant, env)], dtype=float)
        return self.normalize(env, x) if normalized else x

    def strata(self, variant: str, normalized: bool = False) -> list[np.ndarray]:
        return [self.scores(variant, e, normalized) for e in self.envs_of(variant)]

    def at_ceiling(self, variant: str, env: str) -> bool:
        """Every run of `variant` on `env` scored the env's ceiling (its highest return)."""
        ceiling = self.ceilings.get(env)
        scores = self.scores(variant, env)
        return ceiling is not None and len(scores) > 0 and bool(np.all(_reached(scores, ceiling)))

    def saturated(self, env: str) -> bool:
        """Every run of every variant on `env` scored its ceiling: the env cannot rank them."""
        have = [v for v in self.variants if self.runs(v, env)]
        return bool(have) and all(self.at_ceiling(v, env) for v in have)

    def at_ceiling_everywhere(self, variant: str) -> bool:
        """`variant` is at the ceiling on every env it has."""
        envs = self.envs_of(variant)
        return bool(envs) and all(self.at_ceiling(variant, e) for e in envs)


def _reached(scores: np.ndarray, ceiling: float) -> np.ndarray:
    return np.asarray(scores, dtype=float) >= ceiling - 1e-9 * max(1.0, abs(ceiling))


RANK_ESTIMATORS: dict[str, Callable[[stats.Strata], np.ndarray]] = {
    "IQM": stats.iqm_score,
    "mean": stats.mean_score,
}


def rank_statistic(counts: Sequence[Sequence[int]]) -> str:
    """ "IQM" when the IQM of every group of runs (one list of per-env counts each) trims
    something, else "mean": an IQM over fewer than 4 runs is the mean, and ranking by it would
    claim a robustness it does not have."""
    return "IQM" if all(stats.iqm_trims(c) for c in counts) else "mean"


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


SMOOTHING_FRACTION = 0.05  # default smoothing window: about 5% of the longest run


def default_window(results: Sequence[RunResult]) -> int:
    """A round smoothing window (1, 2 or 5 x 10^k env steps) near 5% of the longest run."""
    longest = max((int(r.series.steps[-1]) for r in results if len(r.series.steps)), default=0)
    target = SMOOTHING_FRACTION * longest
    if target < 1:
        return 0
    power = 10 ** math.floor(math.log10(target))
    return int(max(m * power for m in (1, 2, 5) if m * power <= target))


def _smoothed(r: RunResult, window: int) -> tuple[np.ndarray, np.ndarray]:
    return r.series.steps, stats.smooth(r.series.steps, r.series.values, window)


def env_curves(
    sweep: ScoredSweep,
    env: str,
    num: int,
    statistic: Callable,
    reps: int,
    seed: int,
    window: int = 0,
) -> dict[str, tuple[np.ndarray, Interval]]:
    """Each variant's curve on one env over a step grid shared by all variants of that env; each
    run smoothed first by a moving average over `window` env steps."""
    grid = _step_grid([r.series for r in sweep.results if r.run.env_id == env], num)
    curves = {}
    for v in sweep.variants:
        runs = sweep.runs(v, env)
        if runs:
            matrix = stats.interpolate_curves([_smoothed(r, window) for r in runs], grid)
            curves[v] = (grid, stats.curve_band([matrix], statistic, reps=reps, seed=seed))
    return curves


def aggregate_curves(
    sweep: ScoredSweep,
    num: int,
    statistic: Callable,
    reps: int,
    seed: int,
    window: int = 0,
) -> dict[str, tuple[np.ndarray, Interval]]:
    """Normalized curves pooled over envs, on one step grid; bootstrap stratified by env."""
    grid = _step_grid([r.series for r in sweep.results], num)
    curves = {}
    for v in sweep.variants:
        strata = []
        for e in sweep.envs_of(v):
            runs = [
                (steps, sweep.normalize(e, values))
                for steps, values in (_smoothed(r, window) for r in sweep.runs(v, e))
            ]
            strata.append(stats.interpolate_curves(runs, grid))
        curves[v] = (grid, stats.curve_band(strata, statistic, reps=reps, seed=seed))
    return curves
