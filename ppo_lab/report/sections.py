"""The result sections of a report: per env, across envs, and the probability of improvement.

Each section writes its headings, tables and figures into the document and returns its numbers.
Intervals are labelled with their real coverage when runs are few (`stats.real_coverage`); a
variant whose every run hit the env's ceiling is marked "ceiling" instead of given a zero-width
interval; an IQM over fewer than 4 runs is marked "= mean (n<4)" and not ranked by.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
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
    rank_statistic,
)
from ppo_lab.report.document import Doc, fmt, fmt_interval
from ppo_lab.report.scores import DEFAULT_METRIC, EVAL_METRIC, Excluded, ScoreSpec
from ppo_lab.report.stats import Interval

IQM_IS_MEAN = "= mean (n<4)"
CEILING = "ceiling"
MAX_ALL_PAIRS = 8  # more variants than this: P(best > each other) instead of every pair
MAX_LISTED_SCORES = 10  # per-run scores listed in a table cell up to this many runs


@dataclasses.dataclass
class Context:
    """What every section of one report needs."""

    sweep: ScoredSweep
    excluded: list[Excluded]
    roots: list[Path]
    out: Path
    metric: str
    label: str  # the score in words: "evaluation return"
    colors: dict[str, tuple[float, ...]]
    curve_stat: str
    grid_points: int
    reps: int
    seed: int
    written: list[Path] = dataclasses.field(default_factory=list)
    styles: dict[str, figures.Style] = dataclasses.field(default_factory=dict)
    score: ScoreSpec | None = None
    score_text: str = ""  # which score, in a sentence (scores.describe_score)
    window: int = 0  # smoothing window of the learning curves, env steps

    def ci(self, statistic: Callable[..., np.ndarray], *samples: stats.Strata) -> Interval:
        return stats.stratified_bootstrap_ci(
            statistic, *samples, reps=self.reps, confidence=CONFIDENCE, seed=self.seed
        )

    def figure(self, doc: Doc, path: Path, caption: str) -> None:
        self.written.append(path)
        doc.image(path, caption)

    @property
    def curve_label(self) -> str:
        """What the learning curves show."""
        if self.metric == DEFAULT_METRIC:
            return "training return (episodes of the stochastic policy)"
        if self.metric == EVAL_METRIC:
            return "evaluation return (deterministic policy)"
        return f"`{self.metric}`"

    @property
    def smoothing(self) -> str:
        if self.window <= 0:
            return "not smoothed"
        return f"smoothed: centred moving average over {self.window:,} env steps"


def ci_words(counts: Iterable[int], what: str = "bootstrap 95% CI") -> str:
    """The honest name of an interval over groups of `counts` runs: "bootstrap 95% CI (real
    coverage ~0.83 at n=5)" when runs are few; "single seed: no interval" with one run each."""
    counts = sorted({int(c) for c in counts if c > 1})
    if not counts:
        return "single seed: no interval"
    few = [
        f"~{cov:.2f} at n={n}"
        for n in counts
        if n < stats.FEW_RUNS and (cov := stats.real_coverage(n)) is not None
    ]
    return f"{what} (real coverage {', '.join(few)})" if few else what


def _per_env_counts(sweep: ScoredSweep) -> list[int]:
    """Runs of each variant on each env."""
    return [len(rs) for rs in sweep.cells.values()]


def _label(variant: str, n: int, envs: int = 1) -> str:
    nbsp = "\u00a0"  # kept on one line when a figure wraps a long label
    return f"{variant} (n={n})" if envs <= 1 else f"{variant} (n={n},{nbsp}{envs}{nbsp}envs)"


def saturation_note(sweep: ScoredSweep, env: str) -> str:
    ceiling = sweep.ceilings[env]
    return (
        f"Saturated: every run of every variant reached {env}'s ceiling ({fmt(ceiling or 0)}); "
        "the final scores cannot rank these variants (compare how fast they get there)."
    )


