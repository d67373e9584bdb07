"""The prose around a report's numbers: the sweep line, what to read first, what the sweep varied,
the runs left out and how every number was made."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ppo_lab.report.analysis import CONFIDENCE, ScoredSweep
from ppo_lab.report.document import Doc, fmt, shorten
from ppo_lab.report.scores import TAIL_FRACTION, Excluded
from ppo_lab.report.sections import Context
from ppo_lab.runs import (
    NO_SUMMARY,
    RunRecord,
    config_differences,
    natural_key,
    read_yaml,
    relative_name,
    variant_keys,
)


def sweep_line(runs: Sequence[RunRecord], sweep: ScoredSweep, excluded: Sequence[Excluded]) -> str:
    """How many runs, how many used, variants x envs, and when the report was generated."""
    when = datetime.datetime.now().isoformat(timespec="seconds")
    return (
        f"{len(runs)} runs ({len(sweep.results)} used, {len(excluded)} not included); "
        f"{len(sweep.variants)} variant(s) x {len(sweep.envs)} env(s). Generated {when}."
    )


class Notes(NamedTuple):
    items: list[str]
    warnings: list[str]


def reading_notes(
    sweep: ScoredSweep, excluded: Sequence[Excluded], metric: str, roots: Sequence[Path]
) -> Notes:
    """Facts that change how the numbers read: single seeds, uneven lengths, missing runs."""
    items: list[str] = []
    warnings: list[str] = []
    single = [(v, e) for (v, e), rs in sweep.cells.items() if len(rs) == 1]
    if single and len(single) == len(sweep.cells):
        items.append(
            "**One seed per variant and env: no confidence intervals.** A bootstrap over "
            "one run has no spread, so only point estimates are shown. Sweep more seeds "
            "(e.g. `seed=range(5)`) for intervals."
        )
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
                for v in sweep.variants
                if sweep.runs(v, env)
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
        items.append(
            f"Some variants lack finished runs on some envs: {which}. Their "
            "across-env aggregates cover only those envs; compare them per env."
        )
        warnings.append(f"variants missing envs: {which}")
    lacking = [e for e in excluded if e.lacks_metric]
    if lacking:
        names = ", ".join(f"`{relative_name(e.run.path, roots)}`" for e in lacking)
        items.append(f"{len(lacking)} finished run(s) did not log `{metric}`: {names}.")
        warnings.append(
            f"{len(lacking)} run(s) lack `{metric}`: " + ", ".join(str(e.run.path) for e in lacking)
        )
    failed = [e for e in excluded if not e.lacks_metric]
    if failed:
        counts = ", ".join(f"{n} {s}" for s, n in Counter(e.run.status for e in failed).items())
        items.append(
            f"{len(failed)} run(s) did not finish ({counts}): listed under "
            "Runs not included, left out of every statistic."
        )
        warnings.append(f"{len(failed)} run(s) did not finish ({counts})")
    return Notes(items, warnings)


def describe_sweep(doc: Doc, runs: Sequence[RunRecord], roots: Sequence[Path]) -> None:
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
    keys = variant_keys(runs)
    values: dict[str, list[str]] = {k: [] for k in keys}
    for run in runs:
        factors = run.factors
        for k in keys:
            value = factors.get(k, "unset")
            if value not in values[k]:
                values[k].append(value)
    envs = sorted({r.env_id for r in runs})
    doc.para(
        f"Envs (the task axis): {', '.join(envs)}. Seeds (the replicate axis): "
        f"{', '.join(sorted({_or_dash(r.seed) for r in runs}, key=natural_key))}."
    )
    if keys:
        doc.para("Variants are the combinations of these factors:")
        doc.table(["factor", "values"], [[f"`{k}`", ", ".join(values[k])] for k in keys])
    else:
        doc.para("The sweep varied nothing but seeds and envs: one variant, named `all runs`.")
    diffs = config_differences(runs)
    if diffs:
        variants = sorted({r.variant for r in runs})
        doc.para("Resolved config values that differ between variants:")
        doc.table(
            ["config key", *variants],
            [[f"`{k}`", *(per[v] for v in variants)] for k, per in diffs.items()],
        )


_STATUS_DETAIL = {
    "running": "no end recorded: killed hard, or still running",
    NO_SUMMARY: "the job never wrote summary.json (killed before it started?)",
}


def excluded_section(ctx: Context, doc: Doc) -> None:
    """Every run the statistics left out, with its status and error."""
    doc.heading(2, "Runs not included")
    if not ctx.excluded:
        doc.para("None: every run finished and logged the metric.")
        return
    doc.para("These runs are not in any number or figure above.")
    doc.table(
        ["run", "env", "variant", "seed", "status", "steps reached", "detail"],
        [
            [
                f"`{relative_name(e.run.path, ctx.roots)}`",
                e.run.env_id,
                e.run.variant,
                _or_dash(e.run.seed),
                e.run.status,
                f"{e.length:,}",
                shorten(
                    e.run.error
                    or _STATUS_DETAIL.get(e.run.status, "")
                    or ("" if e.reason == e.run.status else e.reason)
                ),
            ]
            for e in ctx.excluded
        ],
    )


def method_section(ctx: Context, doc: Doc) -> None:
    """How every number was made, and the normalization references."""
    sweep, metric = ctx.sweep, ctx.metric
    from_summary = sum(r.from_summary for r in sweep.results)
    tail = len(sweep.results) - from_summary
    sources = []
    if from_summary:
        sources.append(
            f"`final_return` from summary.json (mean return of the last 10 training "
            f"episodes) for {from_summary} run(s)"
        )
    if tail:
        sources.append(
            f"the mean of the last {TAIL_FRACTION:.0%} of logged `{metric}` points "
            f"for {tail} run(s)"
        )
    doc.heading(2, "Method")
    doc.bullets(
        [
            "Final performance per run: " + "; ".join(sources) + ".",
            "Estimators (Agarwal et al. 2021, *Deep Reinforcement Learning at the Edge of the "
            "Statistical Precipice*, NeurIPS; as in rliable): mean; median; IQM = mean of the "
            "middle 50% of runs (floor(n/4) cut from each end); optimality gap = reference - "
            "mean(min(score, reference)), lower is better. Across envs: mean and median of per-env "
            "means, IQM of all runs pooled.",
            f"Intervals: {CONFIDENCE:.0%} percentile intervals from {ctx.reps} stratified "
            f"bootstrap resamples (runs resampled within each env; random seed {ctx.seed}). No "
            "interval where a variant has a single run on an env.",
            f"Learning curves: {ctx.curve_stat} over seeds of `{metric}`, each run linearly "
            f"interpolated onto {ctx.grid_points} evenly spaced environment steps per env (never "
            "extrapolated); a variant's curve stops where its shortest run stops.",
            "Only runs with status `finished` are used; the others are listed under Runs not "
            "included.",
        ]
    )
    doc.para("Normalization references (normalized = (score - low) / (high - low)):")
    doc.table(
        ["env", "low", "high", "source"],
        [
            [
                env,
                fmt(ref.low),
                fmt(ref.high),
                ref.source if known else f"**unknown env**: {ref.source}",
            ]
            for env, (ref, known) in sweep.refs.items()
        ],
    )


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}"


def _or_dash(value: Any) -> str:
    return "—" if value is None else str(value)
