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

import importlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ppo_lab.components import ConfigError, targets_in
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
    summary["status"] = "running"
    write_json(path, summary)
    started = time.perf_counter()
    try:
        yield summary
        failure = summary.get("failure")  # a population member (or seed) that failed alone
        summary["status"] = "failed" if failure else "finished"
        if failure:
            summary["error"] = failure
    except (KeyboardInterrupt, SystemExit) as err:  # a stop signal, or submitit's requeue exit
        step = summary.get("global_step")
        if summary.get("failure"):  # a member that had failed before the stop stays failed
            summary.update(status="failed", error=summary["failure"])
            raise
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


@dataclass
class PreparedJob:
    """A Hydra job as ppo_lab runs it: its config, dir, choices and starting summary."""

    cfg: DictConfig
    run_dir: Path
    choices: dict[str, str]
    overrides: list[str]
    summary: dict[str, Any]
    job_num: Any = None  # the job's number in a sweep; None for a single run
    finished: dict[str, Any] | None = None  # the summary of a run that already finished here

    @property
    def run_name(self) -> str:
        return run_name_of(
            self.overrides, self.choices, self.summary["env_id"], self.cfg.get("seed")
        )


# Modules a component imports only when it is built, by the `_target_` that builds them.
IMPORTED_WHEN_BUILT = {
    "ppo_lab.tracking.WandbTracker": "wandb",  # ~0.5 s
    "ppo_lab.envs.envpool_backend.EnvpoolVectorEnv": "envpool",  # ~0.9 s
}


def preload(cfg: DictConfig) -> None:
    """Import what the jobs of a sweep with this config will import, in the sweep's process
    before it forks them, so that each job need not: torch._dynamo (~1.3 s) when they compile,
    and the libraries of the components the config names."""
    if cfg.get("compile") or cfg.get("cuda_graphs"):
        importlib.import_module("torch._dynamo")
    targets = targets_in(OmegaConf.to_container(cfg, resolve=False))
    for target, module in IMPORTED_WHEN_BUILT.items():
        if target in targets:
            importlib.import_module(module)


def prepare_job(cfg: DictConfig) -> PreparedJob:
    """The job Hydra is running now (`HydraConfig`), its run dir created."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    choices = job_choices(hydra_cfg)
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)  # as typed: no secrets
    overrides = [str(o) for o in task if not str(o).startswith("hydra")]
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
    finished = finished_summary(run_dir) if cfg.get("resume", True) else None
    job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    return PreparedJob(cfg, run_dir, choices, overrides, summary, job_num, finished)


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured job; returns its final return (the sweepers' objective).

    A multi-seed trial (`seeds_per_trial > 1`) or a population (`population > 1`) returns the
    IQM of its seeds' final returns.
    """
    job = prepare_job(cfg)
    if job.finished is not None:
        log.info(
            "%s already holds a finished run (final return %s); nothing to do",
            job.run_dir,
            job.finished.get("final_return"),
        )
        return job.finished.get("final_return")
    summary = job.summary
    try:
        with GracefulStop() as stop, recorded(job.run_dir / "summary.json", summary):
            settings = validate(cfg)  # before any environment is built
            if settings.run.population > 1:
                summary.update(train_population_job(settings, job, stop))
            elif settings.run.seeds_per_trial > 1:
                summary.update(train_seeds(settings, job.run_dir, job.choices, summary, stop))
            else:
                train(settings, job.run_dir, job.choices, job.run_name, summary, stop)
    except StopRequested as err:
        err.hand_over()  # under submitit: its requeue, now that the checkpoint is written
        raise
    log.info(closing_line(summary, job.job_num))
    return summary.get("final_return")


