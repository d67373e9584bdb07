"""Atomic checkpoints: a crash mid-write never corrupts the previous file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from ppo_lab.components import ConfigError
from ppo_lab.config import Settings
from ppo_lab.files import replace_atomically
from ppo_lab.networks import ActorCritic
from ppo_lab.normalization import Normalizers

# Settings a resumed run may change: they do not alter what the checkpoint's training was.
RESUMABLE_CHANGES = frozenset(
    {
        "resume",
        "total_timesteps",
        "eval_episodes",
        "eval_interval",
        "eval_video",
        "checkpoint_interval",
        "logger",
        "device",
        "torch_threads",
    }
)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` via a temp file and an atomic rename."""
    replace_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=False)


def rng_state() -> dict[str, Any]:
    """The random generators a run draws from: torch CPU (and CUDA), numpy."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())  # map_location may have moved it to the GPU
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def checkpoint_state(
    settings: Settings,
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    norm: Normalizers,
    global_step: int,
    update_index: int,
    kl_beta: float | None,
    recent_returns: list[float],
    observation_space: gym.Space,
    action_space: gym.Space,
) -> dict[str, Any]:
    """Everything needed to resume training or to run the policy as it was trained."""
    return {
        "model": agent.state_dict(),
        "optimizer": optimizer.state_dict(),
        "normalizers": norm.state_dict(),
        "global_step": global_step,
        "update": update_index,
        "kl_beta": kl_beta,
        "recent_returns": recent_returns,
        "rng": rng_state(),
        "config": OmegaConf.to_container(settings.cfg, resolve=True),
        "observation_space": observation_space,
        "action_space": action_space,
    }


def check_resumable(state: dict[str, Any], settings: Settings, path: Path) -> None:
    """A checkpoint is only continued by the configuration that wrote it."""
    config = OmegaConf.to_container(settings.cfg, resolve=True)
    assert isinstance(config, dict)
    differs = sorted(
        k
        for k in config.keys() | state["config"].keys()
        if k not in RESUMABLE_CHANGES and config.get(k) != state["config"].get(k)
    )
    if differs:
        raise ConfigError(
            [
                f"{path} was written by a run whose {', '.join(differs)} differ; "
                "use a fresh run dir (hydra.run.dir=...) or resume=false"
            ]
        )
