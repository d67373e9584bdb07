"""Assemble the comparison report of a sweep: numbers, figures, `report.md` and `report.html`.

    runs (ppo_lab.runs) -> final score and curve per finished run -> per-env and across-env
    interval estimates, probability of improvement, performance profiles (stats) -> figures ->
    one document rendered twice: Markdown with PNGs beside it, and self-contained HTML.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import html
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ppo_lab.report import figures, stats
from ppo_lab.report.stats import Interval
from ppo_lab.runs import (
    NO_SUMMARY,
    REPLICATE_KEY,
    TASK_KEYS,
    RunRecord,
    Series,
    SweepError,
    is_number,
    load_runs,
    read_metrics,
    read_yaml,
    relative_name,
    run_length,
    varied_keys,
)

DEFAULT_METRIC = "charts/episodic_return"
TAIL_FRACTION = 0.1  # final score without summary.json: mean of the last 10% of logged points
CONFIDENCE = 0.95
AGGREGATE_SCOPE = "all envs (normalized)"


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


# --------------------------------------------------------------------------- runs -> scores


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


def _no_results_error(excluded: Sequence[Excluded], metric: str, seen: set[str]) -> SweepError:
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
    errors = [f"{e.run.path}: {_short(e.run.error, 120)}" for e in excluded if e.run.error][:3]
    detail = ("; first errors: " + " | ".join(errors)) if errors else ""
    return SweepError(f"no finished run to report on ({counts}){detail}")


# --------------------------------------------------------------------------- the document


class Doc:
    """A small document model rendered both as Markdown and as self-contained HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("bullets", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", (list(headers), [list(map(str, r)) for r in rows])))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", (Path(path), caption)))

    def markdown(self, images: bool = True) -> str:
        """Markdown; images as links to the PNGs beside it (or left out: `images=False`)."""
        out = []
        for kind, value in self.blocks:
            if kind == "heading":
                out.append(f"{'#' * value[0]} {value[1]}")
            elif kind == "para":
                out.append(value)
            elif kind == "bullets":
                out.append("\n".join(f"- {item}" for item in value))
            elif kind == "table":
                headers, rows = value
                cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
                lines = ["| " + " | ".join(map(cell, headers)) + " |"]
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "image" and images:
                path, caption = value
                out.append(f"![{caption}]({path.name})\n\n*{caption}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        """One self-contained HTML page, the PNGs embedded as base64 data URIs."""
        out = []
        for kind, value in self.blocks:
            if kind == "heading":
                out.append(f"<h{value[0]}>{_inline(value[1])}</h{value[0]}>")
            elif kind == "para":
                out.append(f"<p>{_inline(value)}</p>")
            elif kind == "bullets":
                out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                headers, rows = value
                head = "".join(f"<th>{_inline(h)}</th>" for h in headers)
                body = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "image":
                path, caption = value
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                out.append(
                    f'<figure><img alt="{html.escape(caption)}" '
                    f'src="data:image/png;base64,{data}"/>'
                    f"<figcaption>{_inline(caption)}</figcaption></figure>"
                )
        return _HTML.format(title=html.escape(title), body="\n".join(out))


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; }}
</style></head>
<body>
{body}
</body></html>
"""


def _inline(text: str) -> str:
    """Escape for HTML, then the Markdown inline marks the report uses: `code` and **bold**."""
    out = html.escape(str(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def fmt(x: float) -> str:
    """A number for a table: a few significant digits, thousands separated."""
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    magnitude = abs(x)
    if magnitude >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if magnitude >= 100 else f"{x:.2f}" if magnitude >= 10 else f"{x:.3f}"


def fmt_interval(est: Interval) -> str:
    """`"487.2 [480.1, 495.0]"`, or the point alone when there is no interval."""
    if not np.isfinite(est.low):
        return fmt(est.point)
    return f"{fmt(est.point)} [{fmt(est.low)}, {fmt(est.high)}]"


# --------------------------------------------------------------------------- the analysis


@dataclasses.dataclass(frozen=True)
class FinalRow:
    """One variant's line in a final-performance table."""

    variant: str
    runs: int
    envs: int
    not_included: int
    estimates: dict[str, Interval]


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
    variants: list[str]  # best first (IQM of normalized final scores over all envs)
    tables: dict[str, list[FinalRow]]  # env id or AGGREGATE_SCOPE -> rows, best IQM first
    improvement: list[tuple[str, str, Interval]]  # (x, y, P(x > y)) averaged over envs
    results: list[RunResult]
    excluded: list[Excluded]


class _Sweep:
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


def _estimators(gamma: float, single_env: bool) -> dict[str, Callable[..., np.ndarray]]:
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


def build_report(
    sweep_dirs: Sequence[Path],
    *,
    out: Path | None = None,
    metric: str = DEFAULT_METRIC,
    reps: int = 2000,
    curve_stat: str = "mean",
    grid_points: int = 100,
    seed: int = 0,
) -> Report:
    """Read the sweeps, compute the comparison and write report.md, report.html and PNGs.

    `out` defaults to the first sweep dir. `reps` bootstrap resamples per interval; `curve_stat`
    "mean" or "iqm" across seeds for learning curves. Raises SweepError with a message meant for
    the user when there is nothing to report on.
    """
    roots = [Path(p) for p in sweep_dirs]
    runs = load_runs(roots)
    results, excluded, seen = collect(runs, metric)
    if not results:
        raise _no_results_error(excluded, metric, seen)
    out = Path(out) if out is not None else roots[0]
    out.mkdir(parents=True, exist_ok=True)
    sweep = _Sweep(results)
    ctx = _Context(
        sweep=sweep, excluded=excluded, roots=roots, out=out, metric=metric,
        label=metric.split("/")[-1].replace("_", " "),
        colors=figures.variant_colors(sweep.variants),
        curve_stat=curve_stat, grid_points=grid_points, reps=reps, seed=seed,
    )
    title = f"Sweep report: {', '.join(map(str, roots))}"

    doc = Doc()
    doc.heading(1, title)
    doc.para(_sweep_line(runs, sweep, excluded))
    notes = _reading_notes(sweep, excluded, metric, roots)
    if notes.items:
        doc.heading(2, "Read this first")
        doc.bullets(notes.items)
    doc.heading(2, "What the sweep varied")
    _describe_sweep(doc, runs, roots)
    tables = {env: _env_section(ctx, doc, env) for env in sweep.envs}
    if len(sweep.envs) > 1:
        tables[AGGREGATE_SCOPE] = _aggregate_section(ctx, doc)
    improvement = _improvement_section(ctx, doc) if len(sweep.variants) > 1 else []
    _excluded_section(ctx, doc)
    _method(ctx, doc)

    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown())
    html_path.write_text(doc.html(title))
    return Report(md_path, html_path, metric, runs, doc, ctx.written, notes.warnings,
                  sweep.variants, tables, improvement, results, excluded)


@dataclasses.dataclass
class _Context:
    """What every section of one report needs."""

    sweep: _Sweep
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


# --------------------------------------------------------------------------- sections


def _env_section(ctx: _Context, doc: Doc, env: str) -> list[FinalRow]:
    """One env: learning curves, the final-performance table and its interval plot."""
    sweep, label = ctx.sweep, ctx.label
    ref, known = sweep.refs[env]
    has_ci = any(len(sweep.runs(v, env)) > 1 for v in sweep.variants)
    doc.heading(2, env)
    curves = _env_curves(sweep, env, ctx.grid_points, CURVE_STATISTICS[ctx.curve_stat],
                         ctx.reps, ctx.seed)
    ctx.figure(doc, figures.plot_curves(
        ctx.out / f"curves_{_slug(env)}.png", curves, ctx.colors,
        title=f"{env}: {ctx.curve_stat} {label} over seeds", ylabel=f"{label} ({ctx.metric})",
    ), f"{env}: learning curves ({ctx.curve_stat} over seeds; band: "
       f"{_ci_words(has_ci, 'bootstrap CI over seeds')}).")
    estimators = _estimators(ref.high, single_env=True)
    rows = []
    for v in sweep.variants:
        scores = sweep.scores(v, env)
        if len(scores):
            est = {name: ctx.ci(fn, [scores]) for name, fn in estimators.items()}
            lost = sum(1 for e in ctx.excluded if e.run.variant == v and e.run.env_id == env)
            rows.append(FinalRow(v, len(scores), 1, lost, est))
    rows.sort(key=lambda r: -float(r.estimates["IQM"].point))
    gap_to = "the reference score" if known else "the best final score in this sweep"
    doc.para(f"Final {label} per run ({_ci_words(has_ci, 'bootstrap CI in brackets')}; "
             f"optimality gap to {fmt(ref.high)}, {gap_to}). Best IQM first.")
    _final_table(doc, rows, env_column=False)
    ctx.figure(doc, figures.plot_intervals(
        ctx.out / f"final_{_slug(env)}.png", _by_estimator(rows), ctx.colors,
        title=f"{env}: final {label}", xlabel=label,
    ), f"{env}: final {label}, point estimate ({_ci_words(has_ci, 'CI as bar')}).")
    return rows


def _aggregate_section(ctx: _Context, doc: Doc) -> list[FinalRow]:
    """All envs: normalized aggregates, normalized curves and performance profiles."""
    sweep, label = ctx.sweep, ctx.label
    has_ci = any(len(rs) > 1 for rs in sweep.cells.values())
    doc.heading(2, "Across envs (normalized scores)")
    doc.para("Scores normalized per env as (score - low) / (high - low) with the references "
             "listed under Method; 1 = the reference score. Aggregates pool all runs of all envs; "
             f"{_ci_words(has_ci, 'intervals from a bootstrap stratified by env')}.")
    estimators = _estimators(1.0, single_env=False)
    rows = []
    for v in sweep.variants:
        strata = sweep.strata(v, normalized=True)
        est = {name: ctx.ci(fn, strata) for name, fn in estimators.items()}
        lost = sum(1 for e in ctx.excluded if e.run.variant == v)
        rows.append(FinalRow(v, sum(map(len, strata)), len(strata), lost, est))
    rows.sort(key=lambda r: -float(r.estimates["IQM"].point))
    _final_table(doc, rows, env_column=True)
    ctx.figure(doc, figures.plot_intervals(
        ctx.out / "final_all_envs.png", _by_estimator(rows), ctx.colors,
        title="All envs: normalized final score", xlabel="normalized score",
    ), f"Normalized final score, point estimate ({_ci_words(has_ci, 'CI as bar')}).")
    curves = _aggregate_curves(sweep, ctx.grid_points, CURVE_STATISTICS[ctx.curve_stat],
                               ctx.reps, ctx.seed)
    ctx.figure(doc, figures.plot_curves(
        ctx.out / "curves_all_envs.png", curves, ctx.colors,
        title=f"All envs: {ctx.curve_stat} normalized {label}", ylabel=f"normalized {label}",
    ), "Normalized learning curves over all envs (band: "
       f"{_ci_words(has_ci, 'bootstrap CI stratified by env')}); a curve stops at the shortest "
       "run of its variant in any env.")
    pooled = np.concatenate([np.concatenate(sweep.strata(v, True)) for v in sweep.variants])
    taus = np.linspace(min(0.0, pooled.min()), max(1.0, pooled.max()), 101)
    profiles = {
        v: ctx.ci(lambda s: stats.performance_profile(s, taus), sweep.strata(v, True))
        for v in sweep.variants
    }
    ctx.figure(doc, figures.plot_profiles(
        ctx.out / "performance_profile.png", taus, profiles, ctx.colors,
        title="Performance profiles", xlabel="normalized score τ",
    ), "Performance profiles: fraction of runs (averaged over envs) whose normalized final score "
       f"exceeds τ ({_ci_words(has_ci, 'bootstrap bands')}).")
    return rows


def _improvement_section(ctx: _Context, doc: Doc) -> list[tuple[str, str, Interval]]:
    """P(X > Y) for each pair of variants, best-ranked first, averaged over shared envs."""
    sweep = ctx.sweep
    doc.heading(2, "Probability of improvement")
    improvement, rows = [], []
    for x, y in itertools.combinations(sweep.variants, 2):
        common = [e for e in sweep.envs if sweep.runs(x, e) and sweep.runs(y, e)]
        if common:
            p = ctx.ci(stats.probability_of_improvement,
                       [sweep.scores(x, e) for e in common], [sweep.scores(y, e) for e in common])
            improvement.append((x, y, p))
            rows.append([x, y, fmt_interval(p), str(len(common))])
    doc.para("P(X > Y) = P(a run of X beats a run of Y) + 0.5 P(tie) on final scores, per env, "
             f"averaged over the envs both variants have; {CONFIDENCE:.0%} CI from an independent "
             "bootstrap of each variant's runs within each env. 0.5 = no difference.")
    doc.table(["X", "Y", "P(X > Y)", "envs"], rows)
    if improvement:
        ctx.figure(doc, figures.plot_improvement(
            ctx.out / "probability_of_improvement.png", improvement,
            title="Probability of improvement",
        ), f"Probability of improvement with {CONFIDENCE:.0%} CIs.")
    return improvement


_STATUS_DETAIL = {
    "running": "no end recorded: killed hard, or still running",
    NO_SUMMARY: "the job never wrote summary.json (killed before it started?)",
}


def _excluded_section(ctx: _Context, doc: Doc) -> None:
    """Every run the statistics left out, with its status and error."""
    doc.heading(2, "Runs not included")
    if not ctx.excluded:
        doc.para("None: every run finished and logged the metric.")
        return
    doc.para("These runs are not in any number or figure above.")
    doc.table(
        ["run", "env", "variant", "seed", "status", "steps reached", "detail"],
        [[f"`{relative_name(e.run.path, ctx.roots)}`", e.run.env_id, e.run.variant,
          _or_dash(e.run.seed), e.run.status, f"{e.length:,}",
          _short(e.run.error or _STATUS_DETAIL.get(e.run.status, "")
                 or ("" if e.reason == e.run.status else e.reason))]
         for e in ctx.excluded],
    )


class _Notes(NamedTuple):
    items: list[str]
    warnings: list[str]


def _reading_notes(
    sweep: _Sweep, excluded: Sequence[Excluded], metric: str, roots: Sequence[Path]
) -> _Notes:
    """Facts that change how the numbers read: single seeds, uneven lengths, missing runs."""
    items: list[str] = []
    warnings: list[str] = []
    single = [(v, e) for (v, e), rs in sweep.cells.items() if len(rs) == 1]
    if single and len(single) == len(sweep.cells):
        items.append("**One seed per variant and env: no confidence intervals.** A bootstrap over "
                     "one run has no spread, so only point estimates are shown. Sweep more seeds "
                     "(e.g. `seed=range(5)`) for intervals.")
        warnings.append("single seed: the report shows no confidence intervals")
    elif single:
        cells = "; ".join(f"{v} on {e}" for v, e in sorted(single))
        items.append(f"Only one seed (so no confidence interval) for: {cells}.")
        warnings.append(f"single seed, no CI for: {cells}")
    for env in sweep.envs:
        lengths = [r.length for r in sweep.results if r.run.env_id == env]
        if min(lengths) != max(lengths):
            per_variant = "; ".join(
                f"{v}: {_span([r.length for r in sweep.runs(v, env)])}"
                for v in sweep.variants if sweep.runs(v, env)
            )
            items.append(
                f"**Runs of different lengths on {env}** ({per_variant} env steps). Each curve "
                "stops where the shortest run of its variant stops (no extrapolation); final "
                "scores are each run's own, so longer runs may score higher."
            )
            warnings.append(f"runs of different lengths on {env} ({_span(lengths)} env steps)")
    partial = [v for v in sweep.variants if len(sweep.envs_of(v)) < len(sweep.envs)]
    if len(sweep.envs) > 1 and partial:
        which = "; ".join(f"{v} (runs on {', '.join(sweep.envs_of(v))} only)" for v in partial)
        items.append(f"Some variants lack finished runs on some envs: {which}. Their "
                     "across-env aggregates cover only those envs; compare them per env.")
        warnings.append(f"variants missing envs: {which}")
    lacking = [e for e in excluded if e.lacks_metric]
    if lacking:
        names = ", ".join(f"`{relative_name(e.run.path, roots)}`" for e in lacking)
        items.append(f"{len(lacking)} finished run(s) did not log `{metric}`: {names}.")
        warnings.append(f"{len(lacking)} run(s) lack `{metric}`: "
                        + ", ".join(str(e.run.path) for e in lacking))
    failed = [e for e in excluded if not e.lacks_metric]
    if failed:
        counts = ", ".join(f"{n} {s}" for s, n in Counter(e.run.status for e in failed).items())
        items.append(f"{len(failed)} run(s) did not finish ({counts}): listed under "
                     "Runs not included, left out of every statistic.")
        warnings.append(f"{len(failed)} run(s) did not finish ({counts})")
    return _Notes(items, warnings)


def _sweep_line(runs: Sequence[RunRecord], sweep: _Sweep, excluded: Sequence[Excluded]) -> str:
    when = datetime.datetime.now().isoformat(timespec="seconds")
    return (f"{len(runs)} runs ({len(sweep.results)} used, {len(excluded)} not included); "
            f"{len(sweep.variants)} variant(s) x {len(sweep.envs)} env(s). Generated {when}.")


def _describe_sweep(doc: Doc, runs: Sequence[RunRecord], roots: Sequence[Path]) -> None:
    """The sweep command, the swept factors and how the resolved configs differ."""
    commands = []
    for root in roots:
        task = read_yaml(root / "multirun.yaml")
        for key in ("hydra", "overrides", "task"):
            task = task.get(key) if isinstance(task, dict) else None
        if isinstance(task, list) and task:
            commands.append(f"`python -m ppo_lab -m {' '.join(map(str, task))}`")
    if commands:
        doc.para("Sweep command: " + "; ".join(commands))
    keys = varied_keys(runs)
    values: dict[str, list[str]] = {k: [] for k in keys}
    for run in runs:
        factors = run.factors
        for k in keys:
            value = factors.get(k, "unset")
            if value not in values[k]:
                values[k].append(value)
    envs = sorted({r.env_id for r in runs})
    doc.para(f"Envs (the task axis): {', '.join(envs)}. Seeds (the replicate axis): "
             f"{', '.join(sorted({_or_dash(r.seed) for r in runs}, key=_natural))}.")
    if keys:
        doc.para("Variants are the combinations of these factors:")
        doc.table(["factor", "values"], [[f"`{k}`", ", ".join(values[k])] for k in keys])
    else:
        doc.para("The sweep varied nothing but seeds and envs: one variant, "
                 "named `all runs`.")
    diffs = config_differences(runs)
    if diffs:
        variants = sorted({r.variant for r in runs})
        doc.para("Resolved config values that differ between variants:")
        doc.table(["config key", *variants],
                  [[f"`{k}`", *(per[v] for v in variants)] for k, per in diffs.items()])


def config_differences(runs: Sequence[RunRecord]) -> dict[str, dict[str, str]]:
    """Config keys whose values differ between variants: `{key: {variant: values}}`.

    A variant's value is every value its runs took (joined by " / "); the seed and the env id
    (replicate and task axes) are left out.
    """
    per_variant: dict[str, dict[str, set[str]]] = {}
    for run in runs:
        cell = per_variant.setdefault(run.variant, {})
        for key, value in _flatten(run.config).items():
            cell.setdefault(key, set()).add(value)
    keys = sorted({k for cell in per_variant.values() for k in cell} - {REPLICATE_KEY} - TASK_KEYS)
    out = {}
    for key in keys:
        shown = {v: " / ".join(sorted(cell.get(key, {"—"}))) for v, cell in per_variant.items()}
        if len(set(shown.values())) > 1:
            out[key] = shown
    return out


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value, default=str) if not isinstance(value, str) else value
    return out


def _env_curves(
    sweep: _Sweep, env: str, num: int, statistic: Callable, reps: int, seed: int
) -> dict[str, tuple[np.ndarray, Interval]]:
    """Each variant's curve on one env over a step grid shared by all variants of that env."""
    series = [r.series for r in sweep.results if r.run.env_id == env]
    grid = stats.common_grid([s.steps[0] for s in series], [s.steps[-1] for s in series], num)
    curves = {}
    for v in sweep.variants:
        runs = sweep.runs(v, env)
        if runs:
            matrix = stats.interpolate_curves([(r.series.steps, r.series.values) for r in runs],
                                              grid)
            curves[v] = (grid, stats.curve_band([matrix], statistic, reps=reps, seed=seed))
    return curves


def _aggregate_curves(
    sweep: _Sweep, num: int, statistic: Callable, reps: int, seed: int
) -> dict[str, tuple[np.ndarray, Interval]]:
    """Normalized curves pooled over envs, on one step grid; bootstrap stratified by env."""
    series = [r.series for r in sweep.results]
    grid = stats.common_grid([s.steps[0] for s in series], [s.steps[-1] for s in series], num)
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


def _final_table(doc: Doc, rows: Sequence[FinalRow], env_column: bool) -> None:
    names = list(rows[0].estimates) if rows else []
    headers = ["variant", *(["envs"] if env_column else []), "runs", *names, "not included"]
    doc.table(headers, [
        [r.variant, *([str(r.envs)] if env_column else []), str(r.runs),
         *(fmt_interval(r.estimates[n]) for n in names), str(r.not_included)]
        for r in rows
    ])


def _by_estimator(rows: Sequence[FinalRow]) -> dict[str, dict[str, Interval]]:
    names = list(rows[0].estimates) if rows else []
    return {n: {r.variant: r.estimates[n] for r in rows} for n in names}


def _method(ctx: _Context, doc: Doc) -> None:
    """How every number was made, and the normalization references."""
    sweep, metric = ctx.sweep, ctx.metric
    from_summary = sum(r.from_summary for r in sweep.results)
    tail = len(sweep.results) - from_summary
    sources = []
    if from_summary:
        sources.append(f"`final_return` from summary.json (mean return of the last 10 training "
                       f"episodes) for {from_summary} run(s)")
    if tail:
        sources.append(f"the mean of the last {TAIL_FRACTION:.0%} of logged `{metric}` points "
                       f"for {tail} run(s)")
    doc.heading(2, "Method")
    doc.bullets([
        "Final performance per run: " + "; ".join(sources) + ".",
        "Estimators (Agarwal et al. 2021, *Deep Reinforcement Learning at the Edge of the "
        "Statistical Precipice*, NeurIPS; as in rliable): mean; median; IQM = mean of the middle "
        "50% of runs (floor(n/4) cut from each end); optimality gap = reference - mean(min(score, "
        "reference)), lower is better. Across envs: mean and median of per-env means, IQM of all "
        "runs pooled.",
        f"Intervals: {CONFIDENCE:.0%} percentile intervals from {ctx.reps} stratified bootstrap "
        f"resamples (runs resampled within each env; random seed {ctx.seed}). No interval where a "
        f"variant has a single run on an env.",
        f"Learning curves: {ctx.curve_stat} over seeds of `{metric}`, each run linearly "
        f"interpolated onto {ctx.grid_points} evenly spaced environment steps per env (never "
        "extrapolated); a variant's curve stops where its shortest run stops.",
        "Only runs with status `finished` are used; the others are listed under Runs not "
        "included.",
    ])
    doc.para("Normalization references (normalized = (score - low) / (high - low)):")
    doc.table(["env", "low", "high", "source"], [
        [env, fmt(ref.low), fmt(ref.high),
         ref.source if known else f"**unknown env**: {ref.source}"]
        for env, (ref, known) in sweep.refs.items()
    ])


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}"


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)


def _or_dash(value: Any) -> str:
    return "—" if value is None else str(value)


def _slug(text: str) -> str:
    """A file-name-safe form of `text`: `"ALE/Breakout-v5"` -> `"ALE_Breakout-v5"`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "env"
