"""PPO value (critic) losses: regress V(s) onto the rollout's return targets.

Every variant has one signature,

    loss, info = fn(values, old_values, returns, weight=None, *, **coefficients)

    values      [B]  V_theta(s) under the critic being optimised (carries the gradient)
    old_values  [B]  V_old(s), recorded when the rollout was collected (no gradient)
    returns     [B]  R, the regression targets (e.g. GAE advantages + V_old)
    weight      [B]  optional per-sample factor on the loss term, applied before the mean
    loss        []   1/B * sum_i w_i * l_i
    info        {"value_clipfrac": fraction with |V - V_old| > clip_eps; 0 if not clipped}

Variants: `mse` (the default in most implementations), `clipped` (the value clipping of the
PPO reference code) and `huber`. Each is a `conf/loss/value/*.yaml` entry of its own, so its
coefficients are `loss.value.clip_eps` and `loss.value.delta`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_lab.components import Positive

INFO_KEYS = ("value_clipfrac",)


def _mean(per_sample: Tensor, weight: Tensor | None) -> Tensor:
    """mean(w * l) over the minibatch [B] -> []."""
    if weight is not None:
        per_sample = per_sample * weight
    return per_sample.mean()


def mse(
    values: Tensor, old_values: Tensor, returns: Tensor, weight: Tensor | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Squared error 0.5 * mean((V - R)^2). `old_values` is unused; it keeps one signature."""
    loss = 0.5 * _mean((values - returns).square(), weight)  # 0.5 (V - R)^2
    return loss, {"value_clipfrac": values.new_zeros(())}


def clipped(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    weight: Tensor | None = None,
    *,
    clip_eps: Positive = 0.2,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss, the critic's analogue of the clipped surrogate.

        V_clip = V_old + clip(V - V_old, -eps, eps)
        l      = 0.5 * max((V - R)^2, (V_clip - R)^2)

    The max makes it pessimistic: a sample whose prediction has moved more than eps from V_old
    and is now closer to R than V_clip stops passing gradient (the constant clipped term is the
    larger one), while a move that leaves V farther from R than V_clip is never clipped. Equal to
    `mse` whenever |V - V_old| <= eps. eps is in units of the return, so its meaning changes with
    reward scale and normalisation; studies of PPO's implementation details (Engstrom et al. 2020,
    Andrychowicz et al. 2021) found that value clipping does not help and can hurt.
    """
    delta = values - old_values
    v_clip = old_values + delta.clamp(-clip_eps, clip_eps)  # V_old + clip(V-V_old)
    err, err_clip = values - returns, v_clip - returns
    per_sample = torch.maximum(err.square(), err_clip.square())  # max((V-R)^2, (V_clip-R)^2)
    loss = 0.5 * _mean(per_sample, weight)
    frac = (delta.detach().abs() > clip_eps).to(values.dtype).mean()
    return loss, {"value_clipfrac": frac}


def huber(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    weight: Tensor | None = None,
    *,
    delta: Positive = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Huber loss of the error e = V - R, averaged: quadratic near 0, linear in the tails.

        l = 0.5 e^2                          if |e| <= delta
        l = delta * (|e| - 0.5 delta)        otherwise

    Scale: inside |e| <= delta it is exactly the `mse` term, so the two agree on small errors;
    outside, the gradient magnitude is capped at delta instead of growing with |e|, which limits
    the pull of outlier returns. delta is in units of the return: with unnormalised rewards of
    scale >> delta the loss is effectively L1. (This is torch's `huber_loss`, not `smooth_l1_loss`,
    which divides the quadratic part by its beta and so changes scale with it; written out here
    so that delta may be a tensor.)
    `old_values` is unused.
    """
    err = values - returns
    abs_err = err.abs()  # delta may be a tensor (one per member of a population)
    per_sample = torch.where(abs_err < delta, 0.5 * err.square(), delta * (abs_err - 0.5 * delta))
    return _mean(per_sample, weight), {"value_clipfrac": values.new_zeros(())}
