"""Optimizer factories: the `_target_`s of the `optim` config group (typed, range-checked), and
`FlatAdam`, the Adam they build for small networks.

A run's parameters are one flat tensor (`flat_params`). For a small network Adam's arithmetic is
negligible and the cost is around it: `torch.optim.Adam` spends ~40 us of Python around its one
fused kernel, and its first use imports `torch._dynamo` (every `torch.optim.Optimizer` method is
wrapped to keep dynamo out: 1.3 s of a CartPole job that trains in ~6 s). `FlatAdam` does the
seven tensor ops itself. From `FUSED_FROM_PARAMETERS` on, memory traffic decides instead, and
torch's fused kernel, one pass over the moments where the seven ops take seven, is faster: the
factories hand a CNN to it. Both write `torch.optim.Adam`'s (`AdamW`'s) state dicts, keys and
all, so checkpoints move between them either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Protocol

import annotated_types as at
import torch
from torch import Tensor

from ppo_lab.components import NonNegative, Positive

# One step on one core (2026-12-04): at CartPole's 9k parameters FlatAdam takes 27-34 us, torch's
# fused Adam 36-47; at 30k 51 against 55-58; at 100k 124 against 80-85; at Atari's 1.7M 2.8-3.1 ms
# against 1.1-1.4.
FUSED_FROM_PARAMETERS = 50_000

Beta = Annotated[float, at.Interval(ge=0, lt=1)]
Betas = Annotated[Sequence[Beta], at.Len(2, 2)]  # (beta1, beta2)
LearningRate = Annotated[float, at.Interval(gt=0, le=1)]


class Optimizer(Protocol):
    """What training uses of an optimizer; `torch.optim.Optimizer` has it too."""

    param_groups: list[dict[str, Any]]

    def step(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


def adam(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: LearningRate = 2.5e-4,
    eps: Positive = 1e-5,
    betas: Betas = (0.9, 0.999),
) -> Optimizer:
    """Adam; eps 1e-5 as in the PPO reference implementation."""
    return _adam(list(params), lr, eps, (betas[0], betas[1]), weight_decay=0.0, decoupled=False)


def adamw(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: LearningRate = 2.5e-4,
    eps: Positive = 1e-5,
    betas: Betas = (0.9, 0.999),
    weight_decay: NonNegative = 0.01,
) -> Optimizer:
    """AdamW (decoupled weight decay)."""
    return _adam(list(params), lr, eps, (betas[0], betas[1]), weight_decay, decoupled=True)


def _adam(
    params: list[torch.nn.Parameter],
    lr: float,
    eps: float,
    betas: tuple[float, float],
    weight_decay: float,
    decoupled: bool,
) -> Optimizer:
    """`FlatAdam` for a small network; torch's (fused where it can) from FUSED_FROM_PARAMETERS."""
    if sum(p.numel() for p in params) < FUSED_FROM_PARAMETERS:
        return FlatAdam(
            params, lr=lr, eps=eps, betas=betas, weight_decay=weight_decay, decoupled=decoupled
        )
    torch_adam = torch.optim.AdamW if decoupled else torch.optim.Adam
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch_adam(params, lr=lr, eps=eps, betas=betas, weight_decay=weight_decay, fused=fused)


class FlatAdam:
    """Adam (Kingma & Ba 2015), and with `decoupled` AdamW (Loshchilov & Hutter 2019), as torch's
    single-tensor implementation computes them. Per parameter p with gradient g, at step
    t = 1, 2, ...:

        m <- b1 m + (1 - b1) g              v <- b2 v + (1 - b2) g^2
        p <- p (1 - lr wd)                                          (AdamW)
        p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    `param_groups[0]["lr"]` is read at every step (the annealed learning rate is written there).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        eps: float,
        betas: tuple[float, float],
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ):
        if weight_decay and not decoupled:
            raise ValueError("FlatAdam: weight decay is AdamW's (decoupled=True)")
        self.param_groups: list[dict[str, Any]] = [
            {  # torch.optim.Adam's (AdamW's) keys and values, for its state dicts
                "lr": lr,
                "betas": (float(betas[0]), float(betas[1])),
                "eps": eps,
                "weight_decay": weight_decay if decoupled else 0,
                "amsgrad": False,
                "maximize": False,
                "foreach": None,
                "capturable": False,
                "differentiable": False,
                "fused": None,
                "decoupled_weight_decay": decoupled,
                "params": list(params),
            }
        ]
        self.steps = 0  # t
        self.moments: list[tuple[Tensor, Tensor]] = []  # (m, v) per parameter, once stepped

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        params: list[Tensor] = group["params"]
        if not self.moments:
            self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.steps += 1
        step_size = lr / (1 - beta1**self.steps)
        bias2_sqrt = math.sqrt(1 - beta2**self.steps)
        for p, (m, v) in zip(params, self.moments, strict=True):
            g = p.grad
            if g is None:
                continue
            if wd:
                p.mul_(1 - lr * wd)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = v.sqrt().div_(bias2_sqrt).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's format: per parameter index, its step (a float tensor) and moments."""
        step = torch.tensor(float(self.steps))
        state = {
            i: {"step": step.clone(), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
            for i, (m, v) in enumerate(self.moments)
        }
        groups = [{**g, "params": list(range(len(g["params"])))} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from `state_dict()` or from torch.optim.Adam's (AdamW's) state dict."""
        group, saved_group = self.param_groups[0], state_dict["param_groups"][0]
        group.update({key: saved_group[key] for key in ("lr", "eps", "weight_decay")})
        group["betas"] = tuple(saved_group["betas"])
        params = group["params"]
        state = state_dict["state"]
        if not state:
            self.steps, self.moments = 0, []
            return
        self.steps = int(float(state[0]["step"]))
        self.moments = [
            (
                state[i]["exp_avg"].to(p.device, p.dtype).clone(),
                state[i]["exp_avg_sq"].to(p.device, p.dtype).clone(),
            )
            for i, p in enumerate(params)
        ]
