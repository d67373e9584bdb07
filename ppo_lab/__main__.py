"""`python -m ppo_lab [overrides]`: the Hydra entry point.

    python -m ppo_lab                              # PPO on CartPole, CPU, W&B offline
    python -m ppo_lab loss=dual_clip env=atari     # swap components by name
    python -m ppo_lab -m loss='glob(*)' seed=0,1,2 # an ablation sweep
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ppo_lab.job import run_job
from ppo_lab.launchers import prepare_launch
from ppo_lab.schema import ConfigError


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    try:
        return run_job(cfg)
    except ConfigError as err:
        if HydraConfig.get().mode == RunMode.RUN:  # a sweep records it per job and goes on
            sys.exit(f"Invalid configuration, nothing was run:\n{err}")
        raise


def main() -> None:
    """`python -m ppo_lab` and the `ppo-lab` script: launcher fallbacks, then the Hydra app."""
    prepare_launch(sys.argv)
    app()


if __name__ == "__main__":
    main()
