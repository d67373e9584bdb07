"""gymnasium vector envs (sync: all envs in this process; async: one process per env).

gymnasium >= 1.0 auto-resets on the step *after* an episode ends by default ("next-step"), which
would hand the learner one transition whose action was ignored. We build the vector env in
SAME_STEP mode instead: the step that ends an episode already returns the reset observation and
puts the true final observation in `info["final_obs"]`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from ppo_lab.envs.base import EpisodeTracker, Step
from ppo_lab.envs.checks import signature_problems, unknown_id, user_factory

MAKE_KWARGS = ("max_episode_steps", "autoreset", "disable_env_checker", "render_mode")


def env_constructor(env_id: str, kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    """A thunk making one env: a registered gymnasium id, or `module:Class` of the user's own."""
    if ":" in env_id and not gym.envs.registry.get(env_id):
        module_name, _, attr = env_id.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return lambda: factory(**kwargs)
    return lambda: _make(env_id, kwargs)


def _make(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    with warnings.catch_warnings():  # "HalfCheetah-v4 is out of date": v4 is the benchmarked one
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        return gym.make(env_id, **kwargs)


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

    @staticmethod
    def problems_with(env_id: str, kwargs: dict[str, Any], allow: Sequence[str]) -> list[str]:
        """What is wrong with `env_id` and `kwargs`, found without making an env."""
        spec = gym.envs.registry.get(env_id)
        if spec is None and ":" in env_id:
            factory, problems = user_factory(env_id, allow)
            return problems or signature_problems(factory, kwargs, ())
        if spec is None:
            return [
                unknown_id(
                    env_id,
                    gym.envs.registry,
                    "a registered gymnasium id (or `module:Class` of your own env)",
                )
            ]
        problems = []
        steps = kwargs.get("max_episode_steps")
        if steps is not None and (
            not isinstance(steps, int) or isinstance(steps, bool) or steps < 1
        ):
            problems.append(f"env.kwargs.max_episode_steps={steps!r}: expected an int >= 1")
        entry = spec.entry_point
        if isinstance(entry, str):
            try:
                entry = gym.envs.registration.load_env_creator(entry)
            except (ImportError, AttributeError) as err:  # the id's own package is missing
                return [
                    *problems,
                    f"env.id={env_id!r}: registered, but it cannot be imported "
                    f"({spec.entry_point}: {type(err).__name__}: {err})",
                ]
        return problems + signature_problems(entry, kwargs, MAKE_KWARGS)

    @staticmethod
    def probe_spaces(env_id: str, kwargs: dict[str, Any]) -> tuple[gym.Space, gym.Space]:
        """(observation space, action space) of one env, made and closed at once."""
        env = env_constructor(env_id, kwargs)()
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    def reset(self, seed: int | list[int]) -> np.ndarray:
        self._envs.action_space.seed(seed if isinstance(seed, int) else seed[0])
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
