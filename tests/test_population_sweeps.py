"""Populations as a user runs them: `population=N` and `hydra/launcher=population`, through
`python -m ppo_lab`, read back by `ppo_lab.sweep`, `ppo_lab.report` and against a normal sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppo_lab.runs import find_job_dirs
from ppo_lab.sweep.summary import MARKDOWN_NAME, summarize

from helpers import REPO, run_module

TINY = ["total_timesteps=1024", "eval_episodes=2", "logger=none"]  # 4 updates of 8 x 32 steps
GRID = ["loss=clip,dual_clip", "seed=1,2,3"]


def job_files(job_dir: Path) -> set[str]:
    """What a job leaves in its dir, less logs."""
    return {
        str(p.relative_to(job_dir))
        for p in job_dir.rglob("*")
        if p.is_file() and p.suffix != ".log"
    }


def rows(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_population_launcher_packs_a_2x3_sweep_into_2_processes_with_6_normal_job_dirs(
    tmp_path: Path,
) -> None:
    packed, normal = tmp_path / "packed", tmp_path / "normal"
    result = run_module(
        "ppo_lab",
        ["-m", "hydra/launcher=population", *GRID, *TINY, f"hydra.sweep.dir={packed}"],
        tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Packed 6 jobs into 2 populations: #0..#2 (3), #3..#5 (3)" in output
    pids = {json.loads((packed / str(n) / "summary.json").read_text())["pid"] for n in range(6)}
    assert len(pids) == 2, "one process per population"
    baseline = run_module("ppo_lab", ["-m", *GRID, *TINY, f"hydra.sweep.dir={normal}"], tmp_path)
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr

    assert [p.name for p in find_job_dirs(packed)] == [p.name for p in find_job_dirs(normal)]
    for n in map(str, range(6)):
        ours, theirs = packed / n, normal / n
        assert job_files(ours) == job_files(theirs)
        a, b = (json.loads((d / "summary.json").read_text()) for d in (ours, theirs))
        assert a.keys() == b.keys()
        for key in ("status", "seed", "overrides", "choices", "global_step", "reward_threshold"):
            assert a[key] == b[key], key
        # a member is its separate run: the same episodes (the first updates are bit-exact)
        first = [(r.get("charts/episodes"), r.get("charts/episodic_return")) for r in rows(ours)]
        other = [(r.get("charts/episodes"), r.get("charts/episodic_return")) for r in rows(theirs)]
        assert first[:2] == other[:2]
    assert summarize(packed).counts == summarize(normal).counts == {"finished": 6}
    assert "6 finished" in (packed / MARKDOWN_NAME).read_text()

    report = run_module("ppo_lab.report", [str(packed)], tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    text = (packed / "report.md").read_text()
    assert "clip" in text and "dual_clip" in text


@pytest.mark.slow
def test_population_n_trains_n_seeds_in_one_process_each_in_its_own_run_dir(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    result = run_module("ppo_lab", ["population=3", *TINY, f"hydra.run.dir={run_dir}"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    members = sorted(p.name for p in run_dir.glob("seed_*"))
    assert members == ["seed_1", "seed_2", "seed_3"]
    for seed in (1, 2, 3):
        member = json.loads((run_dir / f"seed_{seed}" / "summary.json").read_text())
        assert member["status"] == "finished" and member["seed"] == seed
        assert member["run_dir"] == str(run_dir / f"seed_{seed}")
        assert (run_dir / f"seed_{seed}" / "checkpoint.pt").exists()
        assert len(rows(run_dir / f"seed_{seed}")) == 4 + 1  # 4 updates and the evaluation
        assert f"{run_dir / f'seed_{seed}'}" in output, "one closing line per member"
    job = json.loads((run_dir / "summary.json").read_text())
    assert job["status"] == "finished" and job["seeds"] == [1, 2, 3]
    assert job["global_step"] == 3 * 1024

    again = run_module("ppo_lab", ["population=3", *TINY, f"hydra.run.dir={run_dir}"], tmp_path)
    assert again.returncode == 0 and "already holds a finished run" in again.stdout + again.stderr


def test_population_with_seeds_per_trial_is_refused_in_one_message(tmp_path: Path) -> None:
    result = run_module("ppo_lab", ["population=2", "seeds_per_trial=2", *TINY], tmp_path)
    assert result.returncode != 0
    assert "Invalid configuration" in result.stderr and "population=2" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_invalid_job_of_a_packed_sweep_is_left_out_and_listed(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "ppo_lab",
        [
            "-m",
            "hydra/launcher=population",
            "optim.lr=1e-3,2.0",  # 2.0 is out of range: that job is invalid, the other trains
            *TINY,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    table = summarize(sweep_dir)
    assert table.counts == {"finished": 1, "invalid_config": 1}
    invalid = json.loads((sweep_dir / "1" / "summary.json").read_text())
    assert "optim.lr" in invalid["error"]


@pytest.mark.slow
def test_a_killed_population_loses_its_jobs_alone_and_rerun_failed_finishes_them(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=population", "loss=clip,vanilla", "seed=0,1"]
    args += ["total_timesteps=40960", "eval_episodes=0", "logger=none", "checkpoint_interval=5"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "disabled",
    }
    sweep = subprocess.Popen(
        [sys.executable, "-m", "ppo_lab", *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = sweep_dir / "2" / "metrics.jsonl"  # the vanilla population (jobs 2 and 3)
    deadline = time.monotonic() + 120
    while not (victim.exists() and victim.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)
    pid = json.loads((sweep_dir / "2" / "summary.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 1, output
    assert "job #2 lost" in output and "job #3 lost" in output
    assert summarize(sweep_dir).counts == {"finished": 2, "lost": 2}

    rerun = run_module("ppo_lab.sweep", ["rerun-failed", str(sweep_dir)], tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert summarize(sweep_dir).counts == {"finished": 4}
    steps = [r["global_step"] for r in rows(sweep_dir / "2") if "charts/SPS" in r]
    assert steps == sorted(set(steps)), "the resumed job's history has no duplicated rows"
