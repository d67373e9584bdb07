"""One Hydra job: validate, train, and leave a `summary.json` whatever happens.

summary.json is written when the job starts (status "running") and rewritten at the end with
status finished | invalid_config | failed | interrupted, the error, the job's overrides and the
chosen entry of every config group, so a sweep can be summarised even when jobs crash.

With `seeds_per_trial=n > 1` (hyperparameter searches, sweeps/) the job trains the seeds
`seed, ..., seed+n-1` one after another, each in `<job dir>/seed_<s>/` with its own summary.json,
and its result is the interquartile mean (IQM) of their final returns: a trial is scored on
several seeds, not on one lucky one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ppo_lab.components import ConfigError
from ppo_lab.config import Settings, validate, with_seed
from ppo_lab.files import write_text_atomically
from ppo_lab.signals import GracefulStop, StopRequested
from ppo_lab.train import train

log = logging.getLogger("ppo_lab")

# Groups that name the study a run belongs to (the W&B group), not a component of the run.
STUDY_GROUPS = ("experiment", "sweep")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic JSON write: readers never see half a file."""
    write_text_atomically(path, json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def recorded(path: Path, summary: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Write `summary` to `path` now (status "running") and again at the end with the outcome."""
    write_json(path, summary)
    started = time.perf_counter()
    try:
        yield summary
        summary["status"] = "finished"
    except (KeyboardInterrupt, SystemExit) as err:  # a stop signal, or submitit's requeue exit
        step = summary.get("global_step")
        summary.update(
            status="interrupted",
            error=f"interrupted ({err}) at global step {step}; "
            "run it again in the same dir to resume from its checkpoint",
        )
        raise
    except Exception as err:
        summary["status"] = "invalid_config" if isinstance(err, ConfigError) else "failed"
        summary["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        summary["wall_time_s"] = round(time.perf_counter() - started, 3)
        write_json(path, summary)


def job_choices(hydra_cfg: Any) -> dict[str, str]:
    """The entry every config group took, e.g. {"loss": "clip", "experiment": "loss_ablation"}.

    Hydra's own groups, unselected optional groups (experiment, sweep) and specialisations
    placed into another entry (`loss/policy/clip_range@loss.policy`) are left out.
    """
    return {
        str(g): str(c)
        for g, c in hydra_cfg.runtime.choices.items()
        if c is not None and not str(g).startswith("hydra") and "@" not in str(g)
    }


def run_name_of(overrides: list[str], choices: dict[str, str], env_id: Any, seed: Any) -> str:
    """The W&B name: env, what differs (the overrides, less the study, the env and the seed; floats
    to 4 significant digits) and seed, e.g. `CartPole-v1 loss=dual_clip optim.lr=0.0003 seed=3`."""
    skip = {*STUDY_GROUPS, "seed", "env.id"}
    differs = [short_floats(o) for o in overrides if o.lstrip("+~").split("=")[0] not in skip]
    variant = differs or [f"loss={choices.get('loss')}"]
    return " ".join([str(env_id), *variant, f"seed={seed}"])


def short_floats(override: str) -> str:
    """`optim.lr=0.00064664227` -> `optim.lr=0.0006466`; other overrides unchanged."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}{sep}{number:.4g}" if "." in value or "e" in value.lower() else override


def closing_line(summary: dict[str, Any], job_num: Any = None) -> str:
    """One line at a run's end: final and evaluation return, solved, wall time, output dir."""

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    solved = {True: "solved", False: "not solved", None: "no threshold"}[summary.get("solved")]
    who = f"job #{job_num} " if job_num is not None else ""
    return (
        f"{who}{summary.get('status')}: return {number(summary.get('final_return'))} (last "
        f"10 training episodes), evaluation {number(summary.get('eval_return'))}, {solved}, "
        f"{summary.get('global_step')} steps in {summary.get('wall_time_s', 0):.1f} s; "
        f"{summary.get('run_dir')}"
    )


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured job; returns its final return (the sweepers' objective).

    A multi-seed trial (`seeds_per_trial > 1`) returns the IQM of its seeds' final returns.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_summary(run_dir)
    if finished is not None and cfg.get("resume", True):
        log.info(
            "%s already holds a finished run (final return %s); nothing to do",
            run_dir,
            finished.get("final_return"),
        )
        return finished.get("final_return")
    choices = job_choices(hydra_cfg)
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)  # as typed: no secrets
    overrides = [str(o) for o in task if not str(o).startswith("hydra")]
    run_name = run_name_of(overrides, choices, cfg.get("env", {}).get("id"), cfg.get("seed"))
    summary: dict[str, Any] = {
        "status": "running",
        "error": None,
        "env_id": cfg.get("env", {}).get("id"),
        "seed": cfg.get("seed"),
        "overrides": overrides,
        "choices": choices,
        "total_timesteps": cfg.get("total_timesteps"),
        "run_dir": str(run_dir),
        "host": socket.gethostname(),  # with pid: a job left "running" by a dead process is lost
        "pid": os.getpid(),
    }
    try:
        with GracefulStop() as stop, recorded(run_dir / "summary.json", summary):
            settings = validate(cfg)  # before any environment is built
            if settings.run.seeds_per_trial > 1:
                summary.update(train_seeds(settings, run_dir, choices, summary, stop))
            else:
                train(settings, run_dir, choices, run_name, summary, stop)
    except StopRequested as err:
        err.hand_over()  # under submitit: its requeue, now that the checkpoint is written
        raise
    sweep_job = hydra_cfg.mode == RunMode.MULTIRUN
    log.info(closing_line(summary, hydra_cfg.job.num if sweep_job else None))
    return summary.get("final_return")


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a finished run in `run_dir`, if that is what it holds."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("status") == "finished" else None


def train_seeds(
    settings: Settings,
    run_dir: Path,
    choices: dict[str, str],
    job_summary: dict[str, Any],
    stop: GracefulStop | None = None,
) -> dict[str, Any]:
    """Train seeds `seed .. seed+seeds_per_trial-1` in turn, in `run_dir/seed_<s>/`.

    Each seed writes its own summary.json (same fields as a job's). The first seed that fails
    fails the trial (a diverging configuration rarely recovers on the next seed). Returns the
    trial's figures: `final_return` = IQM of the seeds' final returns, and the per-seed values.
    """
    from ppo_lab.report.stats import iqm

    first, count = settings.run.seed, settings.run.seeds_per_trial
    overrides = [o for o in job_summary["overrides"] if o.lstrip("+").split("=")[0] != "seed"]
    per_seed: list[dict[str, Any]] = []
    for seed in range(first, first + count):
        seed_dir = run_dir / f"seed_{seed}"
        seed_dir.mkdir(exist_ok=True)
        done = finished_summary(seed_dir)  # a resumed trial keeps the seeds it finished
        if done is not None:
            per_seed.append(done)
            continue
        seed_summary = {
            **job_summary,
            "status": "running",
            "error": None,
            "seed": seed,
            "run_dir": str(seed_dir),
            "overrides": [*overrides, f"seed={seed}"],
        }
        try:
            with recorded(seed_dir / "summary.json", seed_summary):
                name = run_name_of(overrides, choices, job_summary["env_id"], seed)
                train(with_seed(settings, seed), seed_dir, choices, name, seed_summary, stop)
        except Exception:
            job_summary["failed_seed"] = seed  # the job's summary names the seed that failed
            raise
        per_seed.append(seed_summary)
    returns = [s["final_return"] for s in per_seed if s.get("final_return") is not None]
    return {
        "final_return": float(iqm(returns)) if returns else None,
        "objective": "IQM of the seeds' final returns",
        "seeds": [s["seed"] for s in per_seed],
        "seed_returns": [s.get("final_return") for s in per_seed],
        "eval_return": _mean([s.get("eval_return") for s in per_seed]),
        "global_step": sum(int(s.get("global_step") or 0) for s in per_seed),
    }


def _mean(values: list[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None
