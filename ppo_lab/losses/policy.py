"""PPO policy losses: surrogate objectives on the log-probabilities of the actions taken.

Every variant has one signature,

    loss, info = fn(logp_new, logp_old, advantages, weight=None, *, **coefficients)

    logp_new    [B]  log pi_theta(a|s) of the rollout's actions under the policy being optimised
                     (carries the gradient)
    logp_old    [B]  log pi_old(a|s), recorded when the rollout was collected (no gradient)
    advantages  [B]  A(s, a) under pi_old, normalised or not, as the trainer chooses
    weight      [B]  optional per-sample factor on the objective, applied before the mean
    loss        []   -1/B * sum_i w_i * L_i, the negated objective (to minimise)
    info        dict of detached 0-dim tensors, the same keys for every variant (INFO_KEYS)

Taking log-probabilities of the chosen actions rather than logits keeps the losses independent of
the action distribution: categorical, Gaussian and multi-discrete heads all reduce to one number
per sample (sum the per-dimension log-probs of a factorised distribution before calling).

Why a ratio. The improvement of pi_theta over pi_old is (1/(1-gamma)) E_{s~d_theta, a~pi_theta}[A],
with A the advantage under pi_old. Importance-sampling the action from pi_old and pretending the
state distribution d_theta equals d_old (an error bounded through KL(pi_old || pi_theta)) gives the
surrogate E_{s,a~pi_old}[r A] with r = pi_theta(a|s) / pi_old(a|s) = exp(logp_new - logp_old).
The surrogate is only trustworthy while pi_theta stays close to pi_old, yet PPO takes many
gradient steps on one rollout. The variants differ only in how they keep r near 1:

    vanilla     r A                                                 no constraint (the baseline)
    clip        min(r A, clip(r, 1-eps, 1+eps) A)                   Schulman et al. 2017, eq. 7
    dual_clip   clip, and for A < 0 also bounded below by c A       Ye et al. 2020
    kl_penalty  r A - beta * k3(r)                                  Schulman et al. 2017, sec. 4

Diagnostics (INFO_KEYS), unweighted minibatch means, never read back to the host here:

    approx_kl       mean k3 = (r - 1) - log r   estimates KL(pi_old || pi_theta); each term >= 0
    approx_kl_k1    mean(logp_old - logp_new)   the plain estimate of it; noisier, terms can be < 0
    clipfrac        fraction with |r - 1| > clip_eps (vanilla, kl_penalty: what clip would clip)
    dual_clip_frac  fraction with A < 0 where c A is the active term (0 except for dual_clip)

A `conf/loss/policy/*.yaml` entry names one of them; its keyword-only, constrained coefficients
are the entry's schema (`ppo_lab.components`). No variant takes a coefficient it does not use:
`vanilla` and `kl_penalty` have no clip range, and report `clipfrac` at the reference range
`CLIPFRAC_REFERENCE_EPS` = 0.2 (what `clip` at its default would have clipped). `kl_penalty`'s
coefficient beta is trainer state, declared with `@trainer_inputs("kl_beta")` and scheduled by the
loss entry's `kl_coef` (`ppo_lab.losses.kl_coef`).
"""

from __future__ import annotations

from typing import Annotated

import annotated_types as at
import torch
from torch import Tensor

from ppo_lab.components import OpenUnitInterval, trainer_inputs

ClipEps = OpenUnitInterval
DualClip = Annotated[float, at.Gt(1)]

INFO_KEYS = ("approx_kl", "approx_kl_k1", "clipfrac", "dual_clip_frac")
CLIPFRAC_REFERENCE_EPS = 0.2  # clipfrac threshold of the variants without a clip range


def _loss(objective: Tensor, weight: Tensor | None) -> Tensor:
    """-mean(w * L): the per-sample objective [B], weighted, averaged and negated."""
    if weight is not None:
        objective = objective * weight
    return -objective.mean()


def _info(
    log_ratio: Tensor, ratio: Tensor, clip_eps: float, dual_active: Tensor | None = None
) -> dict[str, Tensor]:
    """The shared diagnostics (INFO_KEYS) from log r [B], r [B] and the dual-clip mask [B]."""
    log_ratio, ratio = log_ratio.detach(), ratio.detach()
    dtype = ratio.dtype
    return {
        "approx_kl": ((ratio - 1) - log_ratio).mean(),  # k3 = (r - 1) - log r
        "approx_kl_k1": (-log_ratio).mean(),  # k1 = log pi_old - log pi_theta
        "clipfrac": ((ratio - 1).abs() > clip_eps).to(dtype).mean(),
        "dual_clip_frac": (
            ratio.new_zeros(()) if dual_active is None else dual_active.to(dtype).mean()
        ),
    }


