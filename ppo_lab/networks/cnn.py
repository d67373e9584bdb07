"""Convolutional actor-critics for image observations (Atari, Procgen, pixel gymnasium envs).

    nature_cnn   Mnih et al. 2015 (DQN, Nature): the encoder of the PPO Atari reference results
    impala_cnn   Espeholt et al. 2018 (IMPALA): a deeper residual encoder (Procgen's standard)

Both take uint8 (or float) images [B, C, H, W] (channels-first, envpool's layout) or [B, H, W, C]
(channels-last, most gymnasium pixel envs; detected from the space's shape) and share one trunk
between the policy and the value head by default (CleanRL `ppo_atari*.py`); `shared=false` builds
a second encoder for the critic. uint8 pixels are scaled to [0, 1] inside the encoder, so rollout
buffers keep the 4x smaller uint8 observations. Convolutions run channels-last (NHWC in memory:
weights and the scaled pixels), which oneDNN and cuDNN convolve faster than NCHW (the Nature CNN's
update step: 1.7x on this CPU); the logical layout, and so the model's math, is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import torch
from torch import Tensor, nn

from ppo_lab.components import PositiveInt
from ppo_lab.networks.actor_critic import ActorCritic
from ppo_lab.networks.heads import head_for, orthogonal_

Width = PositiveInt


def image_layout(space: gym.Space, network: str) -> tuple[int, int, int, bool]:
    """(channels, height, width, channels_last) of an image observation space.

    Raises ValueError, naming the network to use instead, for anything that is not a 3-D Box.
    Channels-last is assumed when the last axis is a plausible channel count (<= 4) and the first
    is not, e.g. [96, 96, 3]; Atari's frame stack [4, 84, 84] is channels-first.
    """
    shape = getattr(space, "shape", None)
    if not isinstance(space, gym.spaces.Box) or shape is None or len(shape) != 3:
        raise ValueError(
            f"network={network} expects image observations [C, H, W] or [H, W, C], got {space}; "
            "for flat vector observations use network=mlp"
        )
    channels_last = shape[-1] <= 4 < shape[0]
    c, h, w = (shape[2], shape[0], shape[1]) if channels_last else shape
    return int(c), int(h), int(w), channels_last


class Pixels(nn.Module):
    """Observation -> float [B, C, H, W] (stored channels-last), uint8 scaled by 1/255."""

    memory_format = torch.channels_last  # NCHW under torch.func.vmap (`pixels_for_vmap`)

    def __init__(self, channels_last: bool):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.permute(0, 3, 1, 2) if self.channels_last else obs
        x = x.contiguous(memory_format=self.memory_format)  # moved while 1 byte per pixel
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()  # pixels in [0, 1]


def pixels_for_vmap(module: nn.Module) -> None:
    """`module`'s images stay NCHW: torch.func.vmap (a population's members) cannot lay a tensor
    out channels-last. Its convolutions still run, on the stacked channels-last weights."""
    for m in module.modules():
        if isinstance(m, Pixels):
            m.memory_format = torch.contiguous_format


def _feature_size(convs: nn.Module, c: int, h: int, w: int, network: str) -> int:
    """Flattened size of `convs` on a [1, C, H, W] input; ValueError if the image is too small."""
    try:
        with torch.no_grad():
            return int(convs(torch.zeros(1, c, h, w)).numel())
    except RuntimeError as err:
        raise ValueError(
            f"network={network}: images of {h}x{w} pixels are too small for its convolutions "
            f"({err}); resize the observations (e.g. 84x84) or use network=impala_cnn"
        ) from err


def nature_encoder(c: int, h: int, w: int, channels_last: bool, features: int) -> nn.Sequential:
    """Mnih et al. 2015: [B, C, H, W] -> [B, features], orthogonal init with gain sqrt(2).

    conv 32 8x8 stride 4 -> ReLU -> conv 64 4x4 stride 2 -> ReLU -> conv 64 3x3 stride 1
    -> ReLU -> flatten (64 x 7 x 7 for 84x84) -> linear `features` (512) -> ReLU
    """
    gain = math.sqrt(2)
    convs = nn.Sequential(
        orthogonal_(nn.Conv2d(c, 32, 8, stride=4), gain),
        nn.ReLU(),
        orthogonal_(nn.Conv2d(32, 64, 4, stride=2), gain),
        nn.ReLU(),
        orthogonal_(nn.Conv2d(64, 64, 3, stride=1), gain),
        nn.ReLU(),
        nn.Flatten(),
    )
    flat = _feature_size(convs, c, h, w, "nature_cnn")
    return nn.Sequential(
        Pixels(channels_last), convs, orthogonal_(nn.Linear(flat, features), gain), nn.ReLU()
    )


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))), two 3x3 convolutions keeping the shape [B, C, H, W]."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


def impala_stack(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3 -> max-pool 3x3 stride 2 (halves H and W, rounding up) -> 2 residual blocks."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.MaxPool2d(3, stride=2, padding=1),
        ResidualBlock(out_channels),
        ResidualBlock(out_channels),
    )


def impala_encoder(
    c: int, h: int, w: int, channels_last: bool, channels: Sequence[int], features: int
) -> nn.Sequential:
    """Espeholt et al. 2018: [B, C, H, W] -> [B, features].

        stacks of (conv -> max-pool -> 2 residual blocks) with `channels` (16, 32, 32)
        -> ReLU -> flatten (32 x 11 x 11 for 84x84) -> linear `features` (256) -> ReLU

    The convolutions keep PyTorch's default init, as CleanRL's `ppo_procgen.py`; the linear layer
    is orthogonal with gain sqrt(2).
    """
    stacks: list[nn.Module] = []
    in_channels = c
    for out_channels in channels:
        stacks.append(impala_stack(in_channels, out_channels))
        in_channels = out_channels
    convs = nn.Sequential(*stacks, nn.ReLU(), nn.Flatten())
    flat = _feature_size(convs, c, h, w, "impala_cnn")
    return nn.Sequential(
        Pixels(channels_last),
        convs,
        orthogonal_(nn.Linear(flat, features), math.sqrt(2)),
        nn.ReLU(),
    )


def _actor_critic(
    encoder: nn.Module, critic: nn.Module | None, action_space: gym.Space, features: int
) -> ActorCritic:
    """Heads on top of the encoder(s): policy gain 0.01, value gain 1 (see `heads`); the
    convolution weights stored channels-last, as `Pixels` hands over the images."""
    agent = ActorCritic(encoder, critic, head_for(action_space, features), features)
    return agent.to(memory_format=torch.channels_last)


def nature_cnn(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    features: Width = 512,
    shared: bool = True,
) -> ActorCritic:
    """Nature CNN actor-critic. shared: one encoder for both heads (else a copy for the critic)."""
    c, h, w, channels_last = image_layout(observation_space, "nature_cnn")
    actor = nature_encoder(c, h, w, channels_last, features)
    critic = None if shared else nature_encoder(c, h, w, channels_last, features)
    return _actor_critic(actor, critic, action_space, features)


def impala_cnn(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    channels: Sequence[Width] = (16, 32, 32),
    features: Width = 256,
    shared: bool = True,
) -> ActorCritic:
    """IMPALA residual CNN actor-critic; one stack per entry of `channels`."""
    c, h, w, channels_last = image_layout(observation_space, "impala_cnn")
    if not channels:
        raise ValueError("network.channels must name at least one stack's channel count")
    actor = impala_encoder(c, h, w, channels_last, channels, features)
    critic = None if shared else impala_encoder(c, h, w, channels_last, channels, features)
    return _actor_critic(actor, critic, action_space, features)
