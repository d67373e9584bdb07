"""The sweep report: estimators against hand-computed values, and the CLI on synthetic sweeps.

Sweep dirs are written by hand in tmp_path in the trainer's run-dir format (see ppo_lab/runs.py).
Bootstrap reps are kept small so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml

from ppo_lab.report import build_report, stats
from ppo_lab.report.__main__ import main
from ppo_lab.report.build import AGGREGATE_SCOPE, config_differences, reference_for
from ppo_lab.report.wandb_report import groupby_keys, publish, sync_command
from ppo_lab.runs import NO_SUMMARY, find_job_dirs, load_runs, read_metrics

REPS = 200
METRIC = "charts/episodic_return"
EVAL = "eval/episodic_return"


# --------------------------------------------------------------------------- synthetic sweeps


def write_job(
    root: Path,
    name: str,
    *,
    choices: dict[str, str],
    seed: int,
    env_id: str = "CartPole-v1",
    steps: np.ndarray | None = None,
    returns: np.ndarray | None = None,
    final_return: float | None = None,
    status: str | None = "finished",
    error: str | None = None,
    extra_overrides: tuple[str, ...] = (),
    evals: Sequence[tuple[int, float]] = (),
    eval_return: float | None = None,
    eval_episodes: int = 0,
    hydra_dir: bool = True,
) -> Path:
    """One job dir as the trainer writes it; `status=None` writes no summary.json.

    `evals`: (global_step, mean return) of each deterministic evaluation, written to
    metrics.jsonl as `eval/episodic_return` rows after the update row of that step (as
    `ppo_lab.evaluation.evaluate_and_log` does); `eval_return`: summary.json's final evaluation
    return (default: the last of `evals`). `hydra_dir=False`: no `.hydra/` (a `seed_<s>/` dir).
    """
    job = root / name
    job.mkdir(parents=True)
    overrides = [f"{g}={c}" for g, c in choices.items()] + [f"seed={seed}", *extra_overrides]
    config = {
        "seed": seed,
        "total_timesteps": 50_000,
        "num_envs": 8,
        "env": {"id": env_id, "backend": "gymnasium_sync"},
        "loss": {"_target_": f"ppo_lab.losses.{choices.get('loss', 'clip')}", "clip_eps": 0.2},
        "logger": {"project": "ppo_lab", "entity": None},
        "eval_episodes": eval_episodes,
    }
    hydra_choices = {"loss": "clip", "env": "cartpole", **choices, "hydra/launcher": "basic"}
    if hydra_dir:
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (job / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": hydra_choices}}})
        )
    steps = np.arange(1, 51) * 1000 if steps is None else steps
    returns = np.linspace(20, 200, len(steps)) if returns is None else returns
    evals_at: dict[int, list[float]] = {}
    for step, value in evals:
        evals_at.setdefault(int(step), []).append(float(value))
    with (job / "metrics.jsonl").open("w") as f:
        for i, (s, r) in enumerate(zip(steps, returns, strict=True)):
            f.write(
                json.dumps(
                    {
                        "global_step": int(s),
                        "time": 0.1 * i,
                        METRIC: float(r),
                        "losses/approx_kl": 0.01,
                    }
                )
                + "\n"
            )
            for value in evals_at.pop(int(s), []):
                f.write(json.dumps({"global_step": int(s), EVAL: value}) + "\n")
        assert not evals_at, f"evaluations at steps without an update: {sorted(evals_at)}"
    if eval_return is None and evals:
        eval_return = float(evals[-1][1])
    if status is not None:
        summary = {
            "status": status,
            "error": error,
            "env_id": env_id,
            "seed": seed,
            "overrides": overrides,
            "choices": hydra_choices,
            "global_step": int(steps[-1]),
            "total_timesteps": 50_000,
            "wall_time_s": 1.0,
            "final_return": final_return,
            "eval_return": eval_return,
            "eval_returns": [eval_return] * eval_episodes if eval_return is not None else None,
            "final_metrics": {},
            "reward_threshold": 475.0,
            "solved": None,
        }
        (job / "summary.json").write_text(json.dumps(summary))
    return job


def two_variant_sweep(root: Path, seeds: int = 5, shift: float = 100.0) -> Path:
    """loss=clip vs loss=dual_clip on CartPole; dual_clip's returns are `shift` higher."""
    rng = np.random.default_rng(0)
    job = 0
    for loss, offset in (("clip", 0.0), ("dual_clip", shift)):
        for seed in range(seeds):
            final = 200.0 + offset + rng.normal(0, 10)
            write_job(
                root,
                str(job),
                choices={"loss": loss},
                seed=seed,
                returns=np.linspace(20, final, 50),
                final_return=final,
            )
            job += 1
    (root / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["loss=clip,dual_clip", "seed=range(5)"]}}})
    )
    return root


