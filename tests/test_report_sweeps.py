"""The report on every kind of sweep and score: deterministic evaluation by default, few seeds,
IQM over fewer than 4 runs, saturated envs, uneven run counts across envs, multi-seed trials
(`seed_<s>/` dirs), re-run attempts, and a sweep command that pastes into bash.

Sweep dirs are written by hand in tmp_path in the trainer's run-dir format (see test_report.py's
`write_job`); bootstrap reps are kept small.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_report import REPS, two_variant_sweep, write_job

from ppo_lab.report import build_report, figures
from ppo_lab.report.__main__ import main
from ppo_lab.report.build import AGGREGATE_SCOPE
from ppo_lab.report.overview import shell_command
from ppo_lab.runs import load_runs

STEPS = np.arange(1, 51) * 1000


def evaluated_sweep(root: Path, seeds: int = 5, evals: int = 5) -> dict[str, list[float]]:
    """loss=clip vs loss=dual_clip, every run evaluated `evals` times (10 episodes each) with
    evaluation returns unlike its training returns. Returns each variant's expected scores: the
    mean of each run's last 3 evaluations."""
    rng = np.random.default_rng(5)
    expected: dict[str, list[float]] = {}
    job = 0
    for loss, level in (("clip", 300.0), ("dual_clip", 420.0)):
        for seed in range(seeds):
            values = level + rng.normal(0, 15, evals)
            at = STEPS[-evals:] if evals else []
            write_job(
                root,
                str(job),
                choices={"loss": loss},
                seed=seed,
                returns=np.linspace(20, 150, len(STEPS)),
                final_return=150.0,  # the training score, which the default must not use
                evals=list(zip(at, values, strict=True)),
                eval_episodes=10,
            )
            expected.setdefault(f"loss={loss}", []).append(float(values[-3:].mean()))
            job += 1
    return expected


# --------------------------------------------------------------------------- the score


def test_default_score_is_the_mean_of_the_last_three_evaluations(tmp_path):
    expected = evaluated_sweep(tmp_path)
    report = build_report([tmp_path], reps=REPS)
    assert report.score.kind == "eval" and not report.score.fallback
    for variant, scores in expected.items():
        got = sorted(r.final for r in report.results if r.run.variant == variant)
        assert got == pytest.approx(sorted(scores))
    text = report.markdown.read_text()
    line = "deterministic evaluation (`eval/episodic_return`), mean of the last 3 evaluations"
    assert f"**Score:** {line} of 10 episodes." in text
    assert "Final evaluation return per run" in text


def test_eval_last_and_runs_that_evaluated_once_or_only_in_summary(tmp_path):
    evaluated_sweep(tmp_path, seeds=3, evals=4)
    # a run that evaluated once (the final evaluation), one with only summary.json's eval_return
    write_job(
        tmp_path, "once", choices={"loss": "clip"}, seed=7, evals=[(50_000, 111.0)], eval_episodes=5
    )
    write_job(tmp_path, "summary", choices={"loss": "clip"}, seed=8, eval_return=222.0)
    report = build_report([tmp_path], reps=REPS)
    by_name = {r.run.path.name: r for r in report.results}
    assert by_name["once"].final == 111.0 and by_name["once"].evaluations == 1
    assert by_name["summary"].final == 222.0 and by_name["summary"].source == "eval_summary"
    text = report.markdown.read_text()
    assert "1 run(s) with 1 evaluation" in text
    assert "summary.json's `eval_return`" in text and "for 1 run(s)" in text

    last = build_report([tmp_path], reps=REPS, eval_last=1, out=tmp_path / "last1")
    assert "the final evaluation of 5/10 episodes" in last.markdown.read_text()
    metrics = tmp_path / "0" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    final_eval = [r["eval/episodic_return"] for r in rows if "eval/episodic_return" in r][-1]
    assert next(r.final for r in last.results if r.run.path.name == "0") == final_eval


