"""gymnasium envs behind `VectorEnv` (sync: all envs in this process; async: one process per env).

gymnasium >= 1.0 auto-resets on the step *after* an episode ends by default ("next-step"), which
would hand the learner one transition whose action was ignored. We step in SAME_STEP mode instead:
the step that ends an episode already returns the reset observation and puts the true final
observation in `info["final_obs"]`. Async envs are gymnasium's AsyncVectorEnv in that mode; sync
envs are `SameStepEnvs`, the same loop as SyncVectorEnv's without its per-step info arrays.
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


class SameStepEnvs:
    """gymnasium envs stepped one after another in this process, each reset on the step that ends
    its episode: the subset of `SyncVectorEnv(autoreset_mode=SAME_STEP)` this backend uses, with
    the same results (env i seeded seed + i, the same reset calls).

    SyncVectorEnv also gathers every env's info dict into arrays on every step, which nothing here
    reads. Without that, the env stepping share of training fell from 23% to 18-19% for CartPole
    with CleanRL's 4 envs and from 25% to 21-22% for HalfCheetah's 1 (`benchmarks/speed.py`).
    `step` returns the batched observations in one array it reuses (owned by the caller until the
    next step), and `info["final_obs"][i]` for each env i whose episode ended.
    """

    def __init__(self, make_one: Callable[[], gym.Env], num_envs: int):
        self.envs = [make_one() for _ in range(num_envs)]
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self._obs = gym.vector.utils.create_empty_array(
            self.single_observation_space, num_envs, fn=np.zeros
        )
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._terminated = np.zeros(num_envs, dtype=np.bool_)
        self._truncated = np.zeros(num_envs, dtype=np.bool_)

    def reset(self, *, seed: int | list[int]) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = seed if isinstance(seed, list) else [seed + i for i in range(len(self.envs))]
        for i, (env, env_seed) in enumerate(zip(self.envs, seeds, strict=True)):
            self._obs[i], _ = env.reset(seed=env_seed)
        return self._obs, {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        final_obs: dict[int, Any] = {}
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            obs, self._rewards[i], self._terminated[i], self._truncated[i], _ = env.step(action)
            if self._terminated[i] or self._truncated[i]:
                final_obs[i] = obs
                obs, _ = env.reset()
            self._obs[i] = obs
        info = {"final_obs": final_obs} if final_obs else {}
        return self._obs, self._rewards, self._terminated.copy(), self._truncated.copy(), info

    def close(self) -> None:
        for env in self.envs:
            env.close()


class GymnasiumVectorEnv:
    """gymnasium envs in same-step auto-reset mode, behind `VectorEnv`: `SameStepEnvs`, or an
    AsyncVectorEnv."""

    def __init__(
        self, env_id: str, num_envs: int, kwargs: dict[str, Any], *, asynchronous: bool = False
    ):
        """asynchronous: one process per env (for slow envs); else all envs in this process."""
        make_one = env_constructor(env_id, kwargs)
        self._envs: SameStepEnvs | gym.vector.AsyncVectorEnv
        if asynchronous:  # copy=False: the loop copies observations into its own buffer at once
            self._envs = gym.vector.AsyncVectorEnv(
                [make_one] * num_envs, copy=False, autoreset_mode=AutoresetMode.SAME_STEP
            )
        else:
            self._envs = SameStepEnvs(make_one, num_envs)
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
