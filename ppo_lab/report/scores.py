"""Runs -> scores: each finished run's curve and final score, the runs left out and why, and the
reference scores that normalize an env's returns.

The final score of a run is, by default, its deterministic evaluation (`eval/episodic_return`,
the greedy policy on separate envs): the mean of its last `eval_last` evaluations, or summary.json's
`eval_return` when metrics.jsonl has no evaluation row. `score="training"` scores the training
episodes of the stochastic policy instead (summary.json's `final_return`, the last 10 episodes).
When no run of the sweep evaluated, the training score is used and the report says so.
"""

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
EVAL_METRIC = "eval/episodic_return"
SCORES = ("eval", "training")  # --score: deterministic evaluation, or the training episodes
DEFAULT_EVAL_LAST = 3  # evaluations averaged into the final evaluation score
TRAINING_EPISODES = 10  # summary.json's final_return: mean return of the last 10 episodes
TAIL_FRACTION = 0.1  # final score without summary.json: mean of the last 10% of logged points


class Reference(NamedTuple):
    """Scores that map to 0 and 1 when normalizing an env's returns, and where they come from.

    `ceiling`: the highest return the env allows (CartPole-v1: 500), where there is one; a
    variant whose every run scores it is saturated, not certain.
    """

    low: float
    high: float
    source: str
    ceiling: float | None = None


