"""Test envs for sweeps: a CartPole that crashes inside training, after config validation.

`env.id=tests.sweep_helpers:flaky_cartpole +env.kwargs.crash_seed=20` makes exactly the job
whose vector env seeds env 20 (job seed 20 with 8 envs: seeds 20..27) raise after `crash_after`
steps, so one job of a sweep fails while the others finish. With PPO_LAB_TEST_NO_CRASH=1 in
the environment it never crashes: a re-run of the failed job then succeeds.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import TimeLimit

NO_CRASH_VAR = "PPO_LAB_TEST_NO_CRASH"


class FlakyCartPole(CartPoleEnv):
    """CartPole-v1 dynamics; raises RuntimeError after `crash_after` steps if it was seeded with
    `crash_seed` (unless PPO_LAB_TEST_NO_CRASH is set); with `signal_name`, signals its process."""

    def __init__(
        self,
        crash_seed: int | None = None,
        crash_after: int = 100,
        signal_name: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.crash_seed, self.crash_after, self.signal_name = crash_seed, crash_after, signal_name
        self.armed, self.steps = False, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:
            self.armed = seed == self.crash_seed and not os.environ.get(NO_CRASH_VAR)
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        self.steps += 1
        if self.armed and self.steps > self.crash_after:
            if self.signal_name:  # the OS or the cluster signals the job's process
                self.armed = False
                os.kill(os.getpid(), getattr(signal, self.signal_name))
                return super().step(action)
            raise RuntimeError(
                f"injected failure after {self.crash_after} steps (crash_seed={self.crash_seed})"
            )
        return super().step(action)


def flaky_cartpole(**kwargs: Any) -> TimeLimit:
    """A `FlakyCartPole` with CartPole-v1's 500-step time limit."""
    return TimeLimit(FlakyCartPole(**kwargs), max_episode_steps=500)


class NanRewardCartPole(CartPoleEnv):
    """CartPole-v1 whose `nan_at`-th step (counted per env) returns a NaN reward."""

    def __init__(self, nan_at: int = 100, **kwargs: Any):
        super().__init__(**kwargs)
        self.nan_at, self.steps = nan_at, 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        obs, reward, terminated, truncated, info = super().step(action)
        return (
            obs,
            float("nan") if self.steps == self.nan_at else reward,
            terminated,
            truncated,
            info,
        )


def nan_reward_cartpole(**kwargs: Any) -> TimeLimit:
    """A `NanRewardCartPole` with CartPole-v1's 500-step time limit."""
    return TimeLimit(NanRewardCartPole(**kwargs), max_episode_steps=500)
