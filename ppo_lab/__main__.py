"""`python -m ppo_lab [overrides]`: the Hydra entry point.

    python -m ppo_lab                              # PPO on CartPole, CPU, W&B offline
    python -m ppo_lab loss=dual_clip env=atari     # swap components by name
    python -m ppo_lab -m loss='glob(*)' seed=0,1,2 # an ablation sweep, one job per core
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ppo_lab.job import run_job
from ppo_lab.schema import ConfigError

# Hydra 1.3 merges a launcher preset named like a plugin's own (submitit_local, ray) with the
# plugin's schema and says so in a deprecation notice; our presets spell every field out, so the
# merge changes nothing and the notice is noise.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # the repo's conf/ (editable install)
PRESET_SCHEMA_NOTICE = r"\s*'hydra/launcher/\S+' is validated against ConfigStore schema"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> float | None:
    single_run = HydraConfig.get().mode == RunMode.RUN  # a sweep records errors per job
    try:
        return run_job(cfg)
    except ConfigError as err:
        if single_run:
            sys.exit(f"Invalid configuration, nothing was run:\n{err}")
        raise
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: everything written so far is kept
        if single_run:
            run_dir = HydraConfig.get().runtime.output_dir
            print(f"Interrupted; metrics.jsonl, summary.json and the last checkpoint are in "
                  f"{run_dir}", file=sys.stderr)
            raise SystemExit(130) from None
        raise


def main() -> None:
    """`python -m ppo_lab` and the `ppo-lab` script."""
    warnings.filterwarnings("ignore", message=PRESET_SCHEMA_NOTICE, category=UserWarning)
    app()


if __name__ == "__main__":
    main()