# --------------------------------------------------------------------------- estimators


def test_iqm_cuts_a_quarter_from_each_end():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean(3, 4, 5, 6)
    assert stats.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # floor(5/4) = 1 cut: mean(2, 3, 4)
    assert stats.iqm([7.0]) == pytest.approx(7.0)
    assert stats.iqm(np.array([[1, 2, 3, 4], [0, 0, 8, 8]])).tolist() == [2.5, 4.0]


def test_aggregates_by_hand():
    strata = [np.array([0.2, 0.4]), np.array([1.2])]
    assert stats.mean_score(strata) == pytest.approx((0.3 + 1.2) / 2)
    assert stats.iqm_score([np.arange(1, 5), np.arange(5, 9)]) == pytest.approx(4.5)  # pooled
    assert stats.median_score([np.array([1.0]), np.array([5.0]), np.array([2.0, 4.0])]) == 3.0
    # optimality gap: scores capped at gamma, per-task mean, then over tasks
    assert stats.optimality_gap([np.array([0.5, 1.5, 0.8])]) == pytest.approx(1 - 2.3 / 3)
    assert stats.optimality_gap(strata) == pytest.approx(1 - (0.3 + 1.0) / 2)
    assert stats.optimality_gap([np.array([400.0, 600.0])], gamma=500.0) == pytest.approx(50.0)


def test_probability_of_improvement_by_hand():
    # pairs (3,1) win, (3,3) tie, (4,1) win, (4,3) win -> (1 + 0.5 + 1 + 1) / 4
    x, y = [np.array([3.0, 4.0])], [np.array([1.0, 3.0])]
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.875)
    assert stats.probability_of_improvement(y, x) == pytest.approx(0.125)
    # averaged over tasks
    x2, y2 = [*x, np.array([0.0])], [*y, np.array([1.0])]
    assert stats.probability_of_improvement(x2, y2) == pytest.approx((0.875 + 0.0) / 2)


def test_probability_of_improvement_of_identical_distributions_is_near_half():
    rng = np.random.default_rng(1)
    x = [rng.normal(0, 1, 30), rng.normal(5, 2, 30)]
    y = [rng.normal(0, 1, 30), rng.normal(5, 2, 30)]
    est = stats.stratified_bootstrap_ci(stats.probability_of_improvement, x, y, reps=REPS)
    assert abs(float(est.point) - 0.5) < 0.1
    assert est.low < 0.5 < est.high


def test_bootstrap_resamples_within_each_stratum():
    # each env's runs are constant: a stratified bootstrap cannot move the mean over envs
    strata = [np.zeros(4), np.full(3, 10.0)]
    est = stats.stratified_bootstrap_ci(stats.mean_score, strata, reps=REPS)
    assert float(est.point) == float(est.low) == float(est.high) == 5.0
    spread = stats.stratified_bootstrap_ci(stats.mean_score, [np.arange(10.0)], reps=REPS)
    assert spread.low < 4.5 < spread.high


def test_a_single_run_gets_no_interval():
    est = stats.stratified_bootstrap_ci(stats.iqm_score, [np.array([3.0])], reps=REPS)
    assert float(est.point) == 3.0
    assert np.isnan(est.low) and np.isnan(est.high)


