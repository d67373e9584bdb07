"""Optimizer factories: the `_target_`s of the `optim` config group (typed, range-checked)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated

import torch

from ppo_lab.schema import NON_NEGATIVE, POSITIVE, Range

Beta = Annotated[float, Range(0, 1, high_open=True)]


def adam(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: Annotated[float, POSITIVE] = 2.5e-4,
    eps: Annotated[float, POSITIVE] = 1e-5,
    betas: Sequence[Beta] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Adam; eps 1e-5 as in the PPO reference implementation."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr, eps=eps, betas=tuple(betas), fused=_can_fuse(params))


def adamw(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: Annotated[float, POSITIVE] = 2.5e-4,
    eps: Annotated[float, POSITIVE] = 1e-5,
    betas: Sequence[Beta] = (0.9, 0.999),
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.01,
) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay)."""
    params = list(params)
    return torch.optim.AdamW(params, lr=lr, eps=eps, betas=tuple(betas), weight_decay=weight_decay,
                             fused=_can_fuse(params))


def _can_fuse(params: list[torch.nn.Parameter]) -> bool:
    """The fused kernel updates all parameters in one call: ~3x faster steps for small networks
    on CPU, where per-op overhead dominates. torch has it for float parameters on CPU and CUDA."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
