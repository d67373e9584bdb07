"""Re-run the jobs of a sweep that did not finish, each into its own job dir.

A job is re-run with exactly the overrides it had (`.hydra/overrides.yaml`), as a single run
(`hydra.mode=RUN`) whose output dir is the original job dir, so the sweep dir ends up complete
and the report and summary read it as one sweep. What the failed attempt left (summary.json,
metrics.jsonl, logs, checkpoints, W&B files) is moved to `<job dir>/failed_attempts/<n>/` first.
Jobs run here, one after another; `--dry-run` prints the commands instead (e.g. to submit them
to a cluster yourself).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ppo_lab.runs import RunRecord
from ppo_lab.sweep.summary import summarize

ATTEMPTS_DIR = "failed_attempts"
KEEP = (".hydra", ATTEMPTS_DIR)  # what stays in the job dir when an attempt is moved aside


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


def move_attempt_aside(job_dir: Path) -> Path | None:
    """Move the outputs of the last attempt into `failed_attempts/<n>/`; None if there were none."""
    leftovers = [p for p in job_dir.iterdir() if p.name not in KEEP]
    if not leftovers:
        return None
    attempts = job_dir / ATTEMPTS_DIR
    n = 1 + sum(1 for p in attempts.iterdir() if p.name.isdigit()) if attempts.is_dir() else 1
    target = attempts / str(n)
    target.mkdir(parents=True)
    for path in leftovers:
        shutil.move(str(path), target / path.name)
    return target


def rerun_failed(
    sweep_dir: Path, *, dry_run: bool = False, statuses: Sequence[str] | None = None
) -> int:
    """Re-run every job of `sweep_dir` that did not finish; returns how many still failed.

    `statuses` limits the re-run to jobs with these statuses (e.g. `failed`); by default every
    status but `finished` (so also `running`: a job killed before it could record its end).
    """
    table = summarize(sweep_dir)
    jobs = [run for run in table.unfinished if statuses is None or run.status in statuses]
    if not jobs:
        print(f"{sweep_dir}: no job to re-run ({len(table.runs)} jobs, all finished)")
        return 0
    still_failing = 0
    for i, run in enumerate(jobs, 1):
        command = rerun_command(run)
        print(f"[{i}/{len(jobs)}] {run.path} ({run.status}): {' '.join(command[1:])}", flush=True)
        if dry_run:
            continue
        moved = move_attempt_aside(run.path)
        if moved is not None:
            print(f"    previous attempt moved to {moved}", flush=True)
        result = subprocess.run(command, env=dict(os.environ), check=False)
        still_failing += result.returncode != 0
    if not dry_run:
        from ppo_lab.sweep.summary import write_summary

        md, _ = write_summary(sweep_dir)
        print(f"{len(jobs) - still_failing} of {len(jobs)} re-runs finished; summary: {md}")
    return still_failing