def test_performance_profile_by_hand():
    taus = np.array([0.0, 0.5, 1.0])
    profile = stats.performance_profile([np.array([0.1, 0.5, 0.9])], taus)
    assert profile.tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    two_tasks = stats.performance_profile([np.array([0.1, 0.9]), np.array([2.0])], taus)
    assert two_tasks.tolist() == pytest.approx([1.0, 0.75, 0.5])


def test_interpolation_of_curves_of_different_lengths_is_exact_on_a_line():
    line = lambda s: 3.0 * s + 7.0  # noqa: E731
    short = np.array([0, 130, 400, 1000])  # irregular steps, stops at 1000
    long = np.array([0, 250, 700, 1500, 2000])
    grid = stats.common_grid([0, 0], [1000, 2000], num=41)  # every 50 steps
    matrix = stats.interpolate_curves([(short, line(short)), (long, line(long))], grid)
    assert np.allclose(matrix[1], line(grid))
    inside = grid <= 1000
    assert np.allclose(matrix[0, inside], line(grid[inside]))
    assert np.isnan(matrix[0, ~inside]).all()  # never extrapolated
    band = stats.curve_band([matrix], reps=REPS)
    assert np.allclose(band.point[inside], line(grid[inside]))
    assert np.isnan(band.point[~inside]).all()  # the curve stops where the shortest run stops


# --------------------------------------------------------------------------- reading runs


def test_read_metrics_tolerates_a_truncated_line_and_a_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"global_step": s, METRIC: float(s)} for s in (100, 200, 300)]
    lines += [{"global_step": 200, METRIC: -1.0}, {"global_step": 300, "charts/SPS": 5}]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"global_step": 400, "charts/epis'
    path.write_text(text)
    metrics = read_metrics(path)
    # resumed at step 200: the earlier 200 and 300 are replaced; the truncated line is skipped
    assert metrics[METRIC].steps.tolist() == [100, 200]
    assert metrics[METRIC].values.tolist() == [100.0, -1.0]
    assert metrics["charts/SPS"].steps.tolist() == [300]


def test_job_dirs_are_found_nested_and_named_by_what_varied(tmp_path):
    for i, (lr, seed) in enumerate([("1e-3", 0), ("1e-3", 1), ("3e-4", 0)]):
        write_job(
            tmp_path,
            f"lr_{lr}/{i}",
            choices={"loss": "clip"},
            seed=seed,
            extra_overrides=(f"optim.lr={lr}",),
        )
    assert len(find_job_dirs(tmp_path)) == 3
    runs = load_runs([tmp_path])
    assert sorted({r.variant for r in runs}) == ["optim.lr=1e-3", "optim.lr=3e-4"]
    assert {r.seed for r in runs} == {0, 1}
    assert groupby_keys(runs) == ["config.optim.lr"]


# --------------------------------------------------------------------------- the report


def test_the_shifted_variant_ranks_first_with_a_ci_above_the_other(tmp_path):
    report = build_report([two_variant_sweep(tmp_path)], reps=REPS)
    rows = report.tables["CartPole-v1"]
    assert [r.variant for r in rows] == ["loss=dual_clip", "loss=clip"]
    best, other = rows[0].estimates["IQM"], rows[1].estimates["IQM"]
    assert best.low > other.point and other.high < best.point
    assert [r.runs for r in rows] == [5, 5]
    ((x, y, poi),) = report.improvement
    assert (x, y) == ("loss=dual_clip", "loss=clip") and float(poi.point) == 1.0
    text = report.markdown.read_text()
    assert "Probability of improvement" in text and "`loss`" in text
    assert "python -m ppo_lab -m loss=clip,dual_clip seed='range(5)'" in text  # pastes into bash
    assert "ppo_lab.losses.dual_clip" in text  # the config differences table


