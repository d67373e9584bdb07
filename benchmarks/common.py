"""Shared measuring pieces of the benchmark scripts (run them as `python benchmarks/<name>.py`)."""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import envpool
import gymnasium as gym
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ppo_lab.components import build

CONF = Path(__file__).resolve().parents[1] / "conf"


# CleanRL's `ppo.py` on CartPole: 4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4, entropy
# coefficient 0.01 (the recipe dropped: these are the whole settings).
CLEANRL_CARTPOLE = [
    "recipe=none",
    "num_envs=4",
    "num_steps=128",
    "update_epochs=4",
    "num_minibatches=4",
    "optim.lr=2.5e-4",
    "loss.ent_coef=0.01",
]


def compose_config(*overrides: str) -> DictConfig:
    """The app's config with W&B and the final evaluation off (they are not what is timed)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["logger=none", "eval_episodes=0", *overrides])


def random_actions(space: gym.Space, steps: int, num_envs: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, (steps, num_envs))
    return rng.uniform(space.low, space.high, (steps, num_envs, *space.shape))


def stepping_sps(step: Callable[[np.ndarray], Any], actions: np.ndarray) -> float:
    """Env steps per second of `step` over a [steps, num_envs, ...] array of actions."""
    start = time.perf_counter()
    for a in actions:
        step(a)
    return actions.shape[0] * actions.shape[1] / (time.perf_counter() - start)


def raw_envpool_sps(cfg: DictConfig, steps: int) -> float:
    """envpool alone, configured as the env entry configures it: the limit of any loop."""
    threads = cfg.env.backend.get("num_threads", 1)
    envs = envpool.make_gymnasium(
        cfg.env.id, num_envs=cfg.num_envs, seed=0, num_threads=threads, **cfg.env.kwargs
    )
    envs.reset()
    sps = stepping_sps(envs.step, random_actions(envs.action_space, steps, cfg.num_envs))
    envs.close()
    return sps


def raw_env_sps(overrides: list[str], steps: int) -> float:
    """The environment library alone, with the env entry's options and env count (its notices,
    e.g. gymnasium's on HalfCheetah-v4's age, silenced: the table is the output)."""
    cfg = compose_config(*overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "envpool" in cfg.env.backend._target_.lower():
            return raw_envpool_sps(cfg, steps)
        envs = gym.make_vec(
            cfg.env.id, num_envs=cfg.num_envs, vectorization_mode="sync", **cfg.env.kwargs
        )
    envs.reset(seed=0)
    sps = stepping_sps(envs.step, random_actions(envs.single_action_space, steps, cfg.num_envs))
    envs.close()
    return sps


def backend_sps(cfg: DictConfig, steps: int) -> float:
    """The ppo_lab backend of `cfg.env` as the loop drives it (same-step reset, bookkeeping)."""
    envs = build(cfg.env, num_envs=cfg.num_envs)
    envs.reset(seed=0)
    sps = stepping_sps(envs.step, random_actions(envs.single_action_space, steps, cfg.num_envs))
    envs.close()
    return sps


class Timers:
    """Wall time spent inside wrapped functions, by phase; nested calls count once."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._depth = 0

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        original: Callable[..., Any] | None = getattr(owner, name, None)
        if original is None:  # an older ppo_lab (measuring before/after)
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return original(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self._depth -= 1

        setattr(owner, name, timed)