def test_score_training_option_scores_the_training_episodes(tmp_path, capsys):
    evaluated_sweep(tmp_path, seeds=3)
    assert main([str(tmp_path), "--reps", "20", "--score", "training"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "**Score:** training return of the stochastic policy, mean of the last 10 training " in (
        text
    )
    assert "| loss=clip | 3 |" in text and "150.0, 150.0, 150.0" in text


def test_a_sweep_without_any_evaluation_is_scored_by_training_return_and_says_so(tmp_path):
    report = build_report([two_variant_sweep(tmp_path, seeds=3)], reps=REPS)
    assert report.score.kind == "training" and report.score.fallback
    assert "no run evaluated: final scores are training returns" in report.warnings
    text = report.markdown.read_text()
    assert "**Scored by training return, not by evaluation.**" in text
    assert "Final training return per run" in text


def test_runs_without_evaluation_are_left_out_when_others_evaluated(tmp_path):
    evaluated_sweep(tmp_path, seeds=3)
    write_job(tmp_path, "noeval", choices={"loss": "clip"}, seed=9, final_return=480.0)
    report = build_report([tmp_path], reps=REPS)
    assert [e.run.path.name for e in report.excluded] == ["noeval"]
    assert report.excluded[0].lacks_eval
    text = report.markdown.read_text()
    assert "1 finished run(s) never evaluated and are left out" in text and "`noeval`" in text
    assert "did not finish" not in text
    section = text.split("## Runs not included")[1]
    assert "`noeval`" in section and "never evaluated" in section


# --------------------------------------------------------------------------- few seeds, IQM


def test_few_runs_warn_with_the_real_coverage_and_show_each_run(tmp_path):
    report = build_report([two_variant_sweep(tmp_path, seeds=5)], reps=REPS)
    text = report.markdown.read_text()
    assert '**Few runs: the "95%" intervals are not 95%.**' in text
    assert "bootstrap 95% CI (real coverage ~0.83 at n=5)" in text
    assert any("really cover ~0.83 at n=5" in w for w in report.warnings)
    assert "| n runs | mean | median | IQM |" in text  # the simulated table under Method
    row = next(line for line in text.splitlines() if line.startswith("| loss=clip | 5 |"))
    scores = sorted(r.final for r in report.results if r.run.variant == "loss=clip")
    assert ", ".join(f"{x:.1f}" for x in scores) in row  # every run's own score


def test_ten_runs_need_no_coverage_warning(tmp_path):
    report = build_report([two_variant_sweep(tmp_path, seeds=10)], reps=REPS)
    text = report.markdown.read_text()
    assert "Few runs" not in text and "real coverage ~" not in text
    assert report.rank_by == "IQM" and "Ranked by IQM." in text


def test_iqm_of_fewer_than_4_runs_is_marked_and_not_ranked_by(tmp_path):
    report = build_report([two_variant_sweep(tmp_path, seeds=3)], reps=REPS)
    assert report.rank_by == "mean"
    rows = report.tables["CartPole-v1"]
    assert all(r.iqm_is_mean for r in rows)
    means = [float(r.estimates["mean"].point) for r in rows]
    assert means == sorted(means, reverse=True)
    text = report.markdown.read_text()
    table = [line for line in text.splitlines() if line.startswith("| loss=") and "| 3 |" in line]
    assert len(table) == 2 and all("| = mean (n<4) |" in line for line in table)
    assert "Ranked by mean: with fewer than 4 runs the IQM cuts nothing" in text
    assert "Variants are ranked by mean, not IQM" in text


# --------------------------------------------------------------------------- saturation


def saturated_sweep(root: Path, variants: tuple[str, ...], seeds: int = 3) -> None:
    job = 0
    for loss in variants:
        for seed in range(seeds):
            top = 500.0 if loss != "vanilla" else 400.0 + 20 * seed
            write_job(
                root,
                str(job),
                choices={"loss": loss},
                seed=seed,
                returns=np.minimum(np.linspace(20, 520, len(STEPS)), 500),
                final_return=top,
                evals=[(40_000, top), (50_000, top)],
                eval_episodes=10,
            )
            job += 1


def test_variants_at_the_ceiling_are_marked_not_given_zero_width_intervals(tmp_path):
    saturated_sweep(tmp_path, ("clip", "vanilla"), seeds=4)
    report = build_report([tmp_path], reps=REPS)
    rows = {r.variant: r for r in report.tables["CartPole-v1"]}
    assert rows["loss=clip"].ceiling and not rows["loss=vanilla"].ceiling
    text = report.markdown.read_text()
    assert "[500.0, 500.0]" not in text
    assert "| loss=clip | 4 | 500.0 (ceiling) | 500.0 (ceiling) | 500.0 (ceiling) |" in text
    assert "`ceiling`: every run of the variant reached the env's highest return (500.0)" in text
    assert "Saturated" not in text  # vanilla is below the ceiling


def test_a_saturated_env_gets_a_saturation_note(tmp_path, monkeypatch):
    notes = []
    plot = figures.plot_intervals

    def spy(*args, **kwargs):
        notes.append(kwargs.get("note"))
        return plot(*args, **kwargs)

    monkeypatch.setattr(figures, "plot_intervals", spy)
    saturated_sweep(tmp_path, ("clip", "dual_clip"))
    report = build_report([tmp_path], reps=REPS)
    text = report.markdown.read_text()
    assert "**Saturated on CartPole-v1:** every run of every variant reached" in text
    assert any("saturated" in w for w in report.warnings)
    assert "0.500 (both at the ceiling)" in text
    assert notes and notes[0].startswith("Saturated: every run of every variant reached")


def test_a_ceiling_can_be_given_for_an_unknown_env(tmp_path):
    for seed in range(3):
        write_job(
            tmp_path,
            str(seed),
            choices={"loss": "clip"},
            seed=seed,
            env_id="MyEnv-v0",
            evals=[(50_000, 1.0)],
        )
    assert main([str(tmp_path), "--reps", "20", "--ceiling", "MyEnv-v0=1"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "**Saturated on MyEnv-v0:**" in text and "1.000 (ceiling)" in text
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--ceiling", "MyEnv-v0"])


# --------------------------------------------------------------------------- equal weight per env


def test_uneven_run_counts_across_envs_weigh_every_env_the_same(tmp_path):
    """Normalized scores 0.0, 0.2 (CartPole-v1); 0.1, 0.2, 0.3, 0.4 (CartPole-v0); 1.2
    (Acrobot-v1): the hand-computed values of test_report_stats.py's UNEVEN."""
    normalized = {
        ("CartPole-v1", 22.0, 500.0): [0.0, 0.2],
        ("CartPole-v0", 22.0, 200.0): [0.1, 0.2, 0.3, 0.4],
        ("Acrobot-v1", -500.0, -60.0): [1.2],
    }
    job = 0
    for (env_id, low, high), xs in normalized.items():
        for seed, x in enumerate(xs):
            write_job(
                tmp_path,
                str(job),
                choices={"loss": "clip", "env": env_id.lower()},
                seed=seed,
                env_id=env_id,
                final_return=low + x * (high - low),
            )
            job += 1
    report = build_report([tmp_path], reps=REPS)
    (row,) = report.tables[AGGREGATE_SCOPE]
    assert (row.runs, row.envs, row.iqm_is_mean) == (7, 3, False)
    est = {name: float(e.point) for name, e in row.estimates.items()}
    assert est["mean"] == pytest.approx((0.1 + 0.25 + 1.2) / 3)
    assert est["median"] == pytest.approx(0.25)
    assert est["IQM"] == pytest.approx(2.5 / 6)  # not 0.24, the IQM of the 7 runs pooled
    assert est["optimality gap"] == pytest.approx(1 - (0.1 + 0.25 + 1.0) / 3)
    assert "Every env weighs the same in every aggregate" in report.markdown.read_text()


# --------------------------------------------------------------------------- sweep kinds


def optuna_trial(root: Path, name: str, lr: str, seeds: tuple[int, ...], fail: int | None = None):
    """A trial of a multi-seed search: the job dir holds .hydra/ and the trial's summary (IQM
    of its seeds), and each seed trains in `seed_<s>/` with its own files (no .hydra/)."""
    job = root / name
    overrides = [f"optim.lr={lr}", "sweep=cartpole_optuna", "seed=1", "seeds_per_trial=2"]
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"seed": 1, "seeds_per_trial": 2, "env": {"id": "CartPole-v1"}, "eval_episodes": 0}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"sweep": "cartpole_optuna"}}}})
    )
    returns = []
    for seed in seeds:
        final = 100.0 * float(lr.split("e")[0]) + seed
        status = "failed" if seed == fail else "finished"
        write_job(
            job,
            f"seed_{seed}",
            choices={},
            seed=seed,
            final_return=final,
            status=status,
            error="RuntimeError: diverged" if status == "failed" else None,
            extra_overrides=(f"optim.lr={lr}",),
            hydra_dir=False,
        )
        returns.append(final)
    summary = {
        "status": "failed" if fail is not None else "finished",
        "env_id": "CartPole-v1",
        "seed": 1,
        "final_return": float(np.mean(returns)),
        "objective": "IQM of the seeds' final returns",
        "seeds": list(seeds),
        "seed_returns": returns,
        "global_step": 100_000,
    }
    (job / "summary.json").write_text(json.dumps(summary))


