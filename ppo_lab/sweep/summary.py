"""The sweep summary: one row per job with its status, the values the sweep varied, its final
metrics and its error, written as `sweep_summary.md` and `sweep_summary.csv` in the sweep dir.

Reads job dirs through `ppo_lab.runs` (summary.json, .hydra/overrides.yaml, hydra.yaml), so it
works on any sweep dir, finished or not, whatever launcher ran it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppo_lab.files import write_text_atomically
from ppo_lab.runs import (
    LOST,
    NEVER_STARTED,
    NO_SUMMARY,
    RunRecord,
    find_job_dirs,
    load_run,
    natural_key,
    relative_name,
    swept_keys,
)

LAUNCHED = "launched_jobs.jsonl"  # written by hydra_plugins/ppo_lab_launcher

FINISHED = "finished"
MARKDOWN_NAME = "sweep_summary.md"
CSV_NAME = "sweep_summary.csv"
# (column, where in summary.json): the figures a job reports at its end
METRIC_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("final_return", ("final_return",)),
    ("eval_return", ("eval_return",)),
    ("global_step", ("global_step",)),
    ("SPS", ("final_metrics", "charts/SPS")),
    ("wall_time_s", ("wall_time_s",)),
)
ERROR_WIDTH = 120  # characters of the error message shown in the markdown table


@dataclass(frozen=True)
class SweepTable:
    """The rows of a sweep summary; `swept` names the columns that differ between jobs."""

    sweep_dir: Path
    runs: tuple[RunRecord, ...]
    swept: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]

    @property
    def counts(self) -> Counter[str]:
        """Jobs per status."""
        return Counter(run.status for run in self.runs)

    @property
    def unfinished(self) -> tuple[RunRecord, ...]:
        """Jobs whose status is not `finished` (failed, interrupted, never started, ...)."""
        return tuple(run for run in self.runs if run.status != FINISHED)


def _lookup(summary: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    value: Any = summary or {}
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _row(run: RunRecord, sweep_dir: Path, swept: Sequence[str]) -> dict[str, Any]:
    factors = run.factors
    row: dict[str, Any] = {"job": relative_name(run.path, [sweep_dir]), "status": run.status}
    row.update({key: factors.get(key, "") for key in swept})
    row.update({name: _lookup(dict(run.summary or {}), path) for name, path in METRIC_COLUMNS})
    seed_returns = (run.summary or {}).get("seed_returns")
    if seed_returns is not None:
        row["seed_returns"] = seed_returns
    row["error"] = run.error or ""
    return row


def launched_jobs(sweep_dir: Path) -> dict[int, dict[str, Any]]:
    """What ppo_lab's launcher recorded: each job handed over ({job, overrides}) and each lost."""
    path = sweep_dir / LAUNCHED
    jobs: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return jobs
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            jobs.setdefault(int(entry["job"]), {}).update(entry)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a kill
    return jobs


def missing_jobs(sweep_dir: Path, found: Sequence[RunRecord]) -> list[RunRecord]:
    """Jobs the launcher was handed that left no job dir: never started, or lost at birth."""
    have = {run.path.resolve() for run in found}
    records = []
    for num, entry in sorted(launched_jobs(sweep_dir).items()):
        path = sweep_dir / str(num)
        if path.resolve() in have:
            continue
        status = LOST if "lost" in entry else NEVER_STARTED
        error = f"process {entry['lost']} before it made its job dir" if "lost" in entry else None
        records.append(
            RunRecord(
                path=path,
                overrides=tuple(entry.get("overrides", ())),
                choices={},
                config={},
                summary={"status": status, "error": error},
                status=status,
                seed=None,
                env_id="?",
            )
        )
    return records


def summarize(sweep_dir: Path, sweep_over: bool = False) -> SweepTable:
    """Read every job under `sweep_dir` into a `SweepTable` (empty when it holds no job).

    `sweep_over`: the sweep has ended (its process writes the final summary), so a job still
    `running` was lost. Jobs handed to ppo_lab's launcher that made no job dir are listed too.
    """
    sweep_dir = Path(sweep_dir)
    found = [load_run(job, sweep_over) for job in find_job_dirs(sweep_dir)]
    lost = {int(num): entry for num, entry in launched_jobs(sweep_dir).items() if "lost" in entry}
    for i, run in enumerate(found):
        num = run.path.name
        if num.isdigit() and int(num) in lost and run.status in (LOST, NO_SUMMARY, "running"):
            error = f"its process was {lost[int(num)]['lost']}"
            found[i] = dataclasses.replace(
                run, status=LOST, summary={**(run.summary or {}), "error": error}
            )
    runs = tuple(
        sorted(
            [*found, *missing_jobs(sweep_dir, found)],
            key=lambda r: [natural_key(p) for p in r.path.relative_to(sweep_dir).parts],
        )
    )
    swept = tuple(swept_keys(runs))
    rows = tuple(_row(run, sweep_dir, swept) for run in runs)
    columns = ["job", "status", *swept, *(name for name, _ in METRIC_COLUMNS)]
    if any("seed_returns" in row for row in rows):
        columns.append("seed_returns")
    columns.append("error")
    return SweepTable(sweep_dir, runs, swept, tuple(columns), rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _short_number(text: str) -> str:
    """`0.0006466422717414558` -> `0.0006466` (sampled values); other text unchanged."""
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.4g}" if any(c in text for c in ".eE") and len(text) > 8 else text


def _markdown_cell(value: Any, column: str) -> str:
    text = _short_number(_cell(value)).replace("\n", " ").replace("|", "\\|")  # one line
    if column == "error" and len(text) > ERROR_WIDTH:
        text = text[: ERROR_WIDTH - 3] + "..."
    return text


def to_markdown(table: SweepTable) -> str:
    """A markdown page: status counts, the re-run command when jobs failed, and the table."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(table.counts.items()))
    lines = [
        f"# Sweep summary: {table.sweep_dir}",
        "",
        f"{len(table.runs)} jobs: {counts or 'none'}.",
        "",
    ]
    if table.swept:
        lines += [f"Swept: {', '.join(table.swept)}.", ""]
    if table.unfinished:
        lines += [
            "Re-run the jobs that did not finish (each in its own job dir):",
            "",
            f"    python -m ppo_lab.sweep rerun-failed {table.sweep_dir}",
            "",
        ]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_markdown_cell(row.get(c), c) for c in table.columns) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: SweepTable) -> str:
    """The table as CSV, full error messages included."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table.columns), lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        writer.writerow({c: _cell(row.get(c)) for c in table.columns})
    return out.getvalue()


def write_summary(sweep_dir: Path, sweep_over: bool = False) -> tuple[Path, Path]:
    """Write `sweep_summary.md` and `sweep_summary.csv` into `sweep_dir`; returns their paths."""
    return write_table(summarize(sweep_dir, sweep_over))


def write_table(table: SweepTable) -> tuple[Path, Path]:
    """Write a summarized table as `sweep_summary.md` and `.csv` into its sweep dir."""
    md, csv_path = Path(table.sweep_dir) / MARKDOWN_NAME, Path(table.sweep_dir) / CSV_NAME
    write_text_atomically(md, to_markdown(table))
    write_text_atomically(csv_path, to_csv(table))
    return md, csv_path
