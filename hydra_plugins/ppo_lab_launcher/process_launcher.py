"""`hydra/launcher=local`: each job of a sweep in a process of its own, at most `n_jobs` at once
(with `pack=true`, `hydra/launcher=population`: a population of jobs per process).

A job that dies (SIGKILL, out of memory, a segfault) loses only itself: the launcher records it
as lost in `<sweep dir>/launched_jobs.jsonl` and the other jobs go on. (joblib's loky pool, by
contrast, aborts the whole sweep when one worker dies, and the jobs it had not started are never
run.) Every job the sweeper hands over is written to that file before it starts, so the sweep
summary can list jobs that never started too.

Jobs are forked from the sweep process on Linux and spawned elsewhere. A forked job inherits
what the sweep process has done once for all of them: the imports every job needs
(`ppo_lab.job.preload`) and each job's composed config (`ComposedConfigs`). Each job returns its
result to the sweeper through a pipe.
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)
LAUNCHED = "launched_jobs.jsonl"  # one line per job handed over, and one per job lost


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _record(sweep_dir: Path, entry: dict[str, Any]) -> None:
    with (sweep_dir / LAUNCHED).open("a") as out:
        out.write(json.dumps(entry) + "\n")


Job = tuple[int, list[str]]  # (job number, overrides)


class ComposedConfigs:
    """The sweep's `load_sweep_config`, remembering each job's composition and returning copies.

    Hydra's sweeper composes every job once to check the batch before it launches anything;
    packing the jobs into populations and each job's own set-up would compose it twice more, at
    ~0.1 s a composition, packing's on the sweep process alone. Installed on the sweep's config
    loader, every later composition of the same overrides is a copy (~5 ms).
    """

    def __init__(self, compose: Callable[[DictConfig, list[str]], DictConfig]) -> None:
        self.compose = compose
        self.composed: dict[tuple[int, tuple[str, ...]], tuple[DictConfig, DictConfig]] = {}

    def __call__(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        if key not in self.composed:  # the master config is kept so that its id stays unique
            self.composed[key] = (master_config, self.compose(master_config, sweep_overrides))
        composed = self.composed[key][1]
        job_config = copy.deepcopy(composed)
        OmegaConf.copy_cache(from_config=composed, to_config=job_config)  # the same ${now:...}
        return job_config

    @classmethod
    def install(cls, hydra_context: HydraContext) -> None:
        loader: Any = hydra_context.config_loader
        if not isinstance(loader.load_sweep_config, cls):
            loader.load_sweep_config = cls(loader.load_sweep_config)


# Runs a unit of jobs in its process: (jobs, hydra_context, config, task_function) -> returns.
UnitRunner = Callable[[list[Job], HydraContext, DictConfig, TaskFunction], list[JobReturn]]


def job_config(
    hydra_context: HydraContext,
    config: DictConfig,
    idx: int,
    overrides: list[str],
    prefix: str | None = None,
) -> DictConfig:
    """The job's composed config, numbered, its console lines prefixed with `[#idx]` (or
    `[prefix]`); it is also made the current `HydraConfig`."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
        for formatter in (sweep_config.hydra.job_logging.get("formatters") or {}).values():
            if "format" in formatter:  # parallel jobs share the console: say whose line it is
                formatter.format = f"[{prefix or f'#{idx}'}]{formatter.format}"
    HydraConfig.instance().set_config(sweep_config)
    return sweep_config


