"""Re-run the jobs of a sweep that did not finish, each in its own job dir, in parallel.

A job is re-run with exactly the overrides it had (`.hydra/overrides.yaml`), as a single run
(`hydra.mode=RUN`) whose output dir is the original job dir. There it resumes from its own
checkpoint, with its metrics cut back to that step (a job that never wrote one starts over),
so the sweep dir ends up complete and the report and summary read it as one sweep. The previous
attempt's summary.json is kept in `<job dir>/attempts/<n>/`. Jobs whose config is invalid are
skipped, saying why: re-running them cannot succeed. `--dry-run` prints the commands instead
(e.g. to submit them to a cluster yourself).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ppo_lab.runs import RunRecord
from ppo_lab.sweep.summary import summarize, write_summary

ATTEMPTS_DIR = "attempts"
INVALID = "invalid_config"


def _quote(value: str) -> str:
    """A Hydra override value that parses back to `value` (quoted when it must be)."""
    plain = all(c.isalnum() or c in "/._-:+~@" for c in value)
    if plain and value:
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rerun_command(run: RunRecord) -> list[str]:
    """`python -m ppo_lab <its overrides> hydra.mode=RUN hydra.run.dir=<its job dir>`."""
    return [
        sys.executable,
        "-m",
        "ppo_lab",
        *run.overrides,
        "hydra.mode=RUN",
        f"hydra.run.dir={_quote(str(run.path.resolve()))}",
    ]


def keep_attempt_summary(job_dir: Path) -> Path | None:
    """Copy the last attempt's summary.json to `attempts/<n>/`; None if it wrote none."""
    summary = job_dir / "summary.json"
    if not summary.exists():
        return None
    attempts = job_dir / ATTEMPTS_DIR
    n = 1 + sum(1 for p in attempts.iterdir() if p.name.isdigit()) if attempts.is_dir() else 1
    target = attempts / str(n)
    target.mkdir(parents=True)
    shutil.copy2(summary, target / "summary.json")
    return target


def default_parallelism() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def rerun_failed(
    sweep_dir: Path,
    *,
    dry_run: bool = False,
    statuses: Sequence[str] | None = None,
    jobs_at_once: int | None = None,
) -> int:
    """Re-run every job of `sweep_dir` that did not finish; returns how many still failed.

    `statuses` limits the re-run to jobs with these statuses (e.g. `failed`); by default every
    status but `finished` and `invalid_config`. `jobs_at_once` defaults to the cores available.
    """
    table = summarize(sweep_dir)
    candidates = [run for run in table.unfinished if statuses is None or run.status in statuses]
    jobs = []
    for run in candidates:
        if run.status == INVALID:
            first = (run.error or "").strip().splitlines()
            print(
                f"skipped {run.path}: invalid_config, a re-run cannot succeed; fix the config "
                f"and run it again ({first[-1].strip() if first else 'see its summary.json'})"
            )
        else:
            jobs.append(run)
    if not jobs:
        print(
            f"{sweep_dir}: no job to re-run ({len(table.runs)} jobs, "
            f"{sum(r.status == 'finished' for r in table.runs)} finished)"
        )
        return 0
    parallel = max(1, jobs_at_once or default_parallelism())
    print(f"re-running {len(jobs)} jobs, {parallel} at a time; each resumes from its checkpoint")
    if dry_run:
        for i, run in enumerate(jobs, 1):
            print(f"[{i}/{len(jobs)}] {run.path} ({run.status}): {' '.join(rerun_command(run))}")
        return 0
    still_failing = 0
    queue = list(enumerate(jobs, 1))
    running: list[tuple[int, RunRecord, subprocess.Popen[bytes]]] = []
    while queue or running:
        while queue and len(running) < parallel:
            i, run = queue.pop(0)
            kept = keep_attempt_summary(run.path)
            print(
                f"[{i}/{len(jobs)}] {run.path} ({run.status})"
                + (f"; previous summary kept in {kept}" if kept else ""),
                flush=True,
            )
            log = (run.path / "rerun.log").open("ab")
            process = subprocess.Popen(
                rerun_command(run), env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT
            )
            log.close()
            running.append((i, run, process))
        time.sleep(0.2)
        for entry in list(running):
            i, run, process = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            ok = process.returncode == 0
            still_failing += not ok
            print(
                f"[{i}/{len(jobs)}] {run.path}: "
                + (
                    "finished"
                    if ok
                    else f"failed again (exit {process.returncode}; see {run.path / 'rerun.log'})"
                ),
                flush=True,
            )
    md, _ = write_summary(sweep_dir, sweep_over=True)
    print(f"{len(jobs) - still_failing} of {len(jobs)} re-runs finished; summary: {md}")
    return still_failing
