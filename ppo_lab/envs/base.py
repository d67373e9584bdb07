"""The vector-env contract every backend implements, and the episode bookkeeping they share."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import gymnasium as gym
import numpy as np
from torch import Tensor


class Step(NamedTuple):
    """One step of N environments. Arrays are [N, ...] and owned by the backend until the next step.

    obs:        observation to act on next; where an episode ended this is already the first
                observation of the next episode (same-step auto-reset).
    reward:     [N] float32 reward of this transition.
    terminated: [N] bool, the episode reached a terminal state: do not bootstrap.
    truncated:  [N] bool, the episode was cut (time limit): bootstrap from V(final_obs).
    final_obs:  [K, ...] true last observations of the K truncated envs, in the order of
                np.flatnonzero(truncated & ~terminated); None when K == 0.
    episodes:   returns and lengths of the episodes that finished on this step.
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray | None
    episodes: EpisodeStats | None


class EpisodeStats(NamedTuple):
    """Undiscounted return and length of finished episodes (real game score, unclipped), and the
    env each one ran in."""

    returns: np.ndarray
    lengths: np.ndarray
    env_ids: np.ndarray


class VectorEnv(Protocol):
    num_envs: int
    single_observation_space: gym.Space
    single_action_space: gym.Space
    reward_threshold: float | None

    def reset(self, seed: int | list[int]) -> np.ndarray:
        """Start every env: env i seeded seed + i, or seed[i] where the backend seeds per env
        (gymnasium; envpool seeds the pool with seed[0])."""
        ...

    def step(self, actions: np.ndarray) -> Step: ...

    def close(self) -> None: ...


class EpisodeTracker:
    """Running undiscounted return and length per env; reports them when an episode ends."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def update(self, reward: np.ndarray, episode_over: np.ndarray) -> EpisodeStats | None:
        self.returns += reward
        self.lengths += 1
        if not episode_over.any():
            return None
        ended = np.flatnonzero(episode_over)
        stats = EpisodeStats(self.returns[ended].copy(), self.lengths[ended].copy(), ended)
        self.returns[ended] = 0.0
        self.lengths[ended] = 0
        return stats


def env_actions(actions: Tensor, space: gym.Space) -> np.ndarray:
    """Actions as the env takes them; Gaussian samples are clipped to the bounds only here."""
    out = actions.cpu().numpy()  # zero-copy on CPU
    if isinstance(space, gym.spaces.Box):
        out = np.clip(out, space.low, space.high)
    return out
