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

from ppo_lab.components import ConfigError
from ppo_lab.job import run_job

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
            print(
                f"Interrupted; metrics.jsonl, summary.json and the last checkpoint are in "
                f"{run_dir}",
                file=sys.stderr,
            )
            raise SystemExit(130) from None
        raise


def sub_groups(conf_dir: Path = CONF_DIR) -> set[str]:
    """Config groups nested in a group entry: `loss/policy`, `loss/value`, `env/backend`, ..."""
    return {
        f"{d.parent.name}/{d.name}"
        for d in conf_dir.glob("*/*/")
        if any(d.glob("*.yaml")) and d.parent.name != "hydra"
    }


def dotted_group_overrides(args: list[str], groups: set[str]) -> list[str]:
    """`loss.value=clipped` -> `loss/value=clipped`: Hydra spells a sub-group choice with `/`;
    the dotted spelling (a key path) would replace the entry by a string. Values stay as given."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        path = key.replace(".", "/")
        if sep and not key.startswith(("+", "~")) and path in groups and value[:1] not in "{[":
            arg = f"{path}={value}"
        out.append(arg)
    return out


def main() -> None:
    """`python -m ppo_lab` and the `ppo-lab` script."""
    warnings.filterwarnings("ignore", message=PRESET_SCHEMA_NOTICE, category=UserWarning)
    sys.argv[1:] = dotted_group_overrides(sys.argv[1:], sub_groups())
    app()


if __name__ == "__main__":
    main()
