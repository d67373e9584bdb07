"""Schedules of the KL-penalty coefficient beta: the `loss.kl_coef` sub-entry of `loss=kl_penalty`.

The coefficient is trainer state (it goes into checkpoints); a schedule only says where it starts
and how it moves after each policy update, as a pure function of the measured KL.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppo_lab.components import NonNegative, Positive


@dataclass(frozen=True, kw_only=True)
class FixedKLCoefficient:
    """beta stays at `initial` for the whole run."""

    initial: NonNegative = 1.0

    def next(self, beta: float, kl: float) -> float:
        return beta


@dataclass(frozen=True, kw_only=True)
class AdaptiveKLCoefficient:
    """Adaptive beta (Schulman et al. 2017, sec. 4), applied once per policy update.

    kl is the measured KL(pi_old || pi_theta) after the update (`losses/approx_kl`):
        kl < target / 1.5  ->  beta / 2   (the policy barely moved: penalise less)
        kl > target * 1.5  ->  beta * 2   (it moved too far: penalise more)
        otherwise          ->  beta
    The paper reports the result is insensitive to the 1.5 and 2 constants.
    """

    initial: NonNegative = 1.0
    target: Positive = 0.01

    def next(self, beta: float, kl: float) -> float:
        if kl < self.target / 1.5:
            return beta / 2
        if kl > self.target * 1.5:
            return beta * 2
        return beta


KLCoefficient = FixedKLCoefficient | AdaptiveKLCoefficient