def env_section(ctx: Context, doc: Doc, env: str) -> list[FinalRow]:
    """One env: learning curves, the final-performance table and its interval plot."""
    sweep, label = ctx.sweep, ctx.label
    ref, known = sweep.refs[env]
    ceiling = sweep.ceilings[env]
    variants = [v for v in sweep.variants if sweep.runs(v, env)]
    counts = {v: len(sweep.runs(v, env)) for v in variants}
    interval = ci_words(counts.values())
    saturated = sweep.saturated(env)
    note = saturation_note(sweep, env) if saturated else None
    labels = {v: _label(v, n) for v, n in counts.items()}
    doc.heading(2, env)
    if saturated:
        doc.para(f"**{note}**")
    curves = env_curves(
        sweep,
        env,
        ctx.grid_points,
        CURVE_STATISTICS[ctx.curve_stat],
        ctx.reps,
        ctx.seed,
        ctx.window,
    )
    band = f"band: {interval}"
    ctx.figure(
        doc,
        figures.plot_curves(
            ctx.out / f"curves_{_slug(env)}.png",
            curves,
            ctx.styles,
            labels,
            title=f"{env}: {ctx.curve_stat} over seeds",
            ylabel=ctx.curve_label.split(" (")[0],
            legend_title=f"{ctx.smoothing}; {band}",
            ceiling=ceiling if ctx.metric in (DEFAULT_METRIC, EVAL_METRIC) else None,
            note=note,
        ),
        f"{env}: learning curves, {ctx.curve_stat} over seeds of the {ctx.curve_label}; each "
        f"run {ctx.smoothing}; {band}. n = runs per variant.",
    )
    aggregates = estimators(ref.high, single_env=True)
    rank_by = rank_statistic([[n] for n in counts.values()])
    rows = []
    for v in variants:
        scores = sweep.scores(v, env)
        est = {name: ctx.ci(fn, [scores]) for name, fn in aggregates.items()}
        lost = sum(1 for e in ctx.excluded if e.run.variant == v and e.run.env_id == env)
        rows.append(
            FinalRow(
                v,
                len(scores),
                1,
                lost,
                est,
                ceiling=sweep.at_ceiling(v, env),
                iqm_is_mean=not stats.iqm_trims([len(scores)]),
                scores=tuple(float(x) for x in scores),
            )
        )
    rows.sort(key=lambda r: -float(r.estimates[rank_by].point))
    gap_to = "the reference score" if known else "the best final score in this sweep"
    doc.para(
        f"Final {label} per run: {ctx.score_text}. Brackets: {interval}. Optimality gap to "
        f"{fmt(ref.high)}, {gap_to} (lower is better). {_ranked(rank_by)}"
    )
    _final_table(doc, rows, env_column=False)
    _table_notes(doc, rows, ceiling)
    ctx.figure(
        doc,
        figures.plot_intervals(
            ctx.out / f"final_{_slug(env)}.png",
            _panels(rows, ctx.label, gap=lambda x: ref.high - np.minimum(x, ref.high)),
            ctx.styles,
            labels,
            title=f"{env}: final {label}",
            key=f"tick: estimate; bar: {interval}; dots: the runs",
            note=note,
        ),
        f"{env}: final {label}, {ctx.score_text}. Black tick: the estimate; bar: {interval}; "
        "dots: the runs." + (" `ceiling`: every run at the env's ceiling." if ceiling else ""),
    )
    return rows


def _ranked(rank_by: str) -> str:
    if rank_by == "IQM":
        return "Ranked by IQM."
    return (
        "Ranked by mean: with fewer than 4 runs the IQM cuts nothing and equals the mean, "
        f"marked `{IQM_IS_MEAN}`."
    )


def _panels(
    rows: Sequence[FinalRow], xlabel: str, gap: Callable[[np.ndarray], np.ndarray]
) -> list[figures.IntervalPanel]:
    """The panels of a final-score figure: mean, median, IQM, optimality gap."""
    points = {r.variant: np.array(r.scores) for r in rows}
    marks = {r.variant: CEILING for r in rows if r.ceiling}
    panels = []
    for name in rows[0].estimates if rows else []:
        estimates = {r.variant: r.estimates[name] for r in rows}
        if name == "optimality gap":
            panels.append(
                figures.IntervalPanel(
                    "optimality gap",
                    "optimality gap (lower is better)",
                    estimates,
                    {v: gap(p) for v, p in points.items()},
                    marks,
                    start_at_zero=True,
                )
            )
            continue
        title = name
        if name == "IQM" and any(r.iqm_is_mean for r in rows):
            title = "IQM (= mean where n<4)"
        panels.append(figures.IntervalPanel(title, xlabel, estimates, points, marks))
    return panels


