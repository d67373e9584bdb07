"""The rollout buffer: preallocated [T, N, ...] tensors on the training device, filled in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor


def observation_dtype(space: gym.Space) -> torch.dtype:
    """uint8 images stay uint8 (4x less memory; the network divides by 255), the rest float32."""
    return torch.uint8 if space.dtype == np.uint8 else torch.float32


def action_shape_dtype(space: gym.Space) -> tuple[tuple[int, ...], torch.dtype]:
    if isinstance(space, gym.spaces.Discrete):
        return (), torch.int64
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(space.shape), torch.int64
    return tuple(space.shape), torch.float32


class RolloutValues(NamedTuple):
    """A policy and critic evaluated on a rollout's states and actions, [T, N] each.

    logprobs     log pi(a_t|s_t) of the actions taken
    values       V(s_t), in return units
    next_values  V(s_{t+1}) of the true next state: the final observation where an episode was
                 truncated at t, the bootstrap state after the rollout at t = T-1
    """

    logprobs: Tensor
    values: Tensor
    next_values: Tensor


@dataclass
class HostSteps:
    """Rewards and episode ends as the envs return them, [T, N] numpy arrays in host memory.

    The collector writes each step with a numpy copy (no torch op, no device transfer per step)
    and `Rollout.upload` moves the whole rollout to the device in three copies. On CUDA the arrays
    view pinned memory, so those copies are asynchronous.
    """

    rewards: np.ndarray  # float32
    terminated: np.ndarray  # bool
    done: np.ndarray  # bool: terminated or truncated

    @classmethod
    def allocate(cls, num_steps: int, num_envs: int, pin: bool) -> HostSteps:
        def empty(dtype: torch.dtype) -> np.ndarray:
            return torch.zeros((num_steps, num_envs), dtype=dtype, pin_memory=pin).numpy()

        return cls(empty(torch.float32), empty(torch.bool), empty(torch.bool))

    def record(
        self,
        t: int,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        envs: slice = slice(None),
    ) -> None:
        """Step t of the envs `envs` (all by default)."""
        self.rewards[t, envs] = reward
        self.terminated[t, envs] = terminated
        np.logical_or(terminated, truncated, out=self.done[t, envs])


@dataclass
class Rollout:
    """T steps of N envs. Filled by the collector, read by the estimator and the update.

    obs[t]         observation the policy acted on at t (normalized when that is on) [T, N, *obs]
    actions[t]     action taken (raw sample, before clipping to the action bounds) [T, N, *act]
    rewards[t]     reward used for learning (scaled when reward scaling is on) [T, N]
    terminated[t]  1.0 where s_{t+1} is terminal [T, N]
    done[t]        1.0 where the episode ended at t (terminated or truncated) [T, N]

    What a policy and critic make of it (log-probs, values) is a `RolloutValues`, computed
    afterwards in one batched pass (`ppo_lab.train.evaluate_rollout`).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: Tensor
    done: Tensor
    last_obs: Tensor  # s_T, the observation after the last step [N, *obs]
    host: HostSteps  # per-step env outputs staged in host memory, moved once per rollout
    truncations: list[tuple[int, Tensor, Tensor]] = field(default_factory=list)
    """(t, env indices [K], final observations [K, *obs]) of episodes truncated at step t."""
    acted: tuple[Tensor, Tensor] | None = None
    """(log pi_old(a_t|s_t), raw critic output V(s_t)) [T, N], recorded while acting by a
    shared-trunk network (`ActorCritic.act_and_evaluate`); None: computed afterwards."""

    @classmethod
    def allocate(
        cls,
        num_steps: int,
        num_envs: int,
        observation_space: gym.Space,
        action_space: gym.Space,
        device: torch.device,
        record_while_acting: bool = False,
    ) -> Rollout:
        """Zeroed buffers; `record_while_acting` adds `acted` (for shared-trunk networks)."""
        obs_shape = tuple(observation_space.shape or ())
        act_shape, act_dtype = action_shape_dtype(action_space)
        obs_dtype = observation_dtype(observation_space)
        steps = (num_steps, num_envs)

        def zeros(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            obs=zeros((*steps, *obs_shape), obs_dtype),
            actions=zeros((*steps, *act_shape), act_dtype),
            rewards=zeros(steps),
            terminated=zeros(steps),
            done=zeros(steps),
            last_obs=zeros((num_envs, *obs_shape), obs_dtype),
            host=HostSteps.allocate(num_steps, num_envs, pin=device.type == "cuda"),
            acted=(zeros(steps), zeros(steps)) if record_while_acting else None,
        )

    def upload(self) -> None:
        """Copy the staged rewards and episode ends to the device tensors (once per rollout)."""
        self.rewards.copy_(torch.from_numpy(self.host.rewards), non_blocking=True)
        self.terminated.copy_(torch.from_numpy(self.host.terminated), non_blocking=True)
        self.done.copy_(torch.from_numpy(self.host.done), non_blocking=True)

    @property
    def num_steps(self) -> int:
        return self.obs.shape[0]

    def flat(self, tensor: Tensor) -> Tensor:
        """[T, N, ...] -> [T * N, ...] (a view)."""
        return tensor.reshape(-1, *tensor.shape[2:])