def test_failed_and_summaryless_runs_are_listed_not_dropped(tmp_path):
    two_variant_sweep(tmp_path, seeds=3)
    write_job(
        tmp_path,
        "6",
        choices={"loss": "clip"},
        seed=3,
        status="failed",
        error="RuntimeError: loss is NaN at update 12",
        returns=np.linspace(20, 30, 10),
        steps=np.arange(1, 11) * 1000,
    )
    write_job(tmp_path, "7", choices={"loss": "dual_clip"}, seed=3, status=None)
    report = build_report([tmp_path], reps=REPS)
    assert {e.run.path.name: e.run.status for e in report.excluded} == {
        "6": "failed",
        "7": NO_SUMMARY,
    }
    text = report.markdown.read_text()
    section = text.split("## Runs not included")[1]
    assert "`6`" in section and "loss is NaN at update 12" in section and "10,000" in section
    assert "`7`" in section and NO_SUMMARY in section
    assert "2 run(s) did not finish" in text
    clip = next(r for r in report.tables["CartPole-v1"] if r.variant == "loss=clip")
    assert clip.runs == 3 and clip.not_included == 1


def test_a_single_seed_says_no_confidence_intervals(tmp_path):
    report = build_report([two_variant_sweep(tmp_path, seeds=1)], reps=REPS)
    text = report.markdown.read_text()
    assert "no confidence intervals" in text
    for row in report.tables["CartPole-v1"]:
        assert all(np.isnan(est.low) for est in row.estimates.values())
    table_rows = [line for line in text.splitlines() if line.startswith("| loss=")]
    assert len(table_rows) == 3 and not any("[" in line for line in table_rows)  # 2 final + PoI
    assert "single seed: no interval" in text


def test_runs_of_different_lengths_are_reported(tmp_path):
    for seed, n in enumerate([50, 50, 30]):
        write_job(
            tmp_path,
            str(seed),
            choices={"loss": "clip"},
            seed=seed,
            steps=np.arange(1, n + 1) * 1000,
            returns=np.linspace(20, 200, n),
            final_return=200.0,
        )
    report = build_report([tmp_path], reps=REPS)
    assert any("different lengths" in w for w in report.warnings)
    assert "Runs of different lengths on CartPole-v1" in report.markdown.read_text()


def test_several_envs_get_normalized_aggregates_and_profiles(tmp_path):
    job = 0
    for env_id, scale in (("CartPole-v1", 400.0), ("Acrobot-v1", -100.0), ("MyEnv-v0", 3.0)):
        for loss, bonus in (("clip", 0.0), ("dual_clip", 0.1)):
            for seed in range(3):
                final = scale * (1 + bonus) + seed
                write_job(
                    tmp_path,
                    str(job),
                    choices={"loss": loss, "env": env_id.lower()},
                    seed=seed,
                    env_id=env_id,
                    final_return=final,
                    returns=np.linspace(0, final, 50),
                )
                job += 1
    report = build_report([tmp_path], reps=REPS)
    assert set(report.tables) == {"CartPole-v1", "Acrobot-v1", "MyEnv-v0", AGGREGATE_SCOPE}
    assert [r.envs for r in report.tables[AGGREGATE_SCOPE]] == [3, 3]
    assert {p.name for p in report.figures} >= {
        "performance_profile.png",
        "curves_all_envs.png",
        "curves_MyEnv-v0.png",
    }
    text = report.markdown.read_text()
    assert "**unknown env**: min-max over this sweep" in text
    assert "loss=clip" in text and "env=" not in text  # the env is the task axis, not a variant


def test_reference_scores_cover_versions_and_prefixes():
    assert reference_for("CartPole-v1").high == 500.0
    assert reference_for("ALE/Breakout-v5") == reference_for("BreakoutNoFrameskip-v4")
    assert reference_for("Pong-v5").low == -20.7
    assert reference_for("HalfCheetah-v5").high == 12135.0
    assert reference_for("MyEnv-v0") is None


