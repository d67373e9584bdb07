"""Read the run directories a Hydra multirun of ppo_lab leaves behind (local files, never W&B).

A sweep dir (`multirun/<date>/<time>/`) holds one job dir per run; a job dir is any directory with
`.hydra/overrides.yaml`, so a custom `hydra.sweep.subdir` that nests them is found too. Per job:

    .hydra/overrides.yaml   ["loss=dual_clip", "seed=1"]     this job's overrides
    .hydra/config.yaml      the resolved job config
    .hydra/hydra.yaml       hydra.runtime.choices: {group: entry}
    metrics.jsonl           {"global_step": int, "time": s, "charts/episodic_return": ..., ...}
    summary.json            {"status": "finished", "env_id": ..., "final_return": ..., ...}

`load_runs` reads them into `RunRecord`s and names each run's *variant*: the values it takes on
the factors the sweep varied, `seed` aside (the replicate axis) and the env aside (the task axis).

Two layouts inside a job dir are read on request (`load_runs(..., seeds=True, attempts=False)`,
what the report does): a multi-seed trial (`seeds_per_trial > 1`, Optuna searches) trains each
seed in `<job dir>/seed_<s>/` with its own summary.json and metrics.jsonl, and is read as one run
per seed; `<job dir>/attempts/<n>/` holds an earlier attempt's summary.json kept by
`rerun-failed`, and is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

REPLICATE_KEY = "seed"
# Factors that name the task (environment) rather than a variant of the method.
TASK_KEYS = frozenset({"env", "env.id", "env.env_id", "env.task_id", "env_id"})
NO_SUMMARY = "no summary.json"
LOST = "lost"  # its process died without recording an end (SIGKILL, out of memory)
NEVER_STARTED = "never started"  # handed to the launcher, but no job dir was made
ALL_RUNS = "all runs"  # the variant name when the sweep varied nothing but seeds and envs
SEED_DIR = re.compile(r"^seed_(-?\d+)$")  # <job dir>/seed_<s>/: one seed of a multi-seed trial
ATTEMPTS_DIR = "attempts"  # <job dir>/attempts/<n>/: an earlier attempt kept by rerun-failed
# libyaml's safe loader when PyYAML was built with it: the same safe tags, ~10x faster than the
# pure-Python one (a 40-job sweep's summary reads 120 files)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SweepError(ValueError):
    """A path or a set of runs the tools cannot use; the message says what was expected."""


class Series(NamedTuple):
    """One metric of one run: values logged at increasing environment steps."""

    steps: np.ndarray  # (n,) int64, environment steps (global_step)
    values: np.ndarray  # (n,) float64


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a job dir says about one run. `variant` is set by `load_runs` (it needs the sweep)."""

    path: Path
    overrides: tuple[str, ...]
    choices: Mapping[str, str]
    config: Mapping[str, Any]
    summary: Mapping[str, Any] | None
    status: str
    seed: int | None
    env_id: str
    variant: str = ALL_RUNS

    @property
    def factors(self) -> dict[str, str]:
        """Every group choice and override of this run as `{key: value}` (overrides win)."""
        return {**self.choices, **dict(filter(None, map(parse_override, self.overrides)))}

    @property
    def error(self) -> str | None:
        """The error message from summary.json, if any."""
        return (self.summary or {}).get("error")


