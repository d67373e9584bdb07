"""Adam (and AdamW) and gradient-norm clipping for a population's flat parameter [M, P], per member.

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


def clip_grad_norms(grad: Tensor, max_norms: Tensor) -> Tensor:
    """Scale each member's gradient row of grad [M, P] to a norm of at most max_norms [M] (inf: no
    clip), as torch.nn.utils.clip_grad_norm_ does for one model. Returns the norms before
    clipping [M]; a member whose norm is not finite has a NaN/inf gradient and is left unscaled."""
    norms = torch.linalg.vector_norm(grad, dim=1)  # ||g_k|| over all of member k's parameters
    scale = clip_scale(max_norms, norms)  # torch's clip coefficient, per member
    grad.mul_(torch.where(torch.isfinite(scale), scale, 1.0).unsqueeze(1))
    return norms


class MemberAdam:
    """Adam / AdamW over a flat parameter [M, P] (`MemberAgents.flat`) with per-member
    hyperparameters [M]; `shapes` are one member's parameter shapes in order (its row's layout),
    for the checkpoints' per-parameter format."""

    def __init__(
        self,
        param: Tensor,
        shapes: list[torch.Size],
        *,
        lr: Tensor,
        betas: tuple[Tensor, Tensor],
        eps: Tensor,
        weight_decay: Tensor,
    ):
        self.param = param
        self.sizes = [shape.numel() for shape in shapes]
        self.shapes = shapes
        self.lr = lr.clone()  # the current (annealed) learning rate of each member
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps = torch.zeros_like(lr)  # Adam's t, per member
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)

    def zero_grad(self) -> None:
        """Zero the gradient in place: the stacked leaves' gradients are views of it."""
        if self.param.grad is not None:
            self.param.grad.zero_()

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        """One Adam step of the members where `active` [M] (bool) is true."""
        gate = active.to(self.lr.dtype)
        self.steps += gate
        t = self.steps.clamp(min=1.0)  # a member that never stepped has no bias to correct
        step_size = (gate * self.lr / (1 - self.beta1**t)).unsqueeze(1)
        bias2_sqrt = (1 - self.beta2**t).sqrt().unsqueeze(1)
        decay = (1 - gate * self.lr * self.weight_decay).unsqueeze(1)
        p, m, v = self.param, self.exp_avg, self.exp_avg_sq
        g = torch.where(active.unsqueeze(1), p.grad, 0.0)  # NaN gradients stay out
        m.lerp_(g, (gate * (1 - self.beta1)).unsqueeze(1))
        v.mul_(torch.where(active, self.beta2, 1.0).unsqueeze(1))
        v.addcmul_(g * (gate * (1 - self.beta2)).unsqueeze(1), g)
        denom = (v.sqrt() / bias2_sqrt).add_(self.eps.unsqueeze(1))
        p.mul_(decay).sub_(step_size * m / denom)

    def member_state(self, k: int) -> dict[str, Any]:
        """Member k's moments and step count (indices in parameter order), torch's format."""
        step = self.steps[k].detach().cpu().clone()
        if step == 0:
            return {}
        return {
            i: {"step": step.clone(), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
            for i, (m, v) in enumerate(self._moments(k))
        }

    def load_member_state(self, k: int, state: dict[Any, dict[str, Tensor]]) -> None:
        """Restore member k from a torch Adam state (`optimizer.state_dict()["state"]`)."""
        with torch.no_grad():
            for i, (m, v) in enumerate(self._moments(k)):
                entry = state.get(i)
                if entry is None:
                    m.zero_(), v.zero_()
                    continue
                m.copy_(entry["exp_avg"])
                v.copy_(entry["exp_avg_sq"])
                self.steps[k] = float(entry["step"])

    def _moments(self, k: int) -> list[tuple[Tensor, Tensor]]:
        """Member k's (exp_avg, exp_avg_sq) per parameter, views in the parameter's shape."""
        rows = (self.exp_avg[k].split(self.sizes), self.exp_avg_sq[k].split(self.sizes))
        return [
            (m.view(shape), v.view(shape)) for m, v, shape in zip(*rows, self.shapes, strict=True)
        ]