def _clipped_objective(ratio: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    """Per-sample min(r A, clip(r, 1 - eps, 1 + eps) A) [B]."""
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages  # clip(r, 1-eps, 1+eps) A
    return torch.minimum(ratio * advantages, clipped)  # min(r A, clip(r) A)


def vanilla(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    weight: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Unclipped importance-sampled surrogate L = r A (Kakade & Langford's L^CPI).

    Nothing keeps r near 1, so with several epochs per rollout the policy can move arbitrarily far
    from the one that collected the data: this is the control that the other variants improve on.
    `clipfrac` measures how much `clip` at the reference range *would* have clipped.
    """
    log_ratio = logp_new - logp_old
    ratio = log_ratio.exp()  # r = pi_theta / pi_old
    return _loss(ratio * advantages, weight), _info(log_ratio, ratio, CLIPFRAC_REFERENCE_EPS)


def clip(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    weight: Tensor | None = None,
    *,
    clip_eps: ClipEps = 0.2,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate L = min(r A, clip(r, 1 - eps, 1 + eps) A).

    The min makes L a pessimistic bound on r A. Once r has moved past 1 + eps in the direction
    the advantage rewards (A > 0), or below 1 - eps for A < 0, the clipped term is the smaller
    one and is constant in theta: that sample stops contributing gradient. Moves that make the
    objective worse (r < 1 - eps with A > 0, r > 1 + eps with A < 0) are never clipped, so
    the policy can always be pulled back towards pi_old.
    """
    log_ratio = logp_new - logp_old
    ratio = log_ratio.exp()  # r = pi_theta / pi_old
    objective = _clipped_objective(ratio, advantages, clip_eps)
    return _loss(objective, weight), _info(log_ratio, ratio, clip_eps)


def dual_clip(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    weight: Tensor | None = None,
    *,
    clip_eps: ClipEps = 0.2,
    dual_clip: DualClip = 3.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Dual-clip surrogate (Ye et al. 2020): the clipped objective, bounded below for A < 0.

        L = min(r A, clip(r, 1 - eps, 1 + eps) A)              if A >= 0
        L = max(min(r A, clip(r, 1 - eps, 1 + eps) A), c A)    if A < 0

    For A < 0 the clipped objective equals A max(r, 1 - eps), which is unbounded below as r grows:
    one sample whose ratio has exploded (e.g. an action pi_old almost never took) can dominate
    the minibatch. The second bound caps that term at c A, i.e. it is active exactly when r > c,
    and there, like the first clip, it passes no gradient. For A >= 0 this is `clip`.
    `dual_clip_frac` reports the fraction of samples with A < 0 whose bound is active.
    """
    log_ratio = logp_new - logp_old
    ratio = log_ratio.exp()  # r = pi_theta / pi_old
    objective = _clipped_objective(ratio, advantages, clip_eps)  # min(r A, clip(r) A)
    bound = dual_clip * advantages  # c A
    negative = advantages < 0
    objective_dual = torch.where(negative, torch.maximum(objective, bound), objective)
    dual_active = negative & (bound.detach() > objective.detach())
    return _loss(objective_dual, weight), _info(log_ratio, ratio, clip_eps, dual_active)


@trainer_inputs("kl_beta")
def kl_penalty(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    weight: Tensor | None = None,
    kl_beta: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """KL-penalised surrogate L = r A - beta * k3, with k3 = (r - 1) - log r per sample.

    k3 estimates KL(pi_old || pi_theta) = E_{a~pi_old}[-log r] from the same samples
    (Schulman, "Approximating KL divergence", 2020). It is unbiased because E_{pi_old}[r - 1] = 0,
    and it is the better per-sample penalty than k1 = -log r:
      - k3 >= 0 for every sample (log x <= x - 1), so the penalty never rewards a sample;
        k1 is negative whenever r > 1;
      - at r = 1 both k3 and its gradient (r - 1) * grad(log pi_theta) vanish and near it
        k3 ~ (log r)^2 / 2, so the penalty acts only once the policy has moved, while k1 has
        gradient -grad(log pi_theta) on every sample, a pure noise term at pi_theta = pi_old;
      - that gradient is also unbiased: E_{pi_old}[(r - 1) grad log pi_theta] = grad KL.
    `kl_beta` is trainer state: the loss entry's `kl_coef` schedule (`ppo_lab.losses.kl_coef`)
    sets it between rollouts. `clipfrac` is measured at the reference range, as in `vanilla`.
    """
    log_ratio = logp_new - logp_old
    ratio = log_ratio.exp()  # r = pi_theta / pi_old
    k3 = (ratio - 1) - log_ratio  # k3 = (r - 1) - log r >= 0
    objective = ratio * advantages - kl_beta * k3  # r A - beta k3
    return _loss(objective, weight), _info(log_ratio, ratio, CLIPFRAC_REFERENCE_EPS)