# Reference scores per env: normalized = (score - low) / (high - low).
REFERENCE_SCORES: dict[str, Reference] = {
    "CartPole-v1": Reference(22.0, 500.0, "random policy ~22; 500 = maximum return", 500.0),
    "CartPole-v0": Reference(22.0, 200.0, "random policy ~22; 200 = maximum return", 200.0),
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
    from_summary: bool  # final score read from summary.json (final_return or eval_return)
    length: int  # environment steps reached
    source: str = "training"  # "eval" | "eval_summary" | "training" | "tail": see final_score
    evaluations: int = 0  # evaluations averaged into an evaluation score
    eval_episodes: int | None = None  # episodes per evaluation, where known


@dataclasses.dataclass(frozen=True)
class Excluded:
    """A run left out of the statistics, and why."""

    run: RunRecord
    reason: str
    length: int
    lacks_metric: bool = False  # finished, but never logged the metric
    lacks_eval: bool = (
        False  # finished, but never evaluated while the sweep is scored by evaluation
    )


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    """Which final score a report uses.

    kind: "eval" (deterministic evaluation), "training" (training episodes of the stochastic
    policy) or "metric" (the tail of another metric, `--metric`). `fallback`: evaluation was asked
    for but no run of the sweep evaluated, so the training score is used.
    """

    kind: str
    metric: str
    eval_last: int = DEFAULT_EVAL_LAST
    requested: str = "eval"
    fallback: bool = False

    @property
    def label(self) -> str:
        """The score in a few words, for tables and axes: "evaluation return"."""
        if self.kind == "eval":
            return "evaluation return"
        if self.kind == "training":
            return "training return"
        return self.metric.split("/")[-1].replace("_", " ")


def eval_episodes_of(run: RunRecord) -> int | None:
    """Episodes per evaluation: the config's `eval_episodes`, else the length of `eval_returns`."""
    value = run.config.get("eval_episodes")
    if is_number(value) and value > 0:
        return int(value)
    returns = (run.summary or {}).get("eval_returns")
    return len(returns) if isinstance(returns, list) and returns else None


def eval_score(
    run: RunRecord, metrics: dict[str, Series], last: int
) -> tuple[float, int, str] | None:
    """(score, evaluations averaged, source) of a run's deterministic evaluation, or None.

    The mean of the last `last` `eval/episodic_return` rows of metrics.jsonl (each the mean over
    the evaluation's episodes; fewer when the run evaluated fewer times), else summary.json's
    `eval_return` (the final evaluation).
    """
    series = metrics.get(EVAL_METRIC)
    if series is not None and len(series.values):
        k = min(max(1, last), len(series.values))
        return float(series.values[-k:].mean()), k, "eval"
    value = (run.summary or {}).get("eval_return")
    if is_number(value):
        return float(value), 1, "eval_summary"
    return None


def final_score(run: RunRecord, series: Series, metric: str) -> tuple[float, bool]:
    """A run's final training performance and whether it came from summary.json.

    For the default metric: summary.json's `final_return` (mean return of the last 10 training
    episodes) when present; otherwise the mean of the last 10% of the logged points.
    """
    value = (run.summary or {}).get("final_return")
    if metric == DEFAULT_METRIC and is_number(value):
        return float(value), True
    k = max(1, math.ceil(TAIL_FRACTION * len(series.values)))
    return float(series.values[-k:].mean()), False


class Collected(NamedTuple):
    results: list[RunResult]
    excluded: list[Excluded]
    seen: set[str]  # every metric the runs logged
    score: ScoreSpec


def collect(
    runs: Iterable[RunRecord],
    metric: str,
    score: str = "eval",
    eval_last: int = DEFAULT_EVAL_LAST,
) -> Collected:
    """Split runs into those the statistics use and those left out, scoring each one used.

    `score`: "eval" (default) or "training"; it applies to the return metrics (the default
    metric and `eval/episodic_return`); any other `metric` is scored by the tail of its points.
    """
    if score not in SCORES:
        raise SweepError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    runs = list(runs)
    loaded = [(run, read_metrics(run.path / "metrics.jsonl")) for run in runs]
    seen = {name for _, metrics in loaded for name in metrics}
    if metric == EVAL_METRIC:
        kind = "eval"
    elif metric != DEFAULT_METRIC:
        kind = "metric"
    else:
        kind = score
    fallback = False
    if kind == "eval" and metric == DEFAULT_METRIC:
        evaluated = any(
            run.status == "finished" and eval_score(run, metrics, eval_last) is not None
            for run, metrics in loaded
        )
        if not evaluated:
            kind, fallback = "training", True
    spec = ScoreSpec(kind, metric, eval_last, score, fallback)
    results, excluded = [], []
    for run, metrics in loaded:
        series = metrics.get(metric)
        if kind == "eval" and (series is None or not len(series.steps)):
            series = metrics.get(EVAL_METRIC)  # no training episode ended: curve of evaluations
        length = run_length(run, metrics)
        if run.status != "finished":
            excluded.append(Excluded(run, run.status, length))
        elif series is None or not len(series.steps):
            excluded.append(Excluded(run, f"no `{metric}` in metrics.jsonl", length, True))
        elif kind == "eval":
            evaluation = eval_score(run, metrics, eval_last)
            if evaluation is None:
                excluded.append(
                    Excluded(
                        run,
                        "never evaluated (no `eval/episodic_return`, no `eval_return`)",
                        length,
                        lacks_eval=True,
                    )
                )
                continue
            value, k, source = evaluation
            results.append(
                RunResult(
                    run,
                    series,
                    value,
                    source == "eval_summary",
                    length,
                    source,
                    k,
                    eval_episodes_of(run),
                )
            )
        else:
            final, from_summary = final_score(run, series, metric)
            source = "training" if from_summary else "tail"
            results.append(RunResult(run, series, final, from_summary, length, source))
    return Collected(results, excluded, seen, spec)


def describe_score(spec: ScoreSpec, results: Sequence[RunResult]) -> str:
    """Which score the report used, in one line: "deterministic evaluation, mean of the last 3
    evaluations of 10 episodes"."""
    if spec.kind == "eval":
        episodes = sorted({r.eval_episodes for r in results if r.eval_episodes})
        plural = "s" if episodes != [1] else ""
        of = f" of {'/'.join(map(str, episodes))} episode{plural}" if episodes else ""
        from_metrics = [r for r in results if r.source == "eval"]
        counts = Counter(r.evaluations for r in from_metrics)
        parts = []
        if from_metrics:
            most = max(counts)
            head = (
                f"mean of the last {most} evaluations{of}"
                if most > 1
                else f"the final evaluation{of}"
            )
            fewer = [
                f"{n} run(s) with {k} evaluation{'s' if k > 1 else ''}"
                for k, n in sorted(counts.items())
                if k < most
            ]
            parts.append(
                head + (f" (fewer where a run made fewer: {', '.join(fewer)})" if fewer else "")
            )
        summary_only = len(results) - len(from_metrics)
        if summary_only:
            parts.append(
                f"summary.json's `eval_return` (the final evaluation{of}) for {summary_only} "
                "run(s) without evaluation rows in metrics.jsonl"
            )
        return "deterministic evaluation (`eval/episodic_return`), " + "; ".join(parts)
    if spec.kind == "training":
        from_summary = sum(r.source == "training" for r in results)
        tail = len(results) - from_summary
        parts = []
        if from_summary:
            parts.append(
                f"mean of the last {TRAINING_EPISODES} training episodes, summary.json's "
                f"`final_return`" + (f", for {from_summary} run(s)" if tail else "")
            )
        if tail:
            parts.append(
                f"the mean of the last {TAIL_FRACTION:.0%} of logged `{spec.metric}` points "
                f"for {tail} run(s)"
            )
        return "training return of the stochastic policy, " + "; ".join(parts)
    return (
        f"the mean of the last {TAIL_FRACTION:.0%} of logged `{spec.metric}` points for "
        f"{len(results)} run(s)"
    )


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