def run_each(
    jobs: list[Job], hydra_context: HydraContext, config: DictConfig, task_function: TaskFunction
) -> list[JobReturn]:
    """The local launcher's unit: its one job, through Hydra's `run_job`."""
    returns = []
    for idx, overrides in jobs:
        returns.append(
            run_job(
                hydra_context=hydra_context,
                config=job_config(hydra_context, config, idx, overrides),
                task_function=task_function,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
    return returns


def _run_unit(
    conn: Connection,
    jobs: list[Job],
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: Any,
    runner: UnitRunner,
) -> None:
    """In the unit's process: run its jobs, send their JobReturns back."""
    setup_globals()
    Singleton.set_state(singleton_state)
    try:
        returns = runner(jobs, hydra_context, config, task_function)
    except KeyboardInterrupt as err:  # a stop signal: the jobs saved their state and said so
        os._exit(getattr(err, "exit_code", 130))  # no traceback from multiprocessing
    lean = []
    for (idx, _), ret in zip(jobs, returns, strict=True):
        # What sweepers read: status and return value (the job's configs stay in its job dir).
        job_return = JobReturn(
            overrides=ret.overrides,
            status=ret.status,
            _return_value=ret._return_value,
            working_dir=ret.working_dir,
            task_name=ret.task_name,
        )
        try:
            pickle.dumps(job_return)
        except Exception:  # an exception that does not pickle: its text does
            job_return._return_value = RuntimeError(f"job {idx}: {ret._return_value!r}")
        lean.append(job_return)
    conn.send(lean)
    conn.close()


class ProcessLauncher(Launcher):
    def __init__(self, n_jobs: int = -1, pack: bool = False, max_members: int = -1) -> None:
        """n_jobs: processes at once (-1: one per core). pack: train the jobs that differ only
        in seed and coefficients as one population per process (`population_launcher`), at
        most `max_members` each (-1: no limit); else one job per process."""
        self.n_jobs = available_cores() if n_jobs in (-1, 0, None) else int(n_jobs)
        self.pack, self.max_members = bool(pack), int(max_members)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context
        ComposedConfigs.install(hydra_context)  # before the sweeper composes the jobs to check them

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        log.info("Launching %d jobs, %d at a time, into %s", len(jobs), self.n_jobs, sweep_dir)
        for idx, overrides in jobs:
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            _record(sweep_dir, {"job": idx, "overrides": overrides})
        # a study packs its sweep with `pack_sweep: true` (Hydra 1.3 ignores a launcher choice
        # made inside a study file: the primary config's wins)
        if self.pack or bool(OmegaConf.select(self.config, "pack_sweep", default=False)):
            from hydra_plugins.ppo_lab_launcher.population_launcher import (
                population_units,
                run_population,
            )

            units = population_units(jobs, self.hydra_context, self.config, self.max_members)
            results = self._run_units(sweep_dir, units, run_population)
        else:
            results = self._run_units(sweep_dir, [[job] for job in jobs], run_each)
        return [results[idx] for idx, _ in jobs]

    def _run_units(
        self, sweep_dir: Path, units: list[list[Job]], runner: UnitRunner
    ) -> dict[int, JobReturn]:
        """Each unit in a process of its own, `n_jobs` at once; a unit whose process dies
        loses its jobs alone."""
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        if context.get_start_method() == "fork":
            from ppo_lab.job import preload

            assert self.config is not None
            preload(self.config)  # once here instead of once in every forked job
        state = Singleton.get_state()
        results: dict[int, JobReturn] = {}
        pending = list(units)
        running: dict[int, tuple[Any, Connection, list[Job]]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.n_jobs:
                    unit = pending.pop(0)
                    receive, send = context.Pipe(duplex=False)
                    process = context.Process(
                        target=_run_unit,
                        name=f"ppo_lab-job-{unit[0][0]}",
                        args=(
                            send,
                            unit,
                            self.hydra_context,
                            self.config,
                            self.task_function,
                            state,
                            runner,
                        ),
                    )
                    process.start()
                    send.close()
                    running[unit[0][0]] = (process, receive, unit)
                ready = wait(
                    [r for _, r, _ in running.values()]
                    + [p.sentinel for p, _, _ in running.values()]
                )
                for key, (process, receive, unit) in list(running.items()):
                    if receive not in ready and process.sentinel not in ready:
                        continue
                    returned = None
                    if receive.poll():
                        try:
                            returned = receive.recv()
                        except EOFError:
                            returned = None
                    process.join()
                    receive.close()
                    del running[key]
                    for i, (idx, overrides) in enumerate(unit):
                        results[idx] = (
                            returned[i]
                            if returned is not None
                            else self._lost(sweep_dir, idx, overrides, process.exitcode)
                        )
        finally:
            for process, _, _ in running.values():  # the sweep itself was stopped
                process.terminate()
        return results

    @staticmethod
    def _lost(sweep_dir: Path, idx: int, overrides: list[str], exitcode: int | None) -> JobReturn:
        stop_codes = {128 + int(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
        if exitcode in stop_codes:  # stopped by a signal after a checkpoint: its summary says so
            log.warning("job #%d stopped by %s", idx, signal.Signals(exitcode - 128).name)
            return JobReturn(
                overrides=overrides, status=JobStatus.COMPLETED, _return_value=float("nan")
            )
        cause = (
            f"killed by {signal.Signals(-exitcode).name}"
            if exitcode and exitcode < 0
            else f"exited with code {exitcode} before returning"
        )
        log.error("job #%d lost: its process was %s (the other jobs go on)", idx, cause)
        _record(sweep_dir, {"job": idx, "overrides": overrides, "lost": cause})
        return JobReturn(
            overrides=overrides, status=JobStatus.COMPLETED, _return_value=float("nan")
        )
