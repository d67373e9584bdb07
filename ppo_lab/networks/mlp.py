"""MLP actor-critic for flat vector observations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import gymnasium as gym
from torch import nn

from ppo_lab.components import PositiveInt
from ppo_lab.networks.actor_critic import ActorCritic
from ppo_lab.networks.heads import head_for, orthogonal_

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp_encoder(in_features: int, hidden_sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear -> activation blocks with orthogonal init (gain sqrt(2)), features [B, hidden[-1]]."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        linear = orthogonal_(nn.Linear(in_features, width), math.sqrt(2))
        layers += [linear, ACTIVATIONS[activation]()]
        in_features = width
    return nn.Sequential(*layers)


def mlp(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    hidden_sizes: Sequence[PositiveInt] = (64, 64),
    activation: Literal["tanh", "relu", "elu"] = "tanh",
    shared: bool = False,
) -> ActorCritic:
    """Separate (or, with `shared`, one) MLP trunk(s) feeding a policy head and a value head."""
    shape = observation_space.shape
    if not isinstance(observation_space, gym.spaces.Box) or shape is None or len(shape) != 1:
        raise ValueError(
            f"network=mlp expects flat vector observations, got {observation_space}; "
            "for images use network=nature_cnn or network=impala_cnn"
        )
    if not hidden_sizes:
        raise ValueError("network.hidden_sizes must name at least one layer width")
    in_features = shape[0]
    actor = mlp_encoder(in_features, hidden_sizes, activation)
    critic = None if shared else mlp_encoder(in_features, hidden_sizes, activation)
    head = head_for(action_space, hidden_sizes[-1])
    return ActorCritic(actor, critic, head, hidden_sizes[-1])