def test_a_multi_seed_search_is_read_one_run_per_seed_dir(tmp_path, capsys):
    optuna_trial(tmp_path, "0", "1e-3", (1, 2))
    optuna_trial(tmp_path, "1", "3e-3", (1, 2))
    optuna_trial(tmp_path, "2", "2e-3", (1, 2), fail=2)
    assert main([str(tmp_path), "--reps", "20"]) == 0
    report_text = (tmp_path / "report.md").read_text()
    runs = load_runs([tmp_path], seeds=True)
    assert sorted(str(r.path.relative_to(tmp_path)) for r in runs) == [
        "0/seed_1",
        "0/seed_2",
        "1/seed_1",
        "1/seed_2",
        "2/seed_1",
        "2/seed_2",
    ]
    assert {r.variant for r in runs} == {"optim.lr=1e-3", "optim.lr=2e-3", "optim.lr=3e-3"}
    assert {r.seed for r in runs} == {1, 2}
    assert all(r.config["seed"] == r.seed and f"seed={r.seed}" in r.overrides for r in runs)
    assert "| optim.lr=3e-3 | 2 |" in report_text
    section = report_text.split("## Runs not included")[1]
    assert "`2/seed_2`" in section and "diverged" in section
    assert "Seeds (the replicate axis): 1, 2." in report_text
    # the loader's other callers still see one job per trial
    assert len(load_runs([tmp_path])) == 3


