"""gymnasium vector envs (sync: all envs in this process; async: one process per env).

gymnasium >= 1.0 auto-resets on the step *after* an episode ends by default ("next-step"), which
would hand the learner one transition whose action was ignored. We build the vector env in
SAME_STEP mode instead: the step that ends an episode already returns the reset observation and
puts the true final observation in `info["final_obs"]`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from ppo_lab.envs.base import EpisodeTracker, Step


def env_constructor(env_id: str, kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    """A thunk making one env: a registered gymnasium id, or `module:Class` of the user's own."""
    if ":" in env_id and not gym.envs.registry.get(env_id):
        module_name, _, attr = env_id.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return lambda: factory(**kwargs)
    return lambda: gym.make(env_id, **kwargs)


class GymnasiumVectorEnv:
    """A gymnasium Sync/AsyncVectorEnv in same-step auto-reset mode, behind `VectorEnv`."""

    def __init__(
        self, env_id: str, num_envs: int, kwargs: dict[str, Any], *, asynchronous: bool = False
    ):
        """asynchronous: one process per env (for slow envs); else all envs in this process."""
        make_one = env_constructor(env_id, kwargs)
        vector_cls = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
        # copy=False: the loop copies observations into its own buffer right away.
        self._envs = vector_cls(
            [make_one] * num_envs, copy=False, autoreset_mode=AutoresetMode.SAME_STEP
        )
        self.num_envs = num_envs
        self.single_observation_space = self._envs.single_observation_space
        self.single_action_space = self._envs.single_action_space
        spec = gym.envs.registry.get(env_id)
        self.reward_threshold = spec.reward_threshold if spec else None
        self._episodes = EpisodeTracker(num_envs)

    def reset(self, seed: int) -> np.ndarray:
        self._envs.action_space.seed(seed)
        obs, _ = self._envs.reset(seed=seed)
        return obs

    def step(self, actions: np.ndarray) -> Step:
        obs, reward, terminated, truncated, info = self._envs.step(actions)
        episode_over = terminated | truncated
        final_obs = None
        bootstrap = truncated & ~terminated
        if bootstrap.any():
            final_obs = np.stack([info["final_obs"][i] for i in np.flatnonzero(bootstrap)])
        episodes = self._episodes.update(reward, episode_over)
        return Step(
            obs, reward.astype(np.float32, copy=False), terminated, truncated, final_obs, episodes
        )

    def close(self) -> None:
        self._envs.close()
