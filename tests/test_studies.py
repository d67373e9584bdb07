"""Every study in experiments/ and every search in sweeps/ runs end to end through the report,
on every env it names, with the smallest budget that exercises every code path: one seed, one
batch per job, one evaluation episode of a short episode."""

from __future__ import annotations

from pathlib import Path

import pytest

from ppo_lab.sweep.summary import summarize

from helpers import REPO, run_module

TINY = ["seed=0", "eval_episodes=1", "logger=none"]
MUJOCO = [
    "num_steps=64",
    "num_minibatches=2",
    "total_timesteps=64",
    "+env.kwargs.max_episode_steps=50",
]
STUDIES = {  # study -> (overrides, jobs): the grid's every value but the seeds
    "loss_ablation": (["total_timesteps=256"], 4),
    "loss_ablation_atari": (
        [
            "num_steps=16",
            "num_minibatches=2",
            "total_timesteps=128",
            "env.kwargs.max_episode_steps=200",
            "device=cpu",
        ],
        12,
    ),
    "adv_norm_mujoco": (MUJOCO, 24),
    "details": (MUJOCO, 26),
}
SEARCHES = {
    "cartpole_optuna": (
        [
            "total_timesteps=256",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2",
            "seeds_per_trial=2",
        ],
        2,
    ),
}


def check_runs_and_reports(
    kind: str, name: str, overrides: list[str], jobs: int, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / name
    result = run_module(
        "ppo_lab",
        ["-m", f"{kind}={name}", *TINY, *overrides, f"hydra.sweep.dir={sweep_dir}"],
        tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    table = summarize(sweep_dir)
    assert len(table.runs) == jobs and not table.unfinished, [
        (r.path.name, r.status, r.error) for r in table.unfinished
    ]
    report = run_module("ppo_lab.report", [str(sweep_dir)], tmp_path)
    assert report.returncode == 0, (report.stdout + report.stderr)[-4000:]
    assert (sweep_dir / "report.md").is_file() and (sweep_dir / "report.html").is_file()


def test_every_study_and_search_is_covered():
    assert {p.stem for p in (REPO / "experiments").glob("*.yaml")} == set(STUDIES)
    assert {p.stem for p in (REPO / "sweeps").glob("*.yaml")} == set(SEARCHES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_runs_end_to_end_through_the_report(tmp_path, name):
    check_runs_and_reports("experiment", name, *STUDIES[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_search_runs_end_to_end_through_the_report(tmp_path, name):
    check_runs_and_reports("sweep", name, *SEARCHES[name], tmp_path)