def test_earlier_attempts_are_ignored(tmp_path):
    two_variant_sweep(tmp_path, seeds=2)
    attempt = tmp_path / "1" / "attempts" / "1"
    attempt.mkdir(parents=True)
    (attempt / "summary.json").write_text(json.dumps({"status": "failed", "error": "OOM"}))
    # an attempt copied whole, .hydra/ included, is not a job of the sweep either
    write_job(tmp_path / "2" / "attempts", "1", choices={"loss": "clip"}, seed=1, status="failed")
    report = build_report([tmp_path], reps=REPS)
    assert len(report.runs) == 4 and not report.excluded
    assert "attempts/1" not in report.markdown.read_text()


def test_the_sweep_command_pastes_into_bash(tmp_path):
    task = [
        "experiment=details",
        "experiment/detail=glob(*)",
        "env.id=HalfCheetah-v4,Hopper-v4",
        "seed=range(5)",
        "+optim.betas=[0.9,0.999]",
    ]
    two_variant_sweep(tmp_path, seeds=2)
    (tmp_path / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": task}}})
    )
    text = build_report([tmp_path], reps=REPS).markdown.read_text()
    command = shell_command(task)
    assert (
        command == "experiment=details experiment/detail='glob(*)' "
        "env.id=HalfCheetah-v4,Hopper-v4 seed='range(5)' +optim.betas='[0.9,0.999]'"
    )
    assert f"`python -m ppo_lab -m {command}`" in text
    echoed = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {command}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # glob(*) must not expand to the files here
    )
    assert echoed.stdout.splitlines() == task
    assert shlex.split(command) == task


