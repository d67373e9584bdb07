"""envpool: C++ vector envs (classic control, Atari with its standard preprocessing, MuJoCo).

envpool auto-resets on the step *after* an episode ends and ignores that step's action. We take
that reset step at once for the finished envs only (`step(actions[ended], env_id=ended)`), on
the step that ends them, which gives the same-step contract of `VectorEnv` without a wasted
transition. (Not `reset(env_ids)`: in envpool 1.2.5 that restarts the whole Atari game, so with
`episodic_life` every lost life would start a new 5-life game and no game would ever end.)
With Atari's `episodic_life`, a lost life ends an RL episode (terminated) and the auto-reset
continues the same game; the real game score is tracked from `info["reward"]` (unclipped) until
`info["terminated"]` (game over).

Pipelined stepping (`async_groups=G` > 1): the envs are G pools of about N / G envs (env i still
seeded seed + i). The rollout sends a pool its actions (`send`), which its worker thread steps
while the policy acts for the next pool, and takes the pool's results when it needs them
(`recv`): env stepping overlaps inference. Each pool is an envpool pool in sync mode, so a
pool's `recv` returns every one of its envs once, in env order, and the same-step reset above
works within it unchanged. `step` sends every pool, then receives them all.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import envpool
import gymnasium as gym
import numpy as np

from ppo_lab.components import NonNegativeInt, PositiveInt
from ppo_lab.envs.base import EpisodeTracker, Step, joined
from ppo_lab.envs.checks import typed_like_defaults, unknown_id

# envpool's spaces are float64 bounds cast to float32: gymnasium says so on every env; not news.
warnings.filterwarnings("ignore", message=r".*precision lowered by casting", category=UserWarning)
POOL_KEYS = ("num_envs", "batch_size", "num_threads", "seed")  # set by the backend itself


class EnvpoolVectorEnv:
    """envpool gymnasium-API pools behind `VectorEnv`: one pool of N envs, or `async_groups`
    pools stepped in turn with the policy (`send` / `recv`)."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        kwargs: dict[str, Any],
        *,
        num_threads: NonNegativeInt = 1,
        async_groups: PositiveInt = 1,
    ):
        """num_threads: envpool worker threads per pool; 1 is fastest for cheap envs on 2 cores
        (its main thread busy-waits), 0 = envpool's default (one per core). async_groups: pools
        the envs are split into, each stepping while the policy acts for the next (1: one pool,
        stepped and waited for as a whole)."""
        async_groups = min(async_groups, num_envs)  # an evaluation's pool may be smaller
        self._env_id = env_id
        self._num_threads = num_threads
        self._kwargs = kwargs
        self._pools: list[Any] = []
        self.num_envs = num_envs
        bounds = np.linspace(0, num_envs, async_groups + 1).round().astype(int)
        self.groups = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        probe = envpool.make_gymnasium(env_id, num_envs=1, **kwargs)
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        probe.close()
        spec = gym.envs.registry.get(env_id)
        self.reward_threshold = spec.reward_threshold if spec else None
        self._episodes = [EpisodeTracker(g.stop - g.start) for g in self.groups]
        self._sent: list[np.ndarray | None] = [None] * len(self.groups)

    @staticmethod
    def problems_with(env_id: str, kwargs: dict[str, Any], allow: Sequence[str]) -> list[str]:
        """What is wrong with `env_id` and `kwargs`, read off envpool's spec (no env made)."""
        tasks = envpool.list_all_envs()
        if env_id not in tasks:
            return [unknown_id(env_id, tasks, "an envpool task")]
        config = envpool.make_spec(env_id).config
        defaults = dict(zip(config._fields, config, strict=True))
        valid = sorted(set(config._fields) - set(POOL_KEYS))
        problems = [
            f"env.kwargs.{key}: not an option of envpool's {env_id}; valid: {', '.join(valid)}"
            for key in kwargs
            if key not in valid
        ]
        return problems + typed_like_defaults(
            {k: v for k, v in kwargs.items() if k in valid}, defaults
        )

    @staticmethod
    def probe_spaces(env_id: str, kwargs: dict[str, Any]) -> tuple[gym.Space, gym.Space]:
        """(observation space, action space) from envpool's spec, without making a pool."""
        spec = envpool.make_spec(env_id, **kwargs)
        return spec.gymnasium_observation_space, spec.gymnasium_action_space

    def reset(self, seed: int | list[int]) -> np.ndarray:
        # envpool seeds at construction: build the pools here, with the run's seed (env i gets
        # seed + i; a seed per env cannot be given, so a list seeds the pools with its first).
        seed = seed if isinstance(seed, int) else seed[0]
        self.close()
        self._pools = [
            envpool.make_gymnasium(
                self._env_id,
                num_envs=group.stop - group.start,
                seed=seed + group.start,
                num_threads=self._num_threads,
                **self._kwargs,
            )
            for group in self.groups
        ]
        return np.concatenate([pool.reset()[0] for pool in self._pools])

    def step(self, actions: np.ndarray) -> Step:
        for g, group in enumerate(self.groups):
            self.send(g, actions[group])
        if len(self.groups) == 1:
            return self.recv(0)
        parts = [self.recv(g) for g in range(len(self.groups))]
        return joined(parts, [group.start for group in self.groups])

    def send(self, group: int, actions: np.ndarray) -> None:
        """Start stepping pool `group` with its envs' actions; its worker threads run it."""
        self._sent[group] = actions  # its finished envs' auto-reset step takes them again
        self._pools[group].send(actions)

    def recv(self, group: int) -> Step:
        """Pool `group`'s step, its envs in order (indices within the pool), once it is done."""
        pool = self._pools[group]
        obs, reward, terminated, truncated, info = pool.recv(reset=False, return_info=True)
        rl_episode_over = terminated | truncated
        final_obs = None
        if rl_episode_over.any():
            bootstrap = truncated & ~terminated
            if bootstrap.any():
                final_obs = obs[bootstrap].copy()
            ended = np.flatnonzero(rl_episode_over)
            # envpool's own auto-reset step for these envs (their actions are ignored)
            reset_obs, _, _, _, reset_info = pool.step(self._sent[group][ended], ended)
            obs[reset_info["env_id"]] = reset_obs
        # Atari: score the real game (unclipped reward, all lives), not the RL episode.
        game_reward = info.get("reward", reward)
        game_over = rl_episode_over
        if "terminated" in info:
            game_over = info["terminated"].astype(bool) | truncated
        episodes = self._episodes[group].update(game_reward, game_over)
        return Step(
            obs, reward.astype(np.float32, copy=False), terminated, truncated, final_obs, episodes
        )

    def close(self) -> None:
        for pool in self._pools:
            pool.close()
        self._pools = []