def test_config_differences_show_only_what_differs_between_variants(tmp_path):
    runs = load_runs([two_variant_sweep(tmp_path, seeds=2)])
    diffs = config_differences(runs)
    assert set(diffs) == {"loss._target_"}  # not seed, not the shared keys


# --------------------------------------------------------------------------- the CLI


def test_cli_writes_markdown_html_and_pngs_and_prints_the_path(tmp_path, capsys):
    sweep = two_variant_sweep(tmp_path / "sweep")
    assert main([str(sweep), "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert str(sweep / "report.md") in out
    html = (sweep / "report.html").read_text()
    pngs = sorted(p.name for p in sweep.glob("*.png"))
    assert pngs == [
        "curves_CartPole-v1.png",
        "final_CartPole-v1.png",
        "probability_of_improvement.png",
    ]
    assert html.count("data:image/png;base64,") == len(pngs) and 'src="http' not in html
    md = (sweep / "report.md").read_text()
    assert all(f"]({name})" in md for name in pngs)
    assert (sweep / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_out_and_metric_options(tmp_path, capsys):
    sweep = two_variant_sweep(tmp_path / "sweep", seeds=2)
    assert (
        main(
            [
                str(sweep),
                "--reps",
                "20",
                "--metric",
                "losses/approx_kl",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    text = (tmp_path / "out" / "report.md").read_text()
    assert "last 10% of logged `losses/approx_kl` points for 4 run(s)" in text


def test_cli_names_a_metric_no_run_logged(tmp_path, capsys):
    sweep = two_variant_sweep(tmp_path, seeds=2)
    assert main([str(sweep), "--metric", "eval/episodic_return"]) == 2
    err = capsys.readouterr().err
    assert "no finished run logged `eval/episodic_return`" in err
    assert "charts/episodic_return" in err  # what they did log
    assert "Traceback" not in err


def test_cli_rejects_a_dir_that_is_not_a_sweep(tmp_path):
    (tmp_path / "not_a_sweep").mkdir()
    (tmp_path / "not_a_sweep" / "notes.txt").write_text("hello")
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_lab.report", str(tmp_path / "not_a_sweep")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert proc.returncode != 0
    assert "is not a sweep dir" in proc.stderr and ".hydra/overrides.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wandb_offline_prints_the_sync_command(tmp_path, monkeypatch, capsys):
    sweep = two_variant_sweep(tmp_path, seeds=1)
    offline = sweep / "0" / "wandb" / "offline-run-20260101_120000-abc123"
    offline.mkdir(parents=True)
    monkeypatch.setenv("WANDB_MODE", "offline")
    report = build_report([sweep], reps=0)
    assert publish(report) == 0
    out = capsys.readouterr().out
    assert sync_command([offline]) in out and "WANDB_MODE=offline" in out


def test_wandb_online_without_the_reports_api_says_what_to_install(tmp_path, monkeypatch, capsys):
    import ppo_lab.report.wandb_report as wandb_report

    report = build_report([two_variant_sweep(tmp_path, seeds=1)], reps=0)
    monkeypatch.setattr(wandb_report, "offline_reason", lambda: None)
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)  # import fails
    monkeypatch.setitem(sys.modules, "wandb_workspaces.reports.v2", None)
    assert publish(report) == 1
    assert "pip install wandb-workspaces" in capsys.readouterr().err


def test_a_finished_run_without_the_metric_is_listed(tmp_path, capsys):
    two_variant_sweep(tmp_path, seeds=2)
    (tmp_path / "3" / "metrics.jsonl").write_text('{"global_step": 100, "charts/SPS": 1000}\n')
    assert main([str(tmp_path), "--reps", "20"]) == 0
    assert "1 run(s) lack `charts/episodic_return`" in capsys.readouterr().err
    text = (tmp_path / "report.md").read_text()
    assert "1 finished run(s) did not log `charts/episodic_return`: `3`" in text
    assert "| `3` | CartPole-v1 | loss=dual_clip | 1 | finished |" in text
