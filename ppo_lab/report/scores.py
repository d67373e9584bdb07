"""Runs -> scores: each finished run's curve and final score, the runs left out and why, and the
reference scores that normalize an env's returns."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ppo_lab.report.document import shorten
from ppo_lab.runs import RunRecord, Series, SweepError, is_number, read_metrics, run_length

DEFAULT_METRIC = "charts/episodic_return"
TAIL_FRACTION = 0.1  # final score without summary.json: mean of the last 10% of logged points


class Reference(NamedTuple):
    """Scores that map to 0 and 1 when normalizing an env's returns, and where they come from."""

    low: float
    high: float
    source: str


# Reference scores per env: normalized = (score - low) / (high - low).
REFERENCE_SCORES: dict[str, Reference] = {
    "CartPole-v1": Reference(22.0, 500.0, "random policy ~22; 500 = maximum return"),
    "CartPole-v0": Reference(22.0, 200.0, "random policy ~22; 200 = maximum return"),
    "Acrobot-v1": Reference(-500.0, -60.0, "random policy hits the 500-step limit; ~-60 = best"),
    "MountainCar-v0": Reference(-200.0, -110.0, "random never reaches the goal; -110 = solved"),
}
_ATARI_SOURCE = "random / human scores (Mnih et al. 2015, as tabulated in rliable)"
ATARI_SCORES: dict[str, tuple[float, float]] = {
    "Asterix": (210.0, 8503.3),
    "BeamRider": (363.9, 16926.5),
    "Breakout": (1.7, 30.5),
    "Enduro": (0.0, 860.5),
    "Freeway": (0.0, 29.6),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "Qbert": (163.9, 13455.0),
    "Seaquest": (68.4, 42054.7),
    "SpaceInvaders": (148.0, 1668.7),
}
_MUJOCO_SOURCE = "random / expert reference scores of D4RL (Fu et al. 2020)"
MUJOCO_SCORES: dict[str, tuple[float, float]] = {
    "Ant": (-325.6, 3879.7),
    "HalfCheetah": (-280.178953, 12135.0),
    "Hopper": (-20.272305, 3234.3),
    "Walker2d": (1.629008, 4592.3),
}


def reference_for(env_id: str) -> Reference | None:
    """The documented reference scores of `env_id`, any version or prefix of a known game."""
    if env_id in REFERENCE_SCORES:
        return REFERENCE_SCORES[env_id]
    base = re.sub(r"-v\d+$", "", env_id.removeprefix("ALE/"))
    base = base.replace("NoFrameskip", "").replace("Deterministic", "")
    if base in ATARI_SCORES:
        return Reference(*ATARI_SCORES[base], _ATARI_SOURCE)
    if base in MUJOCO_SCORES:
        return Reference(*MUJOCO_SCORES[base], _MUJOCO_SOURCE)
    return None


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A finished run that logged the metric: its curve and final score."""

    run: RunRecord
    series: Series
    final: float
    from_summary: bool  # final score is summary.json's final_return (else the tail mean)
    length: int  # environment steps reached


@dataclasses.dataclass(frozen=True)
class Excluded:
    """A run left out of the statistics, and why."""

    run: RunRecord
    reason: str
    length: int
    lacks_metric: bool = False  # finished, but never logged the metric


def final_score(run: RunRecord, series: Series, metric: str) -> tuple[float, bool]:
    """A run's final performance and whether it came from summary.json.

    For the default metric: summary.json's `final_return` (mean return of the last 10 training
    episodes) when present; otherwise the mean of the last 10% of the logged points.
    """
    value = (run.summary or {}).get("final_return")
    if metric == DEFAULT_METRIC and is_number(value):
        return float(value), True
    k = max(1, math.ceil(TAIL_FRACTION * len(series.values)))
    return float(series.values[-k:].mean()), False


def collect(
    runs: Iterable[RunRecord], metric: str
) -> tuple[list[RunResult], list[Excluded], set[str]]:
    """Split runs into those the statistics use and those left out; also every metric seen."""
    results, excluded, seen = [], [], set()
    for run in runs:
        metrics = read_metrics(run.path / "metrics.jsonl")
        seen.update(metrics)
        series = metrics.get(metric)
        length = run_length(run, metrics)
        if run.status != "finished":
            excluded.append(Excluded(run, run.status, length))
        elif series is None or not len(series.steps):
            excluded.append(Excluded(run, f"no `{metric}` in metrics.jsonl", length, True))
        else:
            final, from_summary = final_score(run, series, metric)
            results.append(RunResult(run, series, final, from_summary, length))
    return results, excluded, seen


def no_results_error(excluded: Sequence[Excluded], metric: str, seen: set[str]) -> SweepError:
    """The error for a sweep with no run to report on: which runs lack the metric, or failed."""
    lacking = [e for e in excluded if e.lacks_metric]
    if lacking:
        names = ", ".join(str(e.run.path) for e in lacking[:10])
        more = f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
        logged = ", ".join(sorted(seen - {"time"})) or "none"
        return SweepError(
            f"no finished run logged `{metric}` (runs lacking it: {names}{more}). "
            f"Metrics these runs logged: {logged}. Pick one with --metric."
        )
    counts = ", ".join(f"{n} {s}" for s, n in Counter(e.reason for e in excluded).items())
    errors = [f"{e.run.path}: {shorten(e.run.error, 120)}" for e in excluded if e.run.error][:3]
    detail = ("; first errors: " + " | ".join(errors)) if errors else ""
    return SweepError(f"no finished run to report on ({counts}){detail}")
