"""`hydra.launcher.pack=true` (`hydra/launcher=population`): a sweep's jobs packed into
populations, one process each.

Jobs whose configs differ only in seed and in coefficients (`ppo_lab.population.packing`) train
together as the members of one population (`ppo_lab.population`): `-m loss='glob(*)'
seed='range(10)' optim.lr=1e-4,3e-4` is one population per loss. Populations run like the local
launcher runs jobs: each in a process of its own, `n_jobs` at once, a lost process losing only its
own jobs. Every job keeps its job dir, `.hydra/` configs, summary.json, metrics and W&B run, so
`ppo_lab.report`, `ppo_lab.sweep summarize` and `rerun-failed` read the sweep as any other.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, run_job
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ppo_lab_launcher.process_launcher import Job, job_config

log = logging.getLogger(__name__)


def run_population(
    jobs: list[Job], hydra_context: HydraContext, config: DictConfig, task_function: TaskFunction
) -> list[JobReturn]:
    """The population launcher's unit: Hydra sets up each job (dir, configs, logging), then
    the jobs train as one population."""
    from ppo_lab.job import prepare_job, run_population_jobs

    prepared: list[JobReturn] = []
    prefix = f"#{jobs[0][0]}" if len(jobs) == 1 else f"#{jobs[0][0]}..#{jobs[-1][0]}"
    for idx, overrides in jobs:
        prepared.append(
            run_job(
                hydra_context=hydra_context,
                config=job_config(hydra_context, config, idx, overrides, prefix),
                task_function=prepare_job,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
    ready = [r for r in prepared if r.status == JobStatus.COMPLETED]
    for ret, value in zip(ready, run_population_jobs([r.return_value for r in ready]), strict=True):
        ret.return_value = value  # the job's final return, in place of its PreparedJob
    return prepared


def packing_key_of(hydra_context: HydraContext, config: DictConfig, job: Job) -> str:
    """The job's `packing_key`; a config that does not resolve is a group of its own (the job
    then reports the problem)."""
    from ppo_lab.population.packing import packing_key

    idx, overrides = job
    sweep_config = job_config(hydra_context, config, idx, overrides)
    task = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
    try:
        resolved: Any = OmegaConf.to_container(task, resolve=True)
    except Exception:
        return f"unresolvable job {idx}"
    return packing_key(resolved)


def population_units(
    jobs: list[Job], hydra_context: HydraContext, config: DictConfig, max_members: int
) -> list[list[Job]]:
    """The jobs grouped by `packing_key`, each group split into populations of at most
    `max_members` (-1: no limit)."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(packing_key_of(hydra_context, config, job), []).append(job)
    size = max_members if max_members > 0 else len(jobs)
    units = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    log.info(
        "Packed %d jobs into %d populations: %s",
        len(jobs),
        len(units),
        ", ".join(f"#{u[0][0]}..#{u[-1][0]} ({len(u)})" for u in units),
    )
    return units
