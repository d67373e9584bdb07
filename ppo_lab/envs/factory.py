"""`make_vector_env`: the `_target_` of every entry of the `env` config group."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ppo_lab.envs.base import VectorEnv
from ppo_lab.schema import Range

Backend = Literal["gymnasium_sync", "gymnasium_async", "envpool"]
BACKENDS: tuple[str, ...] = ("gymnasium_sync", "gymnasium_async", "envpool")


def make_vector_env(
    num_envs: int,
    *,
    id: str,  # shadows the builtin: `env.id=Pong-v5` is the key researchers write
    backend: Backend = "gymnasium_sync",
    kwargs: dict[str, Any] | None = None,
    envpool_threads: Annotated[int, Range(0, None)] = 1,
) -> VectorEnv:
    """Build `num_envs` copies of env `id` behind the `VectorEnv` interface.

    id:              a gymnasium id (`CartPole-v1`), an envpool task id (`Breakout-v5`), or for
                     the gymnasium backends `module:Class` of the user's own env.
    backend:         gymnasium_sync (one process), gymnasium_async (a process per env) or envpool.
    kwargs:          keyword arguments of the env constructor (gym.make / envpool.make).
    envpool_threads: envpool worker threads; 1 is fastest for cheap envs on 2 cores (its main
                     thread busy-waits), 0 = envpool's default (one per core).
    """
    kwargs = dict(kwargs or {})
    if backend == "envpool":
        from ppo_lab.envs.envpool_backend import EnvpoolVectorEnv

        return EnvpoolVectorEnv(id, num_envs, num_threads=envpool_threads, kwargs=kwargs)
    from ppo_lab.envs.gymnasium_backend import GymnasiumVectorEnv

    return GymnasiumVectorEnv(
        id, num_envs, asynchronous=backend == "gymnasium_async", kwargs=kwargs
    )
