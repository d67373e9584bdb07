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


class Pipelined(Protocol):
    """A vector env whose envs step in groups (`groups`, slices of the env indices): `send`
    starts a group's step with its actions and returns; `recv` waits for it and returns that
    group's `Step`, indices within the group. The rollout acts for one group while another
    steps (the envpool backend with `async_groups` > 1)."""

    groups: list[slice]

    def send(self, group: int, actions: np.ndarray) -> None: ...

    def recv(self, group: int) -> Step: ...


class InTurn:
    """Any `VectorEnv` as a pipeline of one group: `send` keeps the actions, `recv` steps."""

    def __init__(self, envs: VectorEnv):
        self.envs = envs
        self.groups = [slice(0, envs.num_envs)]
        self._actions: np.ndarray | None = None

    def send(self, group: int, actions: np.ndarray) -> None:
        self._actions = actions

    def recv(self, group: int) -> Step:
        assert self._actions is not None, "recv before send"
        return self.envs.step(self._actions)


def pipelined(envs: VectorEnv) -> Pipelined:
    """The envs' own groups when they step in several, else the envs as one group."""
    groups = getattr(envs, "groups", None)
    if groups is not None and len(groups) > 1:
        return envs  # type: ignore[return-value]  # it has send and recv
    return InTurn(envs)


def joined(parts: list[Step], starts: list[int]) -> Step:
    """The groups' steps as one, env indices offset by each group's first env `starts`."""
    finals = [p.final_obs for p in parts if p.final_obs is not None]
    episodes = [
        (p.episodes, start)
        for p, start in zip(parts, starts, strict=True)
        if p.episodes is not None
    ]
    return Step(
        np.concatenate([p.obs for p in parts]),
        np.concatenate([p.reward for p in parts]),
        np.concatenate([p.terminated for p in parts]),
        np.concatenate([p.truncated for p in parts]),
        np.concatenate(finals) if finals else None,
        EpisodeStats(
            np.concatenate([e.returns for e, _ in episodes]),
            np.concatenate([e.lengths for e, _ in episodes]),
            np.concatenate([e.env_ids + start for e, start in episodes]),
        )
        if episodes
        else None,
    )


def env_actions(actions: Tensor, space: gym.Space) -> np.ndarray:
    """Actions as the env takes them; Gaussian samples are clipped to the bounds only here."""
    out = actions.cpu().numpy()  # zero-copy on CPU
    if isinstance(space, gym.spaces.Box):
        out = np.clip(out, space.low, space.high)
    return out
