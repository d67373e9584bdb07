"""Interval estimates for comparing RL variants over a handful of seeds, in pure numpy.

The estimators and the stratified bootstrap follow Agarwal, Schwarzer, Castro, Courville and
Bellemare (2021), "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS),
and its library rliable (github.com/google-research/rliable). They are written out here because
rliable pins pandas<3 and pulls seaborn and arch.

Scores of one variant come as *strata*: one array per task (environment) whose LAST axis runs over
independent runs (seeds). Strata may differ in length (a seed that failed in one env). Every
aggregate reduces the run axis and keeps any leading axes, so one function serves

    a point estimate      strata of shape (n_i,)         -> ()
    a bootstrap           strata of shape (reps, n_i)    -> (reps,)
    a learning curve      strata of shape (T, n_i)       -> (T,)

Every aggregate weighs every task the same, whatever its number of runs: mean, median and
optimality gap reduce each task's runs first, and the IQM weighs each run by 1 / (runs of its
task). With the same number of runs on every task (rliable's runs x tasks matrix) they are
rliable's aggregates exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

Strata = Sequence[np.ndarray]


class Interval(NamedTuple):
    """A point estimate with its confidence interval (NaN bounds where none can be given)."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle half, floor(n/4) values cut from each end.

    IQM = mean(x_(k+1), ..., x_(n-k)) over sorted x, k = floor(n/4), as scipy's
    `trim_mean(x, 0.25)` (rliable's definition): robust to outlier runs, less noisy than the median.
    """
    x = np.sort(np.moveaxis(np.asarray(x, dtype=float), axis, -1), axis=-1)
    n = x.shape[-1]
    k = n // 4
    return x[..., k : n - k].mean(axis=-1)


def _task_means(strata: Strata) -> np.ndarray:
    """(..., tasks): the mean over runs of each task."""
    return np.stack([np.asarray(s, dtype=float).mean(axis=-1) for s in strata], axis=-1)


def mean_score(strata: Strata) -> np.ndarray:
    """Mean over tasks of each task's mean score."""
    return _task_means(strata).mean(axis=-1)


def median_score(strata: Strata) -> np.ndarray:
    """Median over tasks of each task's mean score (with one task: that task's mean)."""
    return np.median(_task_means(strata), axis=-1)


def _run_weights(counts: Sequence[int]) -> np.ndarray:
    """Integer weights that give every task the same total weight: `lcm / n_i` per run of task i.

    With the same number of runs on every task every weight is 1.
    """
    common = math.lcm(*counts)
    return np.concatenate([np.full(n, common // n, dtype=np.int64) for n in counts])


def iqm_trims(counts: Sequence[int]) -> bool:
    """Whether the aggregate IQM over tasks with `counts` runs cuts anything off.

    It cuts floor(W/4) of W weight units from each end (W = tasks x lcm(counts), one unit per
    run when counts are equal): below 4 units (fewer than 4 runs of one task, or 3 tasks with one
    run each) it cuts nothing and equals the mean.
    """
    counts = [int(c) for c in counts if c]
    return bool(counts) and len(counts) * math.lcm(*counts) >= 4


def iqm_score(strata: Strata) -> np.ndarray:
    """IQM of all runs of all tasks pooled, every task weighing the same.

    rliable's aggregate IQM (`scipy.stats.trim_mean(scores, 0.25, axis=None)` over the runs x
    tasks matrix) when every task has the same number of runs. With uneven counts, pooling would
    weigh a task by its number of runs; instead each run of task i counts lcm/n_i times (as if
    every task's runs were repeated up to a common count) and floor(W/4) of the W units are cut
    from each end.
    """
    arrays = [np.asarray(s, dtype=float) for s in strata]
    counts = [a.shape[-1] for a in arrays]
    pooled = np.concatenate(arrays, axis=-1)
    if len(set(counts)) == 1:
        return iqm(pooled)
    weights = _run_weights(counts)
    total = int(weights.sum())
    cut = total // 4
    order = np.argsort(pooled, axis=-1, kind="stable")
    values = np.take_along_axis(pooled, order, axis=-1)
    w = weights[order]
    upper = np.cumsum(w, axis=-1)
    lower = upper - w
    kept = np.clip(np.minimum(upper, total - cut) - np.maximum(lower, cut), 0, None)
    return (kept * values).sum(axis=-1) / (total - 2 * cut)


def optimality_gap(strata: Strata, gamma: float = 1.0) -> np.ndarray:
    """How far the scores fall short of a target `gamma`: gamma - mean(min(x, gamma)).

    Scores above `gamma` count as `gamma`, so a variant gains nothing from overshooting on one
    task. Lower is better. Averaged per task, then over tasks. gamma = 1 on normalized scores.
    """
    capped = [np.minimum(np.asarray(s, dtype=float), gamma) for s in strata]
    return gamma - mean_score(capped)


def probability_of_improvement(x: Strata, y: Strata) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) for a random run X of one variant and Y of another, task by task.

    The Mann-Whitney U statistic divided by n*m, averaged over tasks; `x[i]` and `y[i]` are the
    two variants' scores on task i. 0.5 means neither tends to beat the other.
    """
    per_task = []
    for a, b in zip(x, y, strict=True):
        a = np.asarray(a, dtype=float)[..., :, None]
        b = np.asarray(b, dtype=float)[..., None, :]
        per_task.append(((a > b) + 0.5 * (a == b)).mean(axis=(-2, -1)))
    return np.stack(per_task, axis=-1).mean(axis=-1)


def performance_profile(strata: Strata, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs scoring above each threshold tau, averaged over tasks: (..., len(taus))."""
    taus = np.asarray(taus, dtype=float)
    per_task = [
        (np.asarray(s, dtype=float)[..., None, :] > taus[:, None]).mean(axis=-1) for s in strata
    ]
    return np.stack(per_task, axis=-1).mean(axis=-1)


def resample(strata: Strata, reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`reps` stratified bootstrap samples: each task's runs drawn with replacement within it.

    A stratum of shape (..., n) becomes (reps, ..., n).
    """
    out = []
    for s in strata:
        s = np.asarray(s, dtype=float)
        n = s.shape[-1]
        index = rng.integers(0, n, size=(reps, n))
        out.append(np.moveaxis(s[..., index], -2, 0))
    return out


def stratified_bootstrap_ci(
    statistic: Callable[..., np.ndarray],
    *samples: Strata,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """`statistic(*samples)` with a percentile confidence interval from the stratified bootstrap.

    Each sample (the strata of one variant) is resampled within each task, independently of the
    other samples (two samples: rliable's stratified independent bootstrap, for the probability of
    improvement). Bounds are NaN when `reps` < 1 or any task has fewer than two runs: a bootstrap
    over one seed has no spread to show, and inventing one would mislead.
    """
    point = np.asarray(statistic(*samples), dtype=float)
    if reps < 1 or any(np.shape(s)[-1] < 2 for strata in samples for s in strata):
        nan = np.full_like(point, np.nan)
        return Interval(point, nan, nan.copy())
    rng = np.random.default_rng(seed)
    boot = np.asarray(statistic(*(resample(strata, reps, rng) for strata in samples)), dtype=float)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    return Interval(point, low, high)


def common_grid(starts: Sequence[float], ends: Sequence[float], num: int = 100) -> np.ndarray:
    """`num` evenly spaced steps from the earliest start to the latest end of a set of curves."""
    return np.linspace(min(starts), max(ends), num)


def interpolate_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray
) -> np.ndarray:
    """Curves `(steps, values)` linearly interpolated onto `grid`: (n_curves, len(grid)).

    NaN outside each curve's own [first step, last step]: a curve is never extrapolated, so a
    shorter run leaves the columns past its end empty.
    """
    grid = np.asarray(grid, dtype=float)
    out = np.full((len(curves), len(grid)), np.nan)
    for i, (steps, values) in enumerate(curves):
        steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
        if len(steps):
            order = np.argsort(steps, kind="stable")
            out[i] = np.interp(grid, steps[order], values[order], left=np.nan, right=np.nan)
    return out


def curve_band(
    strata: Sequence[np.ndarray],
    statistic: Callable[[Strata], np.ndarray] = mean_score,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """A learning curve with its bootstrap band from interpolated runs, one (n_i, T) array per task.

    At each grid step, `statistic` over the runs (the mean, or `iqm_score`) with a stratified
    bootstrap interval over seeds. Steps where any run has no value (past the end of the shortest
    run) are NaN: the curve stops there rather than averaging fewer runs.
    """
    strata = [np.asarray(s, dtype=float) for s in strata]
    covered = np.all([np.isfinite(s).all(axis=0) for s in strata], axis=0)
    est = stratified_bootstrap_ci(
        statistic, [s[:, covered].T for s in strata], reps=reps, confidence=confidence, seed=seed
    )
    full = []
    for part in est:
        column = np.full(covered.shape, np.nan)
        column[covered] = part
        full.append(column)
    return Interval(*full)


def smooth(steps: np.ndarray, values: np.ndarray, window: float) -> np.ndarray:
    """Centred moving average over `window` environment steps: at each logged step s, the mean of
    the values logged in [s - window/2, s + window/2] (fewer points near the ends). `window` <= 0
    leaves the values as they are."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if window <= 0 or len(values) < 2:
        return values.copy()
    order = np.argsort(steps, kind="stable")
    s, v = steps[order], values[order]
    total = np.concatenate([[0.0], np.cumsum(v)])
    lo = np.searchsorted(s, s - window / 2, side="left")
    hi = np.searchsorted(s, s + window / 2, side="right")
    out = np.empty_like(v)
    out[order] = (total[hi] - total[lo]) / (hi - lo)
    return out


# Real coverage of the nominal 95% percentile-bootstrap interval with n runs: the fraction of
# 10,000 simulated data sets of n standard normal scores whose interval (2,000 resamples, as the
# report's default) contains the true value; numpy default_rng(0). Standard error about 0.004.
# With n = 2 the interval is [min, max] of the two runs; with n = 3 it is close to it.
COVERAGE_SIMULATION = (
    "10,000 simulated sets of n normal scores, 2,000 bootstrap resamples each (numpy seed 0)"
)
BOOTSTRAP_COVERAGE: dict[int, dict[str, float]] = {  # n -> {statistic: real coverage}
    2: {"mean": 0.501, "median": 0.501, "IQM": 0.501},
    3: {"mean": 0.742, "median": 0.742, "IQM": 0.742},
    4: {"mean": 0.800, "median": 0.873, "IQM": 0.873},
    5: {"mean": 0.832, "median": 0.934, "IQM": 0.898},
    6: {"mean": 0.855, "median": 0.935, "IQM": 0.906},
    7: {"mean": 0.872, "median": 0.871, "IQM": 0.913},
    8: {"mean": 0.890, "median": 0.927, "IQM": 0.937},
    9: {"mean": 0.893, "median": 0.947, "IQM": 0.934},
    10: {"mean": 0.902, "median": 0.939, "IQM": 0.935},
    15: {"mean": 0.921, "median": 0.930, "IQM": 0.942},
    20: {"mean": 0.927, "median": 0.937, "IQM": 0.943},
}
FEW_RUNS = 10  # below this many runs per variant and env, the report warns about coverage


def real_coverage(n: int, statistic: str = "mean") -> float | None:
    """The simulated real coverage of a nominal 95% bootstrap interval of `statistic` over `n`
    runs (`BOOTSTRAP_COVERAGE`; between tabulated n, the nearest smaller n); None for n < 2 (no
    interval) or n > 20 (close to nominal)."""
    if n < 2 or n > max(BOOTSTRAP_COVERAGE):
        return None
    return BOOTSTRAP_COVERAGE[max(k for k in BOOTSTRAP_COVERAGE if k <= n)][statistic]
