"""Where metrics go: `metrics.jsonl` in the run dir always, and optionally a W&B run.

The `logger` config group picks the tracker (`wandb` or `none`); the JSONL file is written either
way, so W&B is never the only copy of a metric.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Literal, Protocol

from ppo_lab.files import write_text_atomically


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self, summary: dict[str, Any], exit_code: int) -> None: ...


class MetricsFile:
    """Appends one JSON object per log event to `metrics.jsonl`, flushed at once (crash-safe).

    `keep_until_step`: on a resume, the rows after the checkpoint's step (written between the
    checkpoint and the kill) are cut first, so the history has neither gaps nor duplicates; a
    torn last line (a kill mid-write) goes too. None keeps nothing: a fresh start.
    """

    def __init__(self, path: Path, keep_until_step: int | None):
        self.path = path
        rows = [] if keep_until_step is None else read_rows_until(path, keep_until_step)
        write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in rows))
        self._file = path.open("a", buffering=1)  # line-buffered: each event reaches disk whole

    def write(self, record: dict[str, Any]) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self._file.write(json.dumps(clean) + "\n")

    def close(self) -> None:
        self._file.close()


def read_rows_until(path: Path, step: int) -> list[dict[str, Any]]:
    """The complete rows of a metrics file with `global_step <= step`, in order."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill: everything after it is newer
            break
        if isinstance(row, dict) and isinstance(row.get("global_step"), int):
            if row["global_step"] > step:
                break
            rows.append(row)
    return rows


def run_id(run_dir: Path) -> str:
    """The W&B run id of the run in `run_dir`: made on its first start, kept in the dir, so a
    resumed run continues the same W&B run (online) or writes under the same id (offline, for
    `wandb sync` to stitch)."""
    path = run_dir / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    new = secrets.token_hex(4)
    write_text_atomically(path, new + "\n")
    return new


RUN_ID_FILE = "wandb_run_id"


class NoTracker:
    """`logger=none`: no W&B run."""

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        choices: dict[str, str],
        run_name: str,
        run_id: str,
    ):
        pass

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def finish(self, summary: dict[str, Any], exit_code: int) -> None:
        pass


def default_group(run_dir: Path, choices: dict[str, str]) -> str | None:
    """The W&B group of a run whose `logger.group` is null.

    The study (`experiment=<name>`) or search (`sweep=<name>`) it belongs to; else, for a job of
    a plain multirun, its sweep dir (the nearest parent holding Hydra's `multirun.yaml`, also
    found when `python -m ppo_lab.sweep rerun-failed` re-runs the job there); else None.
    """
    for group in ("experiment", "sweep"):
        if choices.get(group):
            return choices[group]
    for parent in Path(run_dir).resolve().parents:
        if (parent / "multirun.yaml").is_file():
            return "/".join(parent.parts[-2:])
    return None


class WandbTracker:
    """A W&B run with the resolved config and every group's choice (what groups an ablation).

    Jobs of one study or sweep share a W&B group (`default_group`), are tagged with the choice of
    every config group, and are named by their overrides (what differs between them).

    Offline runs land in `<run_dir>/wandb/offline-run-*` for a later `wandb sync`.
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        choices: dict[str, str],
        run_name: str,
        run_id: str,
        *,
        project: str = "ppo_lab",
        entity: str | None = None,
        mode: Literal["online", "offline", "disabled", "shared"] = "offline",
        group: str | None = None,
        tags: list[str] | None = None,
        name: str | None = None,
    ):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=project,
            entity=entity,
            mode=mode,
            group=group or default_group(run_dir, choices),
            name=name or run_name,
            tags=[*(tags or []), *(f"{g}={c}" for g, c in sorted(choices.items()))],
            dir=str(run_dir),
            config={**config, "choices": choices},
            id=run_id,
            resume="allow",  # a resumed run (same id) continues the same W&B run
            reinit="create_new",  # the members of a population are runs of one process
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, summary: dict[str, Any], exit_code: int) -> None:
        for key, value in summary.items():
            if isinstance(value, (int, float, str, bool)) or value is None:
                self.run.summary[key] = value
        self.run.finish(exit_code=exit_code)
