"""The PPO loss: a policy loss, a value loss and an entropy bonus, each a pure function.

`PPOLoss` is the `loss` group's entry; its `policy` and `value` are sub-entries of their own
(`conf/loss/policy/`, `conf/loss/value/`), each a `_target_` with its own coefficients:

    total = policy_loss(r, A) + vf_coef * value_loss(V, R) - ent_coef * entropy

A policy loss that declares `@trainer_inputs("kl_beta")` (kl_penalty) needs the `kl_coef`
schedule (`conf/loss/kl_coef/`); the trainer keeps beta and passes it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ppo_lab.components import NonNegative, declared_inputs, inputs_declared_by
from ppo_lab.losses.kl_coef import KLCoefficient

LossFn = Callable[..., tuple[Tensor, dict[str, Tensor]]]


@dataclass(frozen=True, kw_only=True)
class PPOLoss:
    """policy + vf_coef * value - ent_coef * entropy, over one minibatch."""

    policy: LossFn
    value: LossFn
    vf_coef: NonNegative = 0.5
    ent_coef: NonNegative = 0.0
    kl_coef: KLCoefficient | None = None

    def __post_init__(self) -> None:
        takes_beta = "kl_beta" in declared_inputs(self.policy)
        if takes_beta and self.kl_coef is None:
            raise ValueError(
                "this policy loss needs a KL coefficient schedule: add "
                "+loss/kl_coef=adaptive (or fixed), or use loss=kl_penalty"
            )
        if self.kl_coef is not None and not takes_beta:
            raise ValueError(
                "loss.kl_coef: only a KL-penalised policy loss (loss/policy="
                "kl_penalty) takes a KL coefficient; remove it with ~loss.kl_coef"
            )

    @property
    def initial_kl_beta(self) -> float | None:
        """The trainer's starting KL coefficient; None when the policy loss takes none."""
        return None if self.kl_coef is None else self.kl_coef.initial

    def __call__(
        self,
        logp: Tensor,
        logp_old: Tensor,
        advantages: Tensor,
        values: Tensor,
        old_values: Tensor,
        returns: Tensor,
        entropy: Tensor,
        kl_beta: float | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The total loss [] and its detached terms and diagnostics, for one minibatch [B]."""
        trainer_state = inputs_declared_by(self.policy, kl_beta=kl_beta)
        policy_loss, policy_info = self.policy(logp, logp_old, advantages, **trainer_state)
        value_loss, value_info = self.value(values, old_values, returns)
        entropy = entropy.mean()
        total = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
        info = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            **policy_info,
            **value_info,
        }
        return total, info
