"""Helpers shared by the tests: one way to compose configs, as `python -m ppo_lab` does."""

from __future__ import annotations

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