def run_population_jobs(jobs: list[PreparedJob]) -> list[float | None]:
    """Jobs of a sweep trained as one population (`hydra/launcher=population`); returns each
    job's final return (NaN when it did not finish), as its own `run_job` would.

    A job that already finished is kept; one whose config is invalid is recorded as such and
    left out; the rest are the members.
    """
    from ppo_lab.population.trainer import Member

    members: list[Member] = []
    for job in jobs:
        if job.finished is not None:
            continue
        try:
            settings = validate(job.cfg)  # before any environment is built
            for key in ("population", "seeds_per_trial"):
                if getattr(settings.run, key) > 1:
                    raise ConfigError(
                        [
                            f"{key}={getattr(settings.run, key)}: hydra/launcher=population "
                            f"makes the populations from the sweep's seeds; drop {key}= "
                            "and sweep seed= instead"
                        ]
                    )
        except ConfigError as err:  # this job is left out; its summary says why
            job.summary.update(status="invalid_config", error=f"ConfigError: {err}")
            write_json(job.run_dir / "summary.json", job.summary)
            log.error("job #%s: invalid configuration: %s", job.job_num, err)
            continue
        members.append(Member(settings, job.run_dir, job.choices, job.run_name, job.summary))
    try:
        with GracefulStop() as stop:
            train_members(members, stop)
    except StopRequested as err:
        err.hand_over()
        raise
    except Exception as err:  # the whole population failed; every summary.json says why
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.error("population of jobs %s failed: %s", [j.job_num for j in jobs], first)
    out: list[float | None] = []
    for job in jobs:
        summary = job.finished or job.summary
        if job.finished is None:
            log.info(closing_line(summary, job.job_num))
        value = summary.get("final_return") if summary.get("status") == "finished" else None
        out.append(float("nan") if value is None else value)
    return out


def train_population_job(
    settings: Settings, job: PreparedJob, stop: GracefulStop | None
) -> dict[str, Any]:
    """`population=n`: seeds seed..seed+n-1 trained together, each in `<run dir>/seed_<s>/`
    with its own summary.json, metrics, checkpoint and W&B run. Seeds that finished before (a
    resumed job) are kept. Returns the job's figures: the IQM of the seeds' final returns."""
    from ppo_lab.population.trainer import Member

    first, count = settings.run.seed, settings.run.population
    overrides = [
        o for o in job.overrides if o.lstrip("+").split("=")[0] not in ("seed", "population")
    ]
    members, done = [], []
    for seed in range(first, first + count):
        seed_dir = job.run_dir / f"seed_{seed}"
        ended = ended_summary(seed_dir)
        if ended is not None:  # a resumed job keeps the seeds that finished or failed alone
            done.append(ended)
            continue
        figures = {
            **job.summary,
            "seed": seed,
            "run_dir": str(seed_dir),
            "overrides": [*overrides, f"seed={seed}"],
        }
        name = run_name_of(overrides, job.choices, job.summary["env_id"], seed)
        members.append(Member(with_seed(settings, seed), seed_dir, job.choices, name, figures))
    train_members(members, stop)
    for member in members:
        log.info(closing_line(member.figures))
    per_seed = sorted(done + [m.figures for m in members], key=lambda s: s["seed"])
    failed = [s for s in per_seed if s.get("status") != "finished"]
    figures = seed_figures(per_seed)
    if failed:
        figures["failure"] = "; ".join(f"seed {s['seed']}: {s.get('error')}" for s in failed)
    return figures


def train_members(members: list[Any], stop: GracefulStop | None) -> None:
    """Train a population, each member's summary.json written at its start and end (as a
    job's): finished, or failed with the reason when it failed alone."""
    from ppo_lab.population.trainer import train_population

    with ExitStack() as stack:
        for member in members:
            member.run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(recorded(member.run_dir / "summary.json", member.figures))
        if members:
            train_population(members, stop)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary.json in `run_dir`, if there is a readable one."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a finished run in `run_dir`, if that is what it holds."""
    summary = read_summary(run_dir)
    return summary if summary is not None and summary.get("status") == "finished" else None


def ended_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a run that finished, or failed on its own (a population member's
    non-finite loss: run it again alone with `rerun-failed`), in `run_dir`."""
    summary = read_summary(run_dir)
    if summary is None:
        return None
    ended = summary.get("status") == "finished" or summary.get("failure") is not None
    return summary if ended else None


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
    return seed_figures(per_seed)


def seed_figures(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """A multi-seed job's figures: the IQM of its seeds' final returns and each seed's."""
    from ppo_lab.report.stats import iqm

    returns = [s["final_return"] for s in per_seed if s.get("final_return") is not None]
    final = float(iqm(returns)) if returns else None
    threshold = next((s["reward_threshold"] for s in per_seed if s.get("reward_threshold")), None)
    return {
        "final_return": final,
        "objective": "IQM of the seeds' final returns",
        "reward_threshold": threshold,
        "solved": None if final is None or threshold is None else final >= threshold,
        "seeds": [s["seed"] for s in per_seed],
        "seed_returns": [s.get("final_return") for s in per_seed],
        "eval_return": _mean([s.get("eval_return") for s in per_seed]),
        "global_step": sum(int(s.get("global_step") or 0) for s in per_seed),
    }


def _mean(values: list[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None
