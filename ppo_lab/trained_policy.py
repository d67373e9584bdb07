"""A trained policy from its checkpoint, with the running statistics it was trained with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from ppo_lab.checkpoint import load_checkpoint, space_from_plain
from ppo_lab.components import build
from ppo_lab.envs import env_actions
from ppo_lab.networks import ActorCritic
from ppo_lab.normalization import Normalizers


@dataclass
class TrainedPolicy:
    """The actor-critic and its observation statistics, acting on raw env observations: what the
    evaluation runs during training and what `load_policy` gives back afterwards."""

    agent: ActorCritic
    norm: Normalizers
    action_space: gym.Space
    device: torch.device

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of raw observations [N, *obs], as the env takes them."""
        x = torch.as_tensor(obs, device=self.device)
        if x.is_floating_point():  # float64 envs (MuJoCo) act like training saw them: float32
            x = x.float()
        x = self.norm.observation(x)
        return env_actions(self.agent.act(x, deterministic=deterministic), self.action_space)


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> TrainedPolicy:
    """Rebuild the network of `<run dir>/checkpoint.pt` and load its weights and statistics."""
    device = torch.device(device)
    state = load_checkpoint(Path(path), map_location=device)
    cfg = OmegaConf.create(state["config"])
    obs_space = space_from_plain(state["observation_space"])
    action_space = space_from_plain(state["action_space"])
    agent = build(cfg.network, observation_space=obs_space, action_space=action_space)
    agent.load_state_dict(state["model"])
    norm: Normalizers = build(
        cfg.normalization,
        obs_shape=tuple(obs_space.shape or ()),
        num_envs=cfg.num_envs,
        gamma=cfg.gamma,
        device=device,
    )
    norm.load_state_dict(state["normalizers"])
    return TrainedPolicy(agent.to(device).eval(), norm, action_space, device)