def parse_override(override: str) -> tuple[str, str] | None:
    """`"+loss.clip_eps=0.1"` -> `("loss.clip_eps", "0.1")`; `"~logger"` -> `("logger", "~")`.

    Hydra's own keys (`hydra.*`) are not factors of a run and give None.
    """
    text = override.strip()
    deleted = text.startswith("~")
    key, _, value = text.lstrip("+~").partition("=")
    key = key.strip()
    if not key or key.startswith("hydra"):
        return None
    return key, "~" if deleted else value.strip()


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a metric value must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def find_job_dirs(root: Path) -> list[Path]:
    """Every job dir under `root` (or `root` itself), in natural order (2 before 10)."""
    root = Path(root)
    found = {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    return sorted(found, key=lambda path: [natural_key(p) for p in path.relative_to(root).parts])


def natural_key(text: str) -> tuple[int, int | str]:
    """A sort key that puts numbers first and in numeric order: "2" before "10" before "a"."""
    return (0, int(text)) if text.isdigit() else (1, text)


def read_yaml(path: Path) -> Any:
    """The parsed YAML file, or None when it is missing or unreadable."""
    try:
        return yaml.load(path.read_text(), Loader=SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _of_type(value: Any, kind: type) -> Any:
    """`value` if it is a `kind`, else an empty `kind` (a file that parsed to something odd)."""
    return value if isinstance(value, kind) else kind()


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _env_id(
    summary: Mapping[str, Any], config: Mapping[str, Any], choices: Mapping[str, str]
) -> str:
    if summary.get("env_id"):
        return str(summary["env_id"])
    env = config.get("env")
    if isinstance(env, Mapping):
        for key in ("id", "env_id", "task_id"):
            if env.get(key):
                return str(env[key])
    return str(choices.get("env") or "unknown env")


def process_alive(host: Any, pid: Any) -> bool | None:
    """Whether process `pid` on `host` still runs; None when that cannot be told from here."""
    if host != socket.gethostname() or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_status(summary: Mapping[str, Any] | None, has_summary_file: bool, sweep_over: bool) -> str:
    """A job's status; `running` becomes `lost` once its process is gone (or the sweep is over).

    A job dir without a summary.json is a job that died before its first write.
    """
    if summary is None:
        if has_summary_file:
            return "unreadable summary"
        return LOST if sweep_over else NO_SUMMARY
    status = str(summary.get("status") or "unknown")
    if status == "running":
        alive = process_alive(summary.get("host"), summary.get("pid"))
        if alive is False or (sweep_over and not alive):
            return LOST
    return status


def load_run(job_dir: Path, sweep_over: bool = False) -> RunRecord:
    """Read one job dir. Missing or unreadable files give empty fields, never an exception.

    `sweep_over`: the sweep that ran it has ended, so a job still `running` was lost.
    """
    job_dir = Path(job_dir)
    overrides = _of_type(read_yaml(job_dir / ".hydra" / "overrides.yaml"), list)
    config = _of_type(read_yaml(job_dir / ".hydra" / "config.yaml"), dict)
    hydra = _of_type(read_yaml(job_dir / ".hydra" / "hydra.yaml"), dict)
    summary = _of_type(_read_json(job_dir / "summary.json"), dict) or None
    runtime = _of_type(_of_type(hydra.get("hydra"), dict).get("runtime"), dict)
    choices = _of_type(runtime.get("choices") or (summary or {}).get("choices"), dict)
    choices = {  # group choices, not Hydra's own nor specialisations placed into an entry (`@`)
        str(k): str(v)
        for k, v in choices.items()
        if not str(k).startswith("hydra") and "@" not in str(k)
    }
    factors = dict(filter(None, map(parse_override, map(str, overrides))))
    seed = (summary or {}).get("seed", config.get(REPLICATE_KEY, factors.get(REPLICATE_KEY)))
    status = job_status(summary, (job_dir / "summary.json").exists(), sweep_over)
    return RunRecord(
        path=job_dir,
        overrides=tuple(map(str, overrides)),
        choices=choices,
        config=config,
        summary=summary,
        status=status,
        seed=_as_int(seed),
        env_id=_env_id(summary or {}, config, choices),
    )


def seed_dirs(job_dir: Path) -> list[tuple[int, Path]]:
    """The `seed_<s>/` dirs of a multi-seed trial, as (seed, dir) in seed order."""
    try:
        entries = list(Path(job_dir).iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        match = SEED_DIR.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def seed_runs(run: RunRecord, sweep_over: bool = False) -> list[RunRecord]:
    """A multi-seed trial as one run per `seed_<s>/` dir (the trial's overrides and config with
    `seed=<s>`, the seed dir's own summary.json); any other job as itself."""
    dirs = seed_dirs(run.path)
    if not dirs:
        return [run]
    overrides = [o for o in run.overrides if (parse_override(o) or ("",))[0] != REPLICATE_KEY]
    records = []
    for seed, path in dirs:
        summary = _of_type(_read_json(path / "summary.json"), dict) or None
        config = {**run.config, REPLICATE_KEY: seed}
        records.append(
            RunRecord(
                path=path,
                overrides=(*overrides, f"{REPLICATE_KEY}={seed}"),
                choices=run.choices,
                config=config,
                summary=summary,
                status=job_status(summary, (path / "summary.json").exists(), sweep_over),
                seed=seed,
                env_id=_env_id(summary or run.summary or {}, config, run.choices),
            )
        )
    return records


def in_attempts_dir(job_dir: Path, root: Path) -> bool:
    """Whether `job_dir` lies under an `attempts/` dir below `root` (an earlier attempt's copy)."""
    try:
        parts = Path(job_dir).relative_to(root).parts
    except ValueError:
        return False
    return ATTEMPTS_DIR in parts


def differing_keys(
    rows: Sequence[Mapping[str, Any]], keys: Iterable[str] | None = None, missing: Any = None
) -> list[str]:
    """The keys (of `keys`, default: every key of `rows`) whose value is not the same in all
    `rows`, sorted; a row without a key counts as having the value `missing`."""
    if keys is None:
        keys = {key for row in rows for key in row}
    return sorted(k for k in keys if len({row.get(k, missing) for row in rows}) > 1)


def variant_keys(runs: Sequence[RunRecord]) -> list[str]:
    """The factors that tell variants apart: those whose value differs between runs on one env.

    Left out: `seed` (replicates), the env (tasks), and, when several envs were swept, any factor
    that is fixed within each env (an env recipe picking its network is not a variant). Compare
    `swept_keys`, every factor that differs, and `config_differences`, resolved config values.
    """
    factors = [run.factors for run in runs]
    keys = {k for f in factors for k in f} - {REPLICATE_KEY} - TASK_KEYS
    per_env: dict[str, list[dict[str, str]]] = {}
    for run, f in zip(runs, factors, strict=True):
        per_env.setdefault(run.env_id, []).append(f)
    varying = {k for group in per_env.values() for k in differing_keys(group, keys)}
    return sorted(without_implied(varying))


def without_implied(keys: set[str]) -> set[str]:
    """Drop sub-group choices (`loss/policy`) whose group (`loss`) varies too: the group's entry
    chose them. A sub-group swept on its own (`loss/value=mse,huber`) stays."""
    return {k for k in keys if not ("/" in k and k.split("/", 1)[0] in keys)}


def swept_keys(runs: Sequence[RunRecord]) -> list[str]:
    """Every factor (group choice or override) whose value differs across `runs`, for a table of
    jobs: method factors first (sorted), then the task (env) factors, then the seed.

    Unlike `variant_keys`, the seed, the env and factors fixed within each env are kept.
    """

    def order(key: str) -> tuple[int, str]:
        return (2 if key == REPLICATE_KEY else 1 if key in TASK_KEYS else 0, key)

    return sorted(without_implied(set(differing_keys([run.factors for run in runs]))), key=order)


def config_differences(runs: Sequence[RunRecord]) -> dict[str, dict[str, str]]:
    """Resolved config keys whose values differ between variants: `{key: {variant: values}}`.

    A variant's value is every value its runs took (joined by " / "); the seed and the env id
    (replicate and task axes) are left out. Unlike `variant_keys` this reads `.hydra/config.yaml`
    (so it shows what a group choice set), not the overrides.
    """
    per_variant: dict[str, dict[str, set[str]]] = {}
    for run in runs:
        cell = per_variant.setdefault(run.variant, {})
        for key, value in _flatten(run.config).items():
            cell.setdefault(key, set()).add(value)
    shown = {
        variant: {key: " / ".join(sorted(values)) for key, values in cell.items()}
        for variant, cell in per_variant.items()
    }
    keys = {k for cell in shown.values() for k in cell} - {REPLICATE_KEY} - TASK_KEYS
    return {
        key: {variant: cell.get(key, "—") for variant, cell in shown.items()}
        for key in differing_keys(list(shown.values()), keys, missing="—")
    }


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value, default=str) if not isinstance(value, str) else value
    return out


def variant_of(run: RunRecord, keys: Sequence[str]) -> str:
    """The variant name of a run: `"loss=dual_clip, optim.lr=3e-4"` over the varied `keys`."""
    factors = run.factors
    return ", ".join(f"{k}={factors.get(k, 'unset')}" for k in keys) or ALL_RUNS


def load_runs(
    paths: Iterable[Path], *, seeds: bool = False, attempts: bool = True
) -> list[RunRecord]:
    """Load every job under each sweep dir in `paths` and name each run's variant.

    `seeds=True`: a multi-seed trial becomes one run per `seed_<s>/` dir (`seed_runs`).
    `attempts=False`: job dirs under an `attempts/` dir (earlier attempts kept by rerun-failed)
    are skipped. Raises SweepError for a path that does not exist or holds no job dir.
    """
    runs: list[RunRecord] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise SweepError(f"{path}: no such directory")
        jobs = find_job_dirs(path)
        if not attempts:
            jobs = [job for job in jobs if not in_attempts_dir(job, path)]
        if not jobs:
            raise SweepError(
                f"{path} is not a sweep dir: no job directory with .hydra/overrides.yaml under it "
                "(pass the dir of a multirun, e.g. multirun/<date>/<time>)"
            )
        new = [job for job in jobs if job.resolve() not in seen]  # a sweep passed twice
        seen.update(job.resolve() for job in new)
        for record in map(load_run, new):
            runs.extend(seed_runs(record) if seeds else [record])
    keys = variant_keys(runs)
    return [dataclasses.replace(run, variant=variant_of(run, keys)) for run in runs]


def read_metrics(path: Path) -> dict[str, Series]:
    """Read `metrics.jsonl` into one `Series` per metric name.

    Tolerant: unreadable lines (a crash's truncated last line), lines without an integer
    `global_step`, and non-numeric or non-finite values are skipped. A step that goes back (a
    run resumed from an earlier checkpoint) drops the earlier values at and after it; equal steps
    are kept (several episodes logged at one step).
    """
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    columns: dict[str, tuple[list[int], list[float]]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        step = record.get("global_step") if isinstance(record, dict) else None
        if not is_number(step):
            continue
        for name, value in record.items():
            if name == "global_step" or not is_number(value):
                continue
            steps, values = columns.setdefault(name, ([], []))
            if steps and step < steps[-1]:  # resumed from a checkpoint: the later log wins
                while steps and steps[-1] >= step:
                    steps.pop()
                    values.pop()
            steps.append(int(step))
            values.append(float(value))
    return {
        name: Series(np.asarray(s, dtype=np.int64), np.asarray(v, dtype=np.float64))
        for name, (s, v) in columns.items()
    }


def run_length(run: RunRecord, metrics: Mapping[str, Series]) -> int:
    """Environment steps a run reached: summary.json's `global_step`, else the last logged step."""
    step = (run.summary or {}).get("global_step")
    if is_number(step):
        return int(step)
    return max((int(s.steps[-1]) for s in metrics.values() if len(s.steps)), default=0)


def relative_name(path: Path, roots: Sequence[Path]) -> str:
    """`path` relative to the first of `roots` that contains it (for tables), else as is."""
    for root in roots:
        try:
            return str(Path(path).relative_to(root)) or "."
        except ValueError:
            continue
    return str(path)
