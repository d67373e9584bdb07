"""The prose around a report's numbers: the sweep line, what to read first, what the sweep varied,
the runs left out and how every number was made."""

from __future__ import annotations

import datetime
import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ppo_lab.report import figures, stats
from ppo_lab.report.analysis import CONFIDENCE, ScoredSweep
from ppo_lab.report.document import Doc, fmt, shorten
from ppo_lab.report.scores import TRAINING_EPISODES, Excluded, ScoreSpec
from ppo_lab.report.sections import IQM_IS_MEAN, Context
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
    sweep: ScoredSweep,
    excluded: Sequence[Excluded],
    metric: str,
    roots: Sequence[Path],
    score: ScoreSpec | None = None,
) -> Notes:
    """Facts that change how the numbers read: the score used, few or single seeds, saturated
    envs, uneven lengths, missing runs."""
    items: list[str] = []
    warnings: list[str] = []
    if score is not None and score.fallback:
        items.append(
            "**Scored by training return, not by evaluation.** No run of this sweep evaluated "
            "its policy (no `eval/episodic_return` in metrics.jsonl, no `eval_return` in "
            "summary.json: `eval_episodes=0`), so each final score is the mean return of the "
            f"last {TRAINING_EPISODES} training episodes of the stochastic policy, exploration "
            "noise included. Run with `eval_episodes=10` (and `eval_interval`) for a "
            "deterministic evaluation."
        )
        warnings.append("no run evaluated: final scores are training returns")
    unevaluated = [e for e in excluded if e.lacks_eval]
    if unevaluated:
        names = ", ".join(f"`{relative_name(e.run.path, roots)}`" for e in unevaluated)
        items.append(
            f"{len(unevaluated)} finished run(s) never evaluated and are left out: the sweep is "
            f"scored by deterministic evaluation, which the other runs made: {names}. "
            "`--score training` scores every run by its training return instead."
        )
        warnings.append(f"{len(unevaluated)} run(s) never evaluated, left out: " + names)
    single = [(v, e) for (v, e), rs in sweep.cells.items() if len(rs) == 1]
    if single and len(single) == len(sweep.cells):
        items.append(
            "**One seed per variant and env: no confidence intervals.** A bootstrap over "
            "one run has no spread, so only point estimates are shown. Sweep more seeds "
            "(e.g. `seed='range(10)'`) for intervals."
        )
        warnings.append("single seed: the report shows no confidence intervals")
    elif single:
        cells = "; ".join(f"{v} on {e}" for v, e in sorted(single))
        items.append(f"Only one seed (so no confidence interval) for: {cells}.")
        warnings.append(f"single seed, no CI for: {cells}")
    few = sorted({len(rs) for rs in sweep.cells.values() if 1 < len(rs) < stats.FEW_RUNS})
    if few:
        coverage = ", ".join(
            f"~{stats.real_coverage(n):.2f} at n={n}" for n in few if stats.real_coverage(n)
        )
        items.append(
            f'**Few runs: the "95%" intervals are not 95%.** With {_list(few)} runs per '
            "variant and env, a percentile-bootstrap interval covers the true value less often "
            f"than it claims: real coverage {coverage} (for the mean of normal scores, "
            "simulated; the table is under Method). With 2 or 3 runs an interval is little more "
            "than the range of the runs. Read the runs themselves (the dots in the figures, the "
            f"runs' scores in the tables) before the intervals, and sweep {stats.FEW_RUNS} or "
            "more seeds for intervals that mean what they say."
        )
        warnings.append(
            f"few runs ({_list(few)} per variant and env): the 95% bootstrap intervals really "
            f"cover {coverage}"
        )
    if sweep.rank_by == "mean":
        items.append(
            "Variants are ranked by mean, not IQM: with fewer than 4 runs the IQM cuts nothing "
            f"and equals the mean (tables say `{IQM_IS_MEAN}`)."
        )
    for env in sweep.envs:
        if sweep.saturated(env):
            ceiling = sweep.ceilings[env]
            items.append(
                f"**Saturated on {env}:** every run of every variant reached the env's ceiling "
                f"({fmt(ceiling or 0)}), so its final scores cannot rank the variants: their "
                "intervals would have zero width, which reads as certainty but only says the "
                "task is too easy for this budget. Compare the learning curves (how fast each "
                "variant gets there), or use a harder env or a smaller budget."
            )
            warnings.append(f"saturated: every run on {env} reached its ceiling {ceiling:g}")
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
    failed = [e for e in excluded if not e.lacks_metric and not e.lacks_eval]
    if failed:
        counts = ", ".join(f"{n} {s}" for s, n in Counter(e.run.status for e in failed).items())
        items.append(
            f"{len(failed)} run(s) did not finish ({counts}): listed under "
            "Runs not included, left out of every statistic."
        )
        warnings.append(f"{len(failed)} run(s) did not finish ({counts})")
    return Notes(items, warnings)


