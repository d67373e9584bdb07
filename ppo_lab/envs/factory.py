"""`make_vector_env`: the `_target_` of every entry of the `env` config group.

An env entry says which environment (`id`, constructor `kwargs`) and, as its `backend` sub-entry
(`conf/env/backend/`), which vector-env implementation steps it:

    _target_: ppo_lab.envs.make_vector_env
    _partial_: true
    id: CartPole-v1
    kwargs: {}
    backend:                      # env/backend=envpool swaps it
      _target_: ppo_lab.envs.gymnasium_backend.GymnasiumVectorEnv
      _partial_: true
      asynchronous: false
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ppo_lab.envs.base import VectorEnv

Backend = Callable[[str, int, dict[str, Any]], VectorEnv]


def make_vector_env(
    num_envs: int,
    *,
    id: str,  # shadows the builtin: `env.id=Pong-v5` is the key researchers write
    backend: Backend,
    kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """`num_envs` copies of env `id` behind the `VectorEnv` interface, stepped by `backend`.

    id:      a gymnasium id (`CartPole-v1`), an envpool task id (`Breakout-v5`), or for the
             gymnasium backend `module:Class` of the user's own env.
    backend: a built `env.backend` entry: `(id, num_envs, kwargs) -> VectorEnv`.
    kwargs:  keyword arguments of the env constructor (gym.make / envpool.make).
    """
    return backend(id, num_envs, dict(kwargs or {}))