def aggregate_section(ctx: Context, doc: Doc) -> list[FinalRow]:
    """All envs: normalized aggregates, normalized curves and performance profiles."""
    sweep = ctx.sweep
    interval = ci_words(_per_env_counts(sweep), "bootstrap 95% CI stratified by env")
    doc.heading(2, "Across envs (normalized scores)")
    doc.para(
        "Scores normalized per env as (score - low) / (high - low) with the references "
        "listed under Method; 1 = the reference score. Every env weighs the same in every "
        "aggregate, however many runs it has: mean, median and optimality gap of the per-env "
        "values; IQM of all runs pooled with each run weighted 1 / (runs on its env). "
        f"Brackets: {interval}. {_ranked(sweep.rank_by)}"
    )
    aggregates = estimators(1.0, single_env=False)
    rows = []
    labels = {}
    for v in sweep.variants:
        strata = sweep.strata(v, normalized=True)
        est = {name: ctx.ci(fn, strata) for name, fn in aggregates.items()}
        lost = sum(1 for e in ctx.excluded if e.run.variant == v)
        runs = sum(map(len, strata))
        labels[v] = _label(v, runs, len(strata))
        rows.append(
            FinalRow(
                v,
                runs,
                len(strata),
                lost,
                est,
                ceiling=sweep.at_ceiling_everywhere(v),
                iqm_is_mean=not stats.iqm_trims(sweep.counts(v)),
                scores=tuple(float(x) for s in strata for x in s),
            )
        )
    rows.sort(key=lambda r: -float(r.estimates[sweep.rank_by].point))
    _final_table(doc, rows, env_column=True)
    _table_notes(doc, rows, None)
    ctx.figure(
        doc,
        figures.plot_intervals(
            ctx.out / "final_all_envs.png",
            _panels(rows, "normalized score", gap=lambda x: 1.0 - np.minimum(x, 1.0)),
            ctx.styles,
            labels,
            title=f"All envs: normalized final {ctx.label}",
            key=f"tick: estimate; bar: {interval}; dots: the runs",
        ),
        f"Normalized final score. Black tick: the estimate; bar: {interval}; dots: the runs "
        "of every env.",
    )
    curves = aggregate_curves(
        sweep,
        ctx.grid_points,
        CURVE_STATISTICS[ctx.curve_stat],
        ctx.reps,
        ctx.seed,
        ctx.window,
    )
    ctx.figure(
        doc,
        figures.plot_curves(
            ctx.out / "curves_all_envs.png",
            curves,
            ctx.styles,
            labels,
            title=f"All envs: {ctx.curve_stat} normalized score",
            ylabel="normalized score",
            legend_title=f"{ctx.smoothing}; band: {interval}",
        ),
        f"Normalized learning curves over all envs ({ctx.curve_label}, each run "
        f"{ctx.smoothing}; band: {interval}); a curve stops at the shortest run of its variant "
        "in any env.",
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
            ctx.styles,
            labels,
            title="Performance profiles",
            xlabel="normalized score τ",
            legend_title=f"band: {interval}",
        ),
        "Performance profiles: fraction of runs (averaged over envs, each env weighing the same) "
        f"whose normalized final score exceeds τ (band: {interval}).",
    )
    return rows


