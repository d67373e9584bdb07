"""Sweeps at scale: launcher presets, studies (experiments/), searches (sweeps/), failures, the
sweep summary and re-running failed jobs.

Fast tests compose every study, search and launcher preset through Hydra's compose API and
validate each swept value. Slow tests launch real multiruns in subprocesses on tiny budgets
(CartPole, 1024 steps, no evaluation, no W&B): through joblib (`local`) and `submitit_local`,
each with one job made to fail inside training (tests/sweep_helpers.py), and a 4-trial Optuna
search scored over 2 seeds per trial.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ppo_lab.__main__ import PRESET_SCHEMA_NOTICE
from ppo_lab.config import validate
from ppo_lab.job import job_choices, run_name_of
from ppo_lab.runs import find_job_dirs, load_run
from ppo_lab.sweep.rerun import ATTEMPTS_DIR, _quote, keep_attempt_summary
from ppo_lab.sweep.summary import CSV_NAME, MARKDOWN_NAME, summarize
from ppo_lab.tracking import default_group

from helpers import CONF, REPO, compose_config, group_entries, run_module
from sweep_helpers import NO_CRASH_VAR

STUDIES = sorted((REPO / "experiments").glob("*.yaml"))
DETAILS = sorted((REPO / "experiments" / "detail").glob("*.yaml"))
SEARCHES = sorted((REPO / "sweeps").glob("*.yaml"))
WANDB_SPECS = sorted((REPO / "sweeps" / "wandb").glob("*.yaml"))
LAUNCHERS = sorted((CONF / "hydra" / "launcher").glob("*.yaml"))


def test_the_studies_and_searches_are_in_the_repo() -> None:
    """Parametrized tests over an empty folder would pass vacuously: the files must exist."""
    assert {p.stem for p in STUDIES} >= {"loss_ablation", "adv_norm_mujoco", "details"}
    assert len(DETAILS) >= 3 and SEARCHES and WANDB_SPECS
    assert {p.stem for p in LAUNCHERS} >= {"local", "submitit_local", "slurm", "ray"}


TINY = ["total_timesteps=1024", "eval_episodes=0", "logger=none"]  # 4 updates of 8 x 32 steps
# Seeds 0, 10, 20, 30 with 8 envs: only the job with seed 20 seeds an env with 20 and crashes.
FLAKY = [
    "seed=0,10,20,30",
    "env.id=tests.sweep_helpers:flaky_cartpole",
    "+env.kwargs.crash_seed=20",
]
FAILING_JOB = "2"


# --------------------------------------------------------------------------- helpers


def compose_cfg(overrides: list[str], hydra: bool = False) -> DictConfig:
    return compose_config(*overrides, return_hydra_config=hydra)


def swept_values(key: str, text: str) -> list[str]:
    """The values a sweeper param takes (every value; the two ends of an Optuna interval)."""
    override = OverridesParser.create().parse_overrides([f"{key}={text}"])[0]
    value = override.value()
    if isinstance(value, Glob):
        return value.filter(group_entries(key))
    if isinstance(value, IntervalSweep):
        return [str(value.start), str(value.end)]
    if isinstance(value, (ChoiceSweep, RangeSweep)):
        return list(override.sweep_string_iterator())
    return [str(value)]


def check_grid(base: list[str]) -> int:
    """Compose and validate `base` with each value of each swept param; returns how many."""
    cfg = compose_cfg(base, hydra=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN, "a study or search is a multirun by itself"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, "a study states its grid in hydra.sweeper.params"
    checked = 0
    for key, text in params.items():
        for value in swept_values(key, str(text)):
            validate(compose_cfg([*base, f"{key}={value}"]))
            checked += 1
    return checked


def summaries(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        job.name: json.loads((job / "summary.json").read_text()) for job in find_job_dirs(sweep_dir)
    }


# --------------------------------------------------------------------------- composition


def test_every_study_is_documented() -> None:
    readme = (REPO / "experiments" / "README.md").read_text()
    assert {p.stem for p in STUDIES} >= {
        "loss_ablation",
        "loss_ablation_atari",
        "adv_norm_mujoco",
        "details",
    }
    for path in [*STUDIES, *DETAILS, *SEARCHES]:
        lines = path.read_text().splitlines()
        assert lines[0] == "# @package _global_", f"{path}: a global-package delta"
        assert len(lines) > 1 and lines[1].startswith("#"), f"{path}: says what it does"
    for path in STUDIES:
        assert "Question" in path.read_text(), f"{path}: states its question"
        assert f"`{path.stem}`" in readme, f"experiments/README.md: no entry for {path.stem}"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_composes(path: Path) -> None:
    assert check_grid([f"experiment={path.stem}"]) > 1


@pytest.mark.parametrize("path", DETAILS, ids=lambda p: p.stem)
def test_detail_variant_composes(path: Path) -> None:
    variant = validate(compose_cfg(["experiment=details", f"experiment/detail={path.stem}"]))
    baseline = validate(compose_cfg(["experiment=details"]))
    if path.stem != "baseline":  # a leave-one-out variant changes something
        assert OmegaConf.to_container(variant.cfg) != OmegaConf.to_container(baseline.cfg)


@pytest.mark.parametrize("path", SEARCHES, ids=lambda p: p.stem)
def test_search_composes(path: Path) -> None:
    cfg = compose_cfg([f"sweep={path.stem}"], hydra=True)
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == "optuna"
    assert cfg.seeds_per_trial > 1, "a trial is scored over several seeds"
    assert check_grid([f"sweep={path.stem}"]) > 1


@pytest.mark.parametrize("path", WANDB_SPECS, ids=lambda p: p.stem)
def test_wandb_spec_drives_ppo_lab(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert spec["command"] == ["${env}", "${interpreter}", "-m", "ppo_lab", "${args_no_hyphens}"]
    assert spec["metric"]["name"] == "final_return"
    for key, param in spec["parameters"].items():
        values = param.get("values") or [param[k] for k in ("value", "min", "max") if k in param]
        for value in values:
            validate(compose_cfg([f"{key}={value}"]))


@pytest.mark.filterwarnings(f"ignore:{PRESET_SCHEMA_NOTICE}:UserWarning")
@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.stem)
def test_launcher_preset_spells_out_the_plugin_config(path: Path) -> None:
    launcher = compose_cfg([f"hydra/launcher={path.stem}"], hydra=True).hydra.launcher
    preset = yaml.safe_load(path.read_text())
    assert launcher._target_ == preset["_target_"]
    plugin = preset["_target_"].split(".")[1]  # hydra_plugins.<plugin>.<module>.<class>
    schema_module, schema_name = {
        "hydra_joblib_launcher": ("config", "JobLibLauncherConf"),
        "hydra_submitit_launcher": (
            "config",
            "LocalQueueConf" if "Local" in preset["_target_"] else "SlurmQueueConf",
        ),
        "hydra_ray_launcher": ("_config", "RayLauncherConf"),
        "ppo_lab_launcher": (
            "config",
            "PopulationLauncherConf"
            if "Population" in preset["_target_"]
            else "ProcessLauncherConf",
        ),
    }[plugin]
    config_module = pytest.importorskip(f"hydra_plugins.{plugin}.{schema_module}")
    fields = {f.name for f in dataclasses.fields(getattr(config_module, schema_name))}
    assert set(preset) == fields, "a preset spells out every field of the plugin's schema"


def test_default_launcher_is_local_parallel() -> None:
    cfg = compose_cfg([], hydra=True)
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "local"
    assert cfg.hydra.callbacks.sweep_summary._target_.endswith("SweepSummaryCallback")
    assert cfg.torch_threads == "auto"


def test_auto_threads_give_cnns_every_core_and_sweep_jobs_and_mlps_one(monkeypatch) -> None:
    from ppo_lab import progress, threads

    monkeypatch.setattr(threads, "available_cores", lambda: 6)
    assert threads.intra_op_threads("auto", image_observations=True) == 6
    assert threads.intra_op_threads("auto", image_observations=False) == 1
    assert threads.intra_op_threads(3, image_observations=False) == 3
    assert threads.intra_op_threads(0, image_observations=True) is None  # torch's default
    monkeypatch.setattr(progress, "in_a_sweep", lambda: True)
    assert threads.intra_op_threads("auto", image_observations=True) == 1


# --------------------------------------------------------------------------- small pieces


def test_default_group(tmp_path: Path) -> None:
    assert default_group(tmp_path, {"experiment": "loss_ablation"}) == "loss_ablation"
    assert default_group(tmp_path, {"sweep": "cartpole_optuna"}) == "cartpole_optuna"
    sweep = tmp_path / "multirun" / "2026-01-01_00-00-00"
    (sweep / "3" / "seed_1").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    assert default_group(sweep / "3" / "seed_1", {}) == "multirun/2026-01-01_00-00-00"
    assert default_group(tmp_path / "single_run", {}) is None


def test_run_name_and_choices() -> None:
    choices = {"loss": "clip", "env": "cartpole"}
    assert (
        run_name_of(["experiment=loss_ablation", "loss=clip", "seed=3"], choices, "Pong-v5", 3)
        == "Pong-v5 loss=clip seed=3"
    )
    assert run_name_of([], choices, "CartPole-v1", 1) == "CartPole-v1 loss=clip seed=1"
    trial = ["optim.lr=0.00064664227174", "update_epochs=10", "seed=2", "env.id=Acrobot-v1"]
    assert run_name_of(trial, choices, "Acrobot-v1", 2) == (
        "Acrobot-v1 optim.lr=0.0006466 update_epochs=10 seed=2"
    )
    hydra_cfg = OmegaConf.create(
        {"runtime": {"choices": {"loss": "clip", "experiment": None, "hydra/launcher": "local"}}}
    )
    assert job_choices(hydra_cfg) == {"loss": "clip"}


def test_quoted_override_values_parse_back() -> None:
    parser = OverridesParser.create()
    for path in ["/tmp/a/b", "/tmp/with space/x", "/tmp/it's,odd=[1]"]:
        override = parser.parse_overrides([f"hydra.run.dir={_quote(path)}"])[0]
        assert override.value() == path


def test_a_rerun_keeps_the_previous_summary_and_the_checkpoint(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "checkpoint.pt").write_bytes(b"ckpt")
    (tmp_path / "summary.json").write_text('{"status": "failed"}')
    assert keep_attempt_summary(tmp_path) == tmp_path / ATTEMPTS_DIR / "1"
    (tmp_path / "summary.json").write_text("{}")
    assert keep_attempt_summary(tmp_path) == tmp_path / ATTEMPTS_DIR / "2"
    assert (tmp_path / "checkpoint.pt").exists(), "the checkpoint stays: the re-run resumes it"
    assert (tmp_path / ATTEMPTS_DIR / "2" / "summary.json").read_text() == "{}"
    assert keep_attempt_summary(tmp_path / ATTEMPTS_DIR) is None  # no summary.json there


# --------------------------------------------------------------------------- real sweeps


def check_failed_sweep(sweep_dir: Path, result: subprocess.CompletedProcess[str]) -> None:
    """One job failed inside training, the others finished, and every job wrote its summary."""
    assert result.returncode != 0, "a sweep with a failed job exits non-zero"
    jobs = summaries(sweep_dir)
    assert sorted(jobs) == ["0", "1", "2", "3"]
    statuses = {name: job["status"] for name, job in jobs.items()}
    assert statuses == {"0": "finished", "1": "finished", FAILING_JOB: "failed", "3": "finished"}
    assert "injected failure" in jobs[FAILING_JOB]["error"]
    assert all(job["final_return"] is not None for n, job in jobs.items() if n != FAILING_JOB)


@pytest.mark.slow
def test_local_sweep_with_a_failing_job_then_rerun(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = run_module("ppo_lab", ["-m", *FLAKY, *TINY, f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert "Launching 4 jobs" in result.stdout + result.stderr, "`-m` runs the local launcher"
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "job #2 failed (RuntimeError)" in output
    check_failed_sweep(sweep_dir, result)

    summary = run_module("ppo_lab.sweep", ["summarize", str(sweep_dir)], tmp_path)
    assert summary.returncode == 0, summary.stderr
    md = (sweep_dir / MARKDOWN_NAME).read_text()
    assert "3 finished" in md and "1 failed" in md and "injected failure" in md
    assert f"python -m ppo_lab.sweep rerun-failed {sweep_dir}" in md
    rows = (sweep_dir / CSV_NAME).read_text().splitlines()
    assert rows[0].startswith("job,status,seed,final_return") and len(rows) == 5

    before = {n: (sweep_dir / n / "summary.json").stat().st_mtime_ns for n in "013"}
    rerun = run_module(
        "ppo_lab.sweep", ["rerun-failed", str(sweep_dir)], tmp_path, {NO_CRASH_VAR: "1"}
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "[1/1]" in rerun.stdout, "only the failed job is re-run"
    assert "each resumes from its checkpoint" in rerun.stdout
    after = {n: (sweep_dir / n / "summary.json").stat().st_mtime_ns for n in "013"}
    assert after == before, "finished jobs are left alone"
    job = load_run(sweep_dir / FAILING_JOB)
    assert job.status == "finished" and job.seed == 20
    kept = json.loads((sweep_dir / FAILING_JOB / ATTEMPTS_DIR / "1" / "summary.json").read_text())
    assert kept["status"] == "failed"
    assert not summarize(sweep_dir).unfinished
    assert "4 finished" in (sweep_dir / MARKDOWN_NAME).read_text()


@pytest.mark.slow
def test_submitit_local_sweep_with_a_failing_job(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "ppo_lab",
        ["-m", "hydra/launcher=submitit_local", *FLAKY, *TINY, f"hydra.sweep.dir={sweep_dir}"],
        tmp_path,
    )
    assert "Submitit 'local'" in result.stdout + result.stderr
    check_failed_sweep(sweep_dir, result)
    assert (sweep_dir / ".submitit").is_dir()
    table = summarize(sweep_dir)
    assert [run.path.name for run in table.unfinished] == [FAILING_JOB]


@pytest.mark.slow
def test_optuna_search_scores_trials_over_seeds(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "ppo_lab",
        [
            "-m",
            "sweep=cartpole_optuna",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "seeds_per_trial=2",
            *TINY,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    trials = summaries(sweep_dir)
    assert len(trials) == 4
    for name, trial in trials.items():
        assert trial["status"] == "finished" and trial["seeds"] == [1, 2]
        seed_runs = [
            json.loads((sweep_dir / name / f"seed_{s}" / "summary.json").read_text())
            for s in (1, 2)
        ]
        assert [run["status"] for run in seed_runs] == ["finished", "finished"]
        returns = [run["final_return"] for run in seed_runs]
        assert trial["seed_returns"] == returns
        assert trial["final_return"] == pytest.approx(sum(returns) / 2)  # IQM of 2 = mean
    assert best["best_value"] == pytest.approx(max(t["final_return"] for t in trials.values()))
    md = (sweep_dir / MARKDOWN_NAME).read_text()  # written by the callback at multirun end
    assert "4 finished" in md and "optim.lr" in md and "seed_returns" in md


@pytest.mark.slow
def test_a_sweep_with_an_invalid_and_a_killed_job_lists_both_and_the_rerun_skips_invalid(
    tmp_path: Path,
) -> None:
    """Seed 20's job SIGKILLs its own process mid-training; total_timesteps=-5 is invalid."""
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "seed=0,20",
        "total_timesteps=1024,-5",
        *TINY[1:],
        "env.id=tests.sweep_helpers:flaky_cartpole",
        "+env.kwargs.crash_seed=20",
        "+env.kwargs.signal_name=SIGKILL",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    result = run_module("ppo_lab", args, tmp_path)
    assert result.returncode == 1, "a sweep with jobs that did not finish exits non-zero"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    table = summarize(sweep_dir)
    statuses = {run.path.name: run.status for run in table.runs}
    assert statuses == {"0": "finished", "1": "invalid_config", "2": "lost", "3": "invalid_config"}
    md = (sweep_dir / MARKDOWN_NAME).read_text()
    assert "1 finished, 2 invalid_config, 1 lost" in md and "killed by SIGKILL" in md
    assert "total_timesteps=-5: should be greater than or equal to 1" in md  # on one line
    rerun = run_module(
        "ppo_lab.sweep", ["rerun-failed", str(sweep_dir)], tmp_path, {NO_CRASH_VAR: "1"}
    )
    assert rerun.stdout.count("skipped") == 2 and "a re-run cannot succeed" in rerun.stdout
    assert "[1/1]" in rerun.stdout and rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert load_run(sweep_dir / "2").status == "finished"