# --------------------------------------------------------------------------- figures


def test_curves_are_smoothed_labelled_with_n_and_split_into_panels(tmp_path, monkeypatch):
    calls = []
    plot = figures.plot_curves

    def spy(path, curves, styles, labels, **kwargs):
        calls.append((labels, kwargs))
        return plot(path, curves, styles, labels, **kwargs)

    panels = []
    monkeypatch.setattr(figures, "plot_curves", spy)
    monkeypatch.setattr(
        figures, "_curve_panels", lambda *a: panels.append(a[0]) or Path(a[0]).touch() or a[0]
    )
    job = 0
    for k in range(6):
        for seed in range(2):
            write_job(
                tmp_path,
                str(job),
                choices={"loss": f"v{k}"},
                seed=seed,
                returns=np.linspace(20, 100 + 50 * k, len(STEPS)),
            )
            job += 1
    report = build_report([tmp_path], reps=REPS)
    (labels, kwargs) = calls[0]
    assert labels["loss=v5"] == "loss=v5 (n=2)"
    assert "centred moving average over 2,000 env steps" in kwargs["legend_title"]
    assert report.smoothing_window == 2000
    assert panels  # 6 variants: one panel each
    assert "each run smoothed: centred moving average over 2,000 env steps" in (
        report.markdown.read_text()
    )
    flat = build_report([tmp_path], reps=REPS, smooth=0, out=tmp_path / "flat")
    assert "each run not smoothed" in flat.markdown.read_text()


def test_overlapping_bands_and_styles():
    grid = np.arange(5.0)
    band = lambda lo, hi: (grid, figures.Interval(grid * 0, grid * 0 + lo, grid * 0 + hi))  # noqa: E731
    assert figures.bands_overlap({"a": band(0, 2), "b": band(1, 3)})
    assert not figures.bands_overlap({"a": band(0, 1), "b": band(2, 3)})
    styles = figures.variant_styles([f"v{i}" for i in range(40)])
    assert len({(s.color, s.linestyle) for s in styles.values()}) == 40
    few = figures.variant_styles(["a", "b", "c", "d"])
    assert (
        len({s.linestyle for s in few.values()}) == 4 and len({s.color for s in few.values()}) == 4
    )


def test_final_score_panels_are_labelled_and_show_every_run(tmp_path, monkeypatch):
    captured = []
    plot = figures.plot_intervals

    def spy(path, panels, *args, **kwargs):
        captured.append(panels)
        return plot(path, panels, *args, **kwargs)

    monkeypatch.setattr(figures, "plot_intervals", spy)
    saturated_sweep(tmp_path, ("clip", "vanilla"), seeds=3)
    build_report([tmp_path], reps=REPS)
    panels = {p.title: p for p in captured[0]}
    assert list(panels) == ["mean", "median", "IQM (= mean where n<4)", "optimality gap"]
    gap = panels["optimality gap"]
    assert gap.xlabel == "optimality gap (lower is better)" and gap.start_at_zero
    assert panels["mean"].xlabel == "evaluation return"
    assert sorted(panels["mean"].points["loss=vanilla"]) == [400.0, 420.0, 440.0]
    assert sorted(gap.points["loss=vanilla"]) == pytest.approx([60.0, 80.0, 100.0])
    assert panels["mean"].marks == {"loss=clip": "ceiling"}


def test_many_variants_compare_the_best_with_each_other(tmp_path):
    job = 0
    for k in range(9):
        for seed in range(2):
            write_job(
                tmp_path,
                str(job),
                choices={"loss": f"v{k}"},
                seed=seed,
                final_return=100.0 + 10 * k + seed,
            )
            job += 1
    report = build_report([tmp_path], reps=REPS)
    assert report.variants[0] == "loss=v8"
    assert [(x, y) for x, y, _ in report.improvement] == [
        ("loss=v8", y) for y in report.variants[1:]
    ]
    assert "The best-ranked variant (by mean) against each other one" in (
        report.markdown.read_text()
    )
