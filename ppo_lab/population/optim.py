"""Adam (and AdamW) and gradient-norm clipping for stacked parameters [M, ...], per member.

Every hyperparameter is a tensor [M]: members of one population may differ in learning rate (and
its annealing), betas, eps and weight decay. A member that is not `active` in a step (it stopped
its epochs early, skipped a non-finite step, or failed) is left exactly as it was: parameters,
moments and step count. With M = 1 and equal hyperparameters this is torch's Adam to float
rounding; `member_state_dict` writes a member's state in torch's own format, so a member's
checkpoint resumes as a separate run.

    m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2          (active members only)
    p <- p (1 - lr wd)              (AdamW: decoupled weight decay)
    p <- p - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ppo_lab.flat_params import clip_scale


def per_member(values: Tensor, like: Tensor) -> Tensor:
    """[M] -> [M, 1, ..., 1], broadcastable against `like` [M, ...]."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def clip_grad_norms(params: list[Tensor], max_norms: Tensor) -> Tensor:
    """Scale each member's gradient to a global norm of at most max_norms [M] (inf: no clip), as
    torch.nn.utils.clip_grad_norm_ does for one model. Returns the norms before clipping [M];
    a member whose norm is not finite has a NaN/inf gradient and is left unscaled."""
    grads = [p.grad for p in params if p.grad is not None]
    squares = torch.stack([g.reshape(g.shape[0], -1).square().sum(1) for g in grads])
    norms = squares.sum(0).sqrt()  # ||g_k|| over every parameter tensor of member k
    scale = clip_scale(max_norms, norms)  # torch's clip coefficient, per member
    scale = torch.where(torch.isfinite(scale), scale, torch.ones_like(scale))
    for g in grads:
        g.mul_(per_member(scale, g))
    return norms


class MemberAdam:
    """Adam / AdamW over stacked parameters with per-member hyperparameters [M]."""

    def __init__(
        self,
        params: list[Tensor],
        *,
        lr: Tensor,
        betas: tuple[Tensor, Tensor],
        eps: Tensor,
        weight_decay: Tensor,
    ):
        self.params = params
        self.lr = lr.clone()  # the current (annealed) learning rate of each member
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps = torch.zeros_like(lr)  # Adam's t, per member
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        """One Adam step of the members where `active` [M] (bool) is true."""
        gate = active.to(self.lr.dtype)
        self.steps += gate
        t = self.steps.clamp(min=1.0)  # a member that never stepped has no bias to correct
        step_size = gate * self.lr / (1 - self.beta1**t)
        bias2_sqrt = (1 - self.beta2**t).sqrt()
        decay = 1 - gate * self.lr * self.weight_decay
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            g = torch.where(per_member(active, p), p.grad, 0.0)  # NaN gradients stay out
            m.lerp_(g, per_member(gate * (1 - self.beta1), p))
            v.mul_(per_member(torch.where(active, self.beta2, 1.0), p))
            v.addcmul_(g * per_member(gate * (1 - self.beta2), p), g)
            denom = (v.sqrt() / per_member(bias2_sqrt, p)).add_(per_member(self.eps, p))
            p.mul_(per_member(decay, p)).sub_(per_member(step_size, p) * m / denom)

    def member_state(self, k: int) -> dict[str, Any]:
        """Member k's moments and step count (indices in parameter order), torch's format."""
        step = self.steps[k].detach().cpu().clone()
        return {
            i: {"step": step.clone(), "exp_avg": m[k].clone(), "exp_avg_sq": v[k].clone()}
            for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True))
            if step > 0
        }

    def load_member_state(self, k: int, state: dict[Any, dict[str, Tensor]]) -> None:
        """Restore member k from a torch Adam state (`optimizer.state_dict()["state"]`)."""
        with torch.no_grad():
            for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
                entry = state.get(i)
                if entry is None:
                    m[k].zero_(), v[k].zero_()
                    continue
                m[k].copy_(entry["exp_avg"])
                v[k].copy_(entry["exp_avg_sq"])
                self.steps[k] = float(entry["step"])
