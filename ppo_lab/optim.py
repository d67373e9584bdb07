"""Optimizer factories: the `_target_`s of the `optim` config group (typed, range-checked)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated

import annotated_types as at
import torch

from ppo_lab.components import NonNegative, Positive

Beta = Annotated[float, at.Interval(ge=0, lt=1)]
Betas = Annotated[Sequence[Beta], at.Len(2, 2)]  # (beta1, beta2)
LearningRate = Annotated[float, at.Interval(gt=0, le=1)]


def adam(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: LearningRate = 2.5e-4,
    eps: Positive = 1e-5,
    betas: Betas = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Adam; eps 1e-5 as in the PPO reference implementation."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr, eps=eps, betas=tuple(betas), fused=_can_fuse(params))


def adamw(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: LearningRate = 2.5e-4,
    eps: Positive = 1e-5,
    betas: Betas = (0.9, 0.999),
    weight_decay: NonNegative = 0.01,
) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay)."""
    params = list(params)
    return torch.optim.AdamW(
        params,
        lr=lr,
        eps=eps,
        betas=tuple(betas),
        weight_decay=weight_decay,
        fused=_can_fuse(params),
    )


def _can_fuse(params: list[torch.nn.Parameter]) -> bool:
    """The fused kernel updates all parameters in one call: ~3x faster steps for small networks
    on CPU, where per-op overhead dominates. torch has it for float parameters on CPU and CUDA."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
