"""Assemble the comparison report of a sweep: numbers, figures, `report.md` and `report.html`.

runs (ppo_lab.runs; a multi-seed trial read as one run per seed_<s>/ dir, earlier attempts
skipped) -> final score (deterministic evaluation by default) and curve per finished run
(scores) -> runs grouped by variant and env, interval estimates, probability of improvement,
performance profiles (analysis, stats) -> figures -> one document (document) written section by
section (sections, overview) and rendered twice: Markdown with PNGs beside it, and self-contained
HTML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from ppo_lab.report import figures
from ppo_lab.report.analysis import CURVE_STATISTICS, FinalRow, ScoredSweep, default_window
from ppo_lab.report.document import Doc
from ppo_lab.report.overview import (
    describe_sweep,
    excluded_section,
    method_section,
    reading_notes,
    sweep_line,
)
from ppo_lab.report.scores import (
    DEFAULT_EVAL_LAST,
    DEFAULT_METRIC,
    SCORES,
    Excluded,
    RunResult,
    ScoreSpec,
    collect,
    describe_score,
    no_results_error,
    reference_for,
)
from ppo_lab.report.sections import (
    Context,
    aggregate_section,
    env_section,
    improvement_section,
)
from ppo_lab.report.stats import Interval
from ppo_lab.runs import RunRecord, config_differences, load_runs

__all__ = [
    "AGGREGATE_SCOPE",
    "CURVE_STATISTICS",
    "DEFAULT_EVAL_LAST",
    "DEFAULT_METRIC",
    "SCORES",
    "Report",
    "build_report",
    "config_differences",
    "reference_for",
]

AGGREGATE_SCOPE = "all envs (normalized)"


@dataclasses.dataclass
class Report:
    """What `build_report` wrote and computed (the numbers are kept for tests and other tools)."""

    markdown: Path
    html: Path
    metric: str
    runs: list[RunRecord]
    document: Doc
    figures: list[Path]
    warnings: list[str]
    variants: list[str]  # best first (by `rank_by` of normalized final scores over all envs)
    tables: dict[str, list[FinalRow]]  # env id or AGGREGATE_SCOPE -> rows, best first
    improvement: list[tuple[str, str, Interval]]  # (x, y, P(x > y)) averaged over envs
    results: list[RunResult]
    excluded: list[Excluded]
    score: ScoreSpec | None = None  # which final score was used
    score_text: str = ""  # ... in words, as the report says it
    rank_by: str = "IQM"  # "IQM", or "mean" when some variant has fewer than 4 runs
    smoothing_window: int = 0  # env steps of the learning curves' moving average


def build_report(
    sweep_dirs: Sequence[Path],
    *,
    out: Path | None = None,
    metric: str = DEFAULT_METRIC,
    reps: int = 2000,
    curve_stat: str = "mean",
    grid_points: int = 100,
    seed: int = 0,
    score: str = "eval",
    eval_last: int = DEFAULT_EVAL_LAST,
    smooth: int | None = None,
    ceilings: Mapping[str, float] | None = None,
) -> Report:
    """Read the sweeps, compute the comparison and write report.md, report.html and PNGs.

    `out` defaults to the first sweep dir. `reps` bootstrap resamples per interval; `curve_stat`
    "mean" or "iqm" across seeds for learning curves. `score`: "eval" (default: the mean of each
    run's last `eval_last` deterministic evaluations; the training return when no run of the
    sweep evaluated) or "training" (the last 10 training episodes). `smooth`: the learning
    curves' moving-average window in env steps (None: about 5% of the longest run; 0: none).
    `ceilings`: env id -> highest return, beside the known ones (CartPole). Raises SweepError
    with a message meant for the user when there is nothing to report on.
    """
    roots = [Path(p) for p in sweep_dirs]
    runs = load_runs(roots, seeds=True, attempts=False)
    results, excluded, seen, spec = collect(runs, metric, score, eval_last)
    if not results:
        raise no_results_error(excluded, metric, seen)
    out = Path(out) if out is not None else roots[0]
    out.mkdir(parents=True, exist_ok=True)
    sweep = ScoredSweep(results, ceilings)
    styles = figures.variant_styles(sweep.variants)
    score_text = describe_score(spec, results)
    ctx = Context(
        sweep=sweep,
        excluded=excluded,
        roots=roots,
        out=out,
        metric=metric,
        label=spec.label,
        colors={v: st.color for v, st in styles.items()},
        curve_stat=curve_stat,
        grid_points=grid_points,
        reps=reps,
        seed=seed,
        styles=styles,
        score=spec,
        score_text=score_text,
        window=default_window(results) if smooth is None else max(0, int(smooth)),
    )
    title = f"Sweep report: {', '.join(map(str, roots))}"

    doc = Doc()
    doc.heading(1, title)
    doc.para(sweep_line(runs, sweep, excluded))
    doc.para(f"**Score:** {score_text}.")
    notes = reading_notes(sweep, excluded, metric, roots, spec)
    if notes.items:
        doc.heading(2, "Read this first")
        doc.bullets(notes.items)
    doc.heading(2, "What the sweep varied")
    describe_sweep(doc, runs, roots)
    tables = {env: env_section(ctx, doc, env) for env in sweep.envs}
    if len(sweep.envs) > 1:
        tables[AGGREGATE_SCOPE] = aggregate_section(ctx, doc)
    improvement = improvement_section(ctx, doc) if len(sweep.variants) > 1 else []
    excluded_section(ctx, doc)
    method_section(ctx, doc)

    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown())
    html_path.write_text(doc.html(title))
    return Report(
        md_path,
        html_path,
        metric,
        runs,
        doc,
        ctx.written,
        notes.warnings,
        sweep.variants,
        tables,
        improvement,
        results,
        excluded,
        spec,
        score_text,
        sweep.rank_by,
        ctx.window,
    )
