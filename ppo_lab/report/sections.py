"""The result sections of a report: per env, across envs, and the probability of improvement.

Each section writes its headings, tables and figures into the document and returns its numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ppo_lab.report import figures, stats
from ppo_lab.report.analysis import (
    CONFIDENCE,
    CURVE_STATISTICS,
    FinalRow,
    ScoredSweep,
    aggregate_curves,
    env_curves,
    estimators,
)
from ppo_lab.report.document import Doc, fmt, fmt_interval
from ppo_lab.report.scores import Excluded
from ppo_lab.report.stats import Interval


@dataclasses.dataclass
class Context:
    """What every section of one report needs."""

    sweep: ScoredSweep
    excluded: list[Excluded]
    roots: list[Path]
    out: Path
    metric: str
    label: str  # the metric in words: "episodic return"
    colors: dict[str, tuple[float, ...]]
    curve_stat: str
    grid_points: int
    reps: int
    seed: int
    written: list[Path] = dataclasses.field(default_factory=list)

    def ci(self, statistic: Callable[..., np.ndarray], *samples: stats.Strata) -> Interval:
        return stats.stratified_bootstrap_ci(
            statistic, *samples, reps=self.reps, confidence=CONFIDENCE, seed=self.seed
        )

    def figure(self, doc: Doc, path: Path, caption: str) -> None:
        self.written.append(path)
        doc.image(path, caption)


def _ci_words(has_ci: bool, what: str) -> str:
    return f"{CONFIDENCE:.0%} {what}" if has_ci else "single seed: no interval"


def env_section(ctx: Context, doc: Doc, env: str) -> list[FinalRow]:
    """One env: learning curves, the final-performance table and its interval plot."""
    sweep, label = ctx.sweep, ctx.label
    ref, known = sweep.refs[env]
    has_ci = any(len(sweep.runs(v, env)) > 1 for v in sweep.variants)
    doc.heading(2, env)
    curves = env_curves(
        sweep, env, ctx.grid_points, CURVE_STATISTICS[ctx.curve_stat], ctx.reps, ctx.seed
    )
    ctx.figure(
        doc,
        figures.plot_curves(
            ctx.out / f"curves_{_slug(env)}.png",
            curves,
            ctx.colors,
            title=f"{env}: {ctx.curve_stat} {label} over seeds",
            ylabel=f"{label} ({ctx.metric})",
        ),
        f"{env}: learning curves ({ctx.curve_stat} over seeds; band: "
        f"{_ci_words(has_ci, 'bootstrap CI over seeds')}).",
    )
    aggregates = estimators(ref.high, single_env=True)
    rows = []
    for v in sweep.variants:
        scores = sweep.scores(v, env)
        if len(scores):
            est = {name: ctx.ci(fn, [scores]) for name, fn in aggregates.items()}
            lost = sum(1 for e in ctx.excluded if e.run.variant == v and e.run.env_id == env)
            rows.append(FinalRow(v, len(scores), 1, lost, est))
    rows.sort(key=lambda r: -float(r.estimates["IQM"].point))
    gap_to = "the reference score" if known else "the best final score in this sweep"
    doc.para(
        f"Final {label} per run ({_ci_words(has_ci, 'bootstrap CI in brackets')}; "
        f"optimality gap to {fmt(ref.high)}, {gap_to}). Best IQM first."
    )
    _final_table(doc, rows, env_column=False)
    ctx.figure(
        doc,
        figures.plot_intervals(
            ctx.out / f"final_{_slug(env)}.png",
            _by_estimator(rows),
            ctx.colors,
            title=f"{env}: final {label}",
            xlabel=label,
        ),
        f"{env}: final {label}, point estimate ({_ci_words(has_ci, 'CI as bar')}).",
    )
    return rows


def aggregate_section(ctx: Context, doc: Doc) -> list[FinalRow]:
    """All envs: normalized aggregates, normalized curves and performance profiles."""
    sweep, label = ctx.sweep, ctx.label
    has_ci = any(len(rs) > 1 for rs in sweep.cells.values())
    doc.heading(2, "Across envs (normalized scores)")
    doc.para(
        "Scores normalized per env as (score - low) / (high - low) with the references "
        "listed under Method; 1 = the reference score. Aggregates pool all runs of all envs; "
        f"{_ci_words(has_ci, 'intervals from a bootstrap stratified by env')}."
    )
    aggregates = estimators(1.0, single_env=False)
    rows = []
    for v in sweep.variants:
        strata = sweep.strata(v, normalized=True)
        est = {name: ctx.ci(fn, strata) for name, fn in aggregates.items()}
        lost = sum(1 for e in ctx.excluded if e.run.variant == v)
        rows.append(FinalRow(v, sum(map(len, strata)), len(strata), lost, est))
    rows.sort(key=lambda r: -float(r.estimates["IQM"].point))
    _final_table(doc, rows, env_column=True)
    ctx.figure(
        doc,
        figures.plot_intervals(
            ctx.out / "final_all_envs.png",
            _by_estimator(rows),
            ctx.colors,
            title="All envs: normalized final score",
            xlabel="normalized score",
        ),
        f"Normalized final score, point estimate ({_ci_words(has_ci, 'CI as bar')}).",
    )
    curves = aggregate_curves(
        sweep, ctx.grid_points, CURVE_STATISTICS[ctx.curve_stat], ctx.reps, ctx.seed
    )
    ctx.figure(
        doc,
        figures.plot_curves(
            ctx.out / "curves_all_envs.png",
            curves,
            ctx.colors,
            title=f"All envs: {ctx.curve_stat} normalized {label}",
            ylabel=f"normalized {label}",
        ),
        "Normalized learning curves over all envs (band: "
        f"{_ci_words(has_ci, 'bootstrap CI stratified by env')}); a curve stops at the shortest "
        "run of its variant in any env.",
    )
    pooled = np.concatenate([np.concatenate(sweep.strata(v, True)) for v in sweep.variants])
    taus = np.linspace(min(0.0, pooled.min()), max(1.0, pooled.max()), 101)
    profiles = {
        v: ctx.ci(lambda s: stats.performance_profile(s, taus), sweep.strata(v, True))
        for v in sweep.variants
    }
    ctx.figure(
        doc,
        figures.plot_profiles(
            ctx.out / "performance_profile.png",
            taus,
            profiles,
            ctx.colors,
            title="Performance profiles",
            xlabel="normalized score τ",
        ),
        "Performance profiles: fraction of runs (averaged over envs) whose normalized final score "
        f"exceeds τ ({_ci_words(has_ci, 'bootstrap bands')}).",
    )
    return rows


def improvement_section(ctx: Context, doc: Doc) -> list[tuple[str, str, Interval]]:
    """P(X > Y) for each pair of variants, best-ranked first, averaged over shared envs."""
    sweep = ctx.sweep
    doc.heading(2, "Probability of improvement")
    improvement, rows = [], []
    for x, y in itertools.combinations(sweep.variants, 2):
        common = [e for e in sweep.envs if sweep.runs(x, e) and sweep.runs(y, e)]
        if common:
            p = ctx.ci(
                stats.probability_of_improvement,
                [sweep.scores(x, e) for e in common],
                [sweep.scores(y, e) for e in common],
            )
            improvement.append((x, y, p))
            rows.append([x, y, fmt_interval(p), str(len(common))])
    doc.para(
        "P(X > Y) = P(a run of X beats a run of Y) + 0.5 P(tie) on final scores, per env, "
        f"averaged over the envs both variants have; {CONFIDENCE:.0%} CI from an independent "
        "bootstrap of each variant's runs within each env. 0.5 = no difference."
    )
    doc.table(["X", "Y", "P(X > Y)", "envs"], rows)
    if improvement:
        ctx.figure(
            doc,
            figures.plot_improvement(
                ctx.out / "probability_of_improvement.png",
                improvement,
                title="Probability of improvement",
            ),
            f"Probability of improvement with {CONFIDENCE:.0%} CIs.",
        )
    return improvement


def _final_table(doc: Doc, rows: Sequence[FinalRow], env_column: bool) -> None:
    names = list(rows[0].estimates) if rows else []
    headers = ["variant", *(["envs"] if env_column else []), "runs", *names, "not included"]
    doc.table(
        headers,
        [
            [
                r.variant,
                *([str(r.envs)] if env_column else []),
                str(r.runs),
                *(fmt_interval(r.estimates[n]) for n in names),
                str(r.not_included),
            ]
            for r in rows
        ],
    )


def _by_estimator(rows: Sequence[FinalRow]) -> dict[str, dict[str, Interval]]:
    names = list(rows[0].estimates) if rows else []
    return {n: {r.variant: r.estimates[n] for r in rows} for n in names}


def _slug(text: str) -> str:
    """A file-name-safe form of `text`: `"ALE/Breakout-v5"` -> `"ALE_Breakout-v5"`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "env"
