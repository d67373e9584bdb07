"""One Hydra job: validate, train, and leave a `summary.json` whatever happens.

summary.json is written when the job starts (status "running") and rewritten at the end with
status finished | invalid_config | failed | interrupted, the error, the job's overrides and the
chosen entry of every config group, so a sweep can be summarised even when jobs crash.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ppo_lab.config import GROUPS, validate
from ppo_lab.train import train


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic JSON write: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _terminate_cleanly(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured training job; returns the final return (the sweepers' objective)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    choices = {g: str(hydra_cfg.runtime.choices.get(g)) for g in GROUPS
               if g in hydra_cfg.runtime.choices}
    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith("hydra")]
    run_name = ",".join(overrides) or f"{choices.get('env')}-{choices.get('loss')}"
    summary: dict[str, Any] = {
        "status": "running", "error": None, "env_id": cfg.get("env", {}).get("id"),
        "seed": cfg.get("seed"), "overrides": overrides, "choices": choices,
        "total_timesteps": cfg.get("total_timesteps"), "run_dir": str(run_dir),
    }
    summary_path = run_dir / "summary.json"
    write_json(summary_path, summary)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_cleanly)  # flush logs and W&B on SIGTERM
    started = time.perf_counter()
    try:
        settings = validate(cfg)  # before any environment is built
        summary.update(train(settings, run_dir, choices, run_name))
        summary["status"] = "finished"
    except KeyboardInterrupt as err:
        summary.update(status="interrupted", error=f"interrupted ({err})")
        raise
    except Exception as err:
        from ppo_lab.schema import ConfigError

        summary["status"] = "invalid_config" if isinstance(err, ConfigError) else "failed"
        summary["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        summary["wall_time_s"] = round(time.perf_counter() - started, 3)
        write_json(summary_path, summary)
    return summary.get("final_return")