def improvement_section(ctx: Context, doc: Doc) -> list[tuple[str, str, Interval]]:
    """P(X > Y) for each pair of variants, best-ranked first, averaged over shared envs (with
    more than `MAX_ALL_PAIRS` variants: the best-ranked one against each other)."""
    sweep = ctx.sweep
    doc.heading(2, "Probability of improvement")
    if len(sweep.variants) > MAX_ALL_PAIRS:
        best = sweep.variants[0]
        pairs = [(best, v) for v in sweep.variants[1:]]
        scope = (
            f"The best-ranked variant (by {sweep.rank_by}) against each other one "
            f"({len(sweep.variants)} variants: every pair would be "
            f"{len(sweep.variants) * (len(sweep.variants) - 1) // 2} rows)."
        )
    else:
        pairs = list(itertools.combinations(sweep.variants, 2))
        scope = ""
    improvement, rows, marks, counts = [], [], [], []
    for x, y in pairs:
        common = [e for e in sweep.envs if sweep.runs(x, e) and sweep.runs(y, e)]
        if not common:
            continue
        p = ctx.ci(
            stats.probability_of_improvement,
            [sweep.scores(x, e) for e in common],
            [sweep.scores(y, e) for e in common],
        )
        counts += [len(sweep.runs(x, e)) for e in common] + [len(sweep.runs(y, e)) for e in common]
        tie = all(sweep.at_ceiling(x, e) and sweep.at_ceiling(y, e) for e in common)
        improvement.append((x, y, p))
        if tie:
            mark, cell = "tie at the ceiling", f"{fmt(p.point)} (both at the {CEILING})"
        elif float(p.point) in (0.0, 1.0) and float(p.low) == float(p.high):
            winner, loser = ("X", "Y") if float(p.point) == 1.0 else ("Y", "X")
            mark = f"every run of {winner} beat every run of {loser}"
            cell = f"{fmt(p.point)} ({mark})"
        else:
            mark, cell = None, fmt_interval(p)
        marks.append(mark)
        rows.append([x, y, cell, str(len(common))])
    interval = ci_words(counts, "bootstrap 95% CI")
    doc.para(
        (scope + " " if scope else "")
        + "P(X > Y) = P(a run of X beats a run of Y) + 0.5 P(tie) on final scores, per env, "
        f"averaged over the envs both variants have; {interval}, from an independent "
        "bootstrap of each variant's runs within each env. 0.5 = no difference."
    )
    doc.table(["X", "Y", "P(X > Y)", "envs"], rows)
    if improvement:
        ctx.figure(
            doc,
            figures.plot_improvement(
                ctx.out / "probability_of_improvement.png",
                improvement,
                title=f"Probability of improvement\nbar: {interval}",
                marks=marks,
            ),
            f"Probability of improvement; bar: {interval}.",
        )
    return improvement


def _cell(row: FinalRow, name: str) -> str:
    est = row.estimates[name]
    if name == "IQM" and row.iqm_is_mean:
        return IQM_IS_MEAN
    if row.ceiling:
        return f"{fmt(est.point)} ({CEILING})"
    if len(row.scores) > 1 and len(set(row.scores)) == 1:
        return f"{fmt(est.point)} (all runs equal)"
    return fmt_interval(est)


def _scores_cell(row: FinalRow) -> str:
    scores = sorted(row.scores)
    if len(scores) <= MAX_LISTED_SCORES:
        return ", ".join(fmt(x) for x in scores)
    return f"{fmt(scores[0])} … {fmt(scores[-1])}"


def _final_table(doc: Doc, rows: Sequence[FinalRow], env_column: bool) -> None:
    names = list(rows[0].estimates) if rows else []
    headers = [
        "variant",
        *(["envs"] if env_column else []),
        "runs",
        *names,
        "runs' scores" + (" (normalized)" if env_column else ""),
        "not included",
    ]
    doc.table(
        headers,
        [
            [
                r.variant,
                *([str(r.envs)] if env_column else []),
                str(r.runs),
                *(_cell(r, n) for n in names),
                _scores_cell(r),
                str(r.not_included),
            ]
            for r in rows
        ],
    )


def _table_notes(doc: Doc, rows: Sequence[FinalRow], ceiling: float | None) -> None:
    notes = []
    if any(r.ceiling for r in rows):
        at = f" ({fmt(ceiling)})" if ceiling is not None else ""
        notes.append(
            f"`{CEILING}`: every run of the variant reached the env's highest return{at}. Its "
            "interval would have zero width and read as certainty; it only says that the env "
            "cannot tell its runs apart."
        )
    if any(r.iqm_is_mean for r in rows):
        notes.append(
            f"`{IQM_IS_MEAN}`: the IQM cuts floor(n/4) runs from each end, none when n < 4, so "
            "there it is the mean and no more robust than it."
        )
    doc.bullets(notes)


def _slug(text: str) -> str:
    """A file-name-safe form of `text`: `"ALE/Breakout-v5"` -> `"ALE_Breakout-v5"`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "env"