@pytest.mark.slow
def test_a_sweep_job_stopped_by_sigterm_is_interrupted_with_a_checkpoint_not_lost(
    tmp_path: Path,
) -> None:
    """A cluster's SIGTERM to one job: it checkpoints and says so; the others finish."""
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "seed=0,20",
        *TINY,
        "env.id=tests.sweep_helpers:flaky_cartpole",
        "+env.kwargs.crash_seed=20",
        "+env.kwargs.signal_name=SIGTERM",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    result = run_module("ppo_lab", args, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-2000:]
    assert "job #1 stopped by SIGTERM" in output
    statuses = {run.path.name: run.status for run in summarize(sweep_dir).runs}
    assert statuses == {"0": "finished", "1": "interrupted"}
    assert (sweep_dir / "1" / "checkpoint.pt").exists()


def test_launcher_writes_every_job_it_is_handed(tmp_path: Path) -> None:
    from ppo_lab.sweep.summary import LAUNCHED

    (tmp_path / LAUNCHED).write_text(
        '{"job": 0, "overrides": ["seed=1"]}\n'
        '{"job": 1, "overrides": ["seed=2"]}\n'
        '{"job": 1, "overrides": ["seed=2"], "lost": "killed"}\n'
        '{"job": 2, "overr'
    )  # torn by a kill
    statuses = {run.path.name: (run.status, run.overrides) for run in summarize(tmp_path).runs}
    assert statuses == {"0": ("never started", ("seed=1",)), "1": ("lost", ("seed=2",))}


