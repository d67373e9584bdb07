"""Helpers shared by the tests: one way to compose configs, as `python -m ppo_lab` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def compose_config(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
    """The config `python -m ppo_lab <overrides>` composes (with `hydra` when asked)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def group_entries(group: str) -> list[str]:
    """Every entry of a config group: the group folder is the registry."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def vector_env(backend: str, num_envs: int, id: str = "CartPole-v1", kwargs: dict | None = None):
    """`num_envs` copies of `id` through the `env/backend=<backend>` entry, as a run builds them."""
    from ppo_lab.components import build
    from ppo_lab.envs import make_vector_env

    entry = compose_config(f"env/backend={backend}").env.backend
    return make_vector_env(num_envs, id=id, backend=build(entry), kwargs=kwargs)


def run_module(
    module: str, args: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` as a user runs it (W&B off; the tests' env module allowed)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "disabled",
        "PPO_LAB_ALLOW": "tests.sweep_helpers",  # the test env module: the user allows it
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