def _list(values: Sequence[int]) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def shell_command(words: Sequence[str]) -> str:
    """A command line that pastes into bash: each override's value quoted where the shell would
    read it (`experiment/detail='glob(*)'`, `seed='range(5)'`)."""
    return " ".join(_shell_word(str(w)) for w in words)


def _shell_word(word: str) -> str:
    key, sep, value = word.partition("=")
    if sep and key and shlex.quote(key) == key:
        return f"{key}={shlex.quote(value)}" if value else word
    return shlex.quote(word)


def describe_sweep(doc: Doc, runs: Sequence[RunRecord], roots: Sequence[Path]) -> None:
    """The sweep command, the swept factors and how the resolved configs differ."""
    commands = []
    for root in roots:
        task = read_yaml(root / "multirun.yaml")
        for key in ("hydra", "overrides", "task"):
            task = task.get(key) if isinstance(task, dict) else None
        if isinstance(task, list) and task:
            commands.append(f"`python -m ppo_lab -m {shell_command(task)}`")
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
    """How every number was made, the simulated coverage of the intervals, and the normalization
    references."""
    sweep, metric = ctx.sweep, ctx.metric
    doc.heading(2, "Method")
    doc.bullets(
        [
            f"Final score per run: {ctx.score_text}."
            + (
                " `--score training` scores the training episodes instead."
                if ctx.score is not None and ctx.score.kind == "eval"
                else ""
            ),
            "Estimators (Agarwal et al. 2021, *Deep Reinforcement Learning at the Edge of the "
            "Statistical Precipice*, NeurIPS; as in rliable): mean; median; IQM = mean of the "
            "middle 50% of runs (floor(n/4) cut from each end, none when n < 4: then it is the "
            "mean); optimality gap = reference - mean(min(score, reference)), lower is better. "
            "Across envs every env weighs the same, whatever its number of runs: mean and median "
            "of per-env means, optimality gap averaged per env, IQM of all runs pooled with each "
            "run weighted 1 / (runs on its env) (rliable's IQM when every env has the same "
            "number of runs).",
            f"Intervals: {CONFIDENCE:.0%} percentile intervals from {ctx.reps} stratified "
            f"bootstrap resamples (runs resampled within each env; random seed {ctx.seed}). No "
            "interval where a variant has a single run on an env; none either where every run "
            "reached the env's ceiling (marked `ceiling`). With few runs the percentile "
            "bootstrap undercovers: see the table below.",
            f"Ranking: by {sweep.rank_by} of normalized final scores over all envs"
            + (" (the IQM of fewer than 4 runs is the mean)." if sweep.rank_by == "mean" else "."),
            f"Learning curves: {ctx.curve_stat} over seeds of `{metric}`, each run "
            f"{ctx.smoothing}, then linearly interpolated onto {ctx.grid_points} "
            "evenly spaced environment steps per env (never extrapolated); a variant's curve "
            "stops where its shortest run stops. Where bands overlap or there are more than "
            f"{figures.MAX_OVERLAID} variants, one panel per variant.",
            "Only runs with status `finished` are used; the others are listed under Runs not "
            "included.",
        ]
    )
    doc.para(
        f"Real coverage of a nominal {CONFIDENCE:.0%} percentile-bootstrap interval over n runs "
        f"({stats.COVERAGE_SIMULATION}):"
    )
    doc.table(
        ["n runs", "mean", "median", "IQM"],
        [
            [str(n), *(f"{cov[k]:.2f}" for k in ("mean", "median", "IQM"))]
            for n, cov in stats.BOOTSTRAP_COVERAGE.items()
        ],
    )
    doc.para("Normalization references (normalized = (score - low) / (high - low)):")
    doc.table(
        ["env", "low", "high", "ceiling", "source"],
        [
            [
                env,
                fmt(ref.low),
                fmt(ref.high),
                "—" if sweep.ceilings[env] is None else fmt(sweep.ceilings[env]),
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