def test_a_loss_sweep_names_variants_by_the_loss_not_its_sub_entries() -> None:
    from ppo_lab.runs import without_implied

    assert without_implied({"loss", "loss/policy", "loss/value", "seed"}) == {"loss", "seed"}
    assert without_implied({"loss/value", "optim.lr"}) == {"loss/value", "optim.lr"}


def test_a_sweep_composes_each_job_once_and_hands_out_independent_copies() -> None:
    """The launcher's memo of composed job configs: one composition per override list, each
    caller getting its own copy (a job renumbering its copy changes no other)."""
    from hydra_plugins.ppo_lab_launcher.process_launcher import ComposedConfigs

    calls: list[list[str]] = []

    def compose(master: DictConfig, overrides: list[str]) -> DictConfig:
        calls.append(overrides)
        return OmegaConf.create({"seed": int(overrides[0].split("=")[1]), "job": {"num": -1}})

    memo = ComposedConfigs(compose)
    master = OmegaConf.create({})
    first = memo(master, ["seed=1"])
    first.job.num = 7
    again = memo(master, ["seed=1"])
    other = memo(master, ["seed=2"])
    assert calls == [["seed=1"], ["seed=2"]]
    assert again == {"seed": 1, "job": {"num": -1}} and other.seed == 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["logger=none"], set()),
        (["env/backend=envpool"], {"wandb", "envpool"}),
        (["logger=none", "compile=true"], {"torch._dynamo"}),
        (["logger=none", "cuda_graphs=true"], {"torch._dynamo"}),
    ],
)
def test_a_sweep_process_imports_what_its_jobs_will_before_forking(overrides, expected) -> None:
    """`ppo_lab.job.preload`: torch._dynamo, W&B and envpool only when the sweep's config
    compiles (compile=true, cuda_graphs=true) or uses them."""
    heavy = ["torch._dynamo", "wandb", "envpool"]
    script = (
        "import json, sys; from ppo_lab.job import preload; from helpers import compose_config; "
        f"preload(compose_config(*{overrides!r})); "
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO / "tests",
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(json.loads(out.stdout)) == expected


def test_a_launcher_whose_plugin_is_missing_is_named_with_the_extra_that_installs_it(
    tmp_path: Path,
) -> None:
    """hydra/launcher=ray without the `ray` extra: one line naming the extra, no traceback and
    no sweep dir (Hydra alone ends in `Unknown plugin class` and a second traceback)."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        pytest.skip("the Ray launcher is installed here")
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=ray", "logger=none", f"hydra.sweep.dir={sweep_dir}"]
    out = run_module("ppo_lab", args, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "Ray launcher was chosen" in out.stderr and '-e ".[ray]"' in out.stderr
    assert not sweep_dir.exists()


def test_a_missing_sweeper_plugin_is_named_with_its_extra(monkeypatch) -> None:
    """The Optuna sweeper's plugin provides its own config: without it the search does not even
    compose, and the message still names the `sweeps` extra."""
    import importlib.util

    from ppo_lab.__main__ import hydra_node, missing_plugins

    node = hydra_node(["sweep=cartpole_optuna"])
    assert missing_plugins(node) == []  # installed here (the dev extras)
    real_find_spec = importlib.util.find_spec

    def without_optuna(name: str, *args: Any) -> Any:
        return None if "optuna" in name else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_optuna)
    for composed in (node, Exception("In 'hydra/config': Could not find 'hydra/sweeper/optuna'")):
        (problem,) = missing_plugins(composed)
        assert problem.startswith("the Optuna sweeper was chosen") and '".[sweeps]"' in problem
