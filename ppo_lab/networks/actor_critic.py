"""The actor-critic module every `network` entry builds: encoders + a policy head + a value head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ppo_lab.networks.heads import ActionHead, orthogonal_


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) from an actor encoder and a critic encoder (None: share the actor's).

    Encoders map a batch of observations [B, *obs_shape] to features [B, F]. With
    `autocast_dtype` (the run's `amp=bf16`), the encoders compute in that precision under
    `torch.autocast` and hand float32 features to the heads, so distributions, values and the
    losses stay float32.
    """

    autocast_dtype: torch.dtype | None = None

    def __init__(
        self,
        actor_encoder: nn.Module,
        critic_encoder: nn.Module | None,
        head: ActionHead,
        feature_dim: int,
    ):
        super().__init__()
        self.actor_encoder = actor_encoder
        self.critic_encoder = critic_encoder
        self.head = head
        self.value_head = orthogonal_(nn.Linear(feature_dim, 1), gain=1.0)

    @property
    def shared(self) -> bool:
        return self.critic_encoder is None

    def encode(self, encoder: nn.Module, obs: Tensor) -> Tensor:
        """Features [B, F] of `encoder`, float32 whatever precision it computed in."""
        if self.autocast_dtype is None:
            return encoder(obs)
        with torch.autocast(obs.device.type, dtype=self.autocast_dtype):
            return encoder(obs).float()

    def policy_params(self, obs: Tensor) -> Tensor:
        """Distribution parameters (logits or Gaussian means) [B, ...]."""
        return self.head(self.encode(self.actor_encoder, obs))

    def value(self, obs: Tensor) -> Tensor:
        """V(s) [B]."""
        encoder = self.actor_encoder if self.critic_encoder is None else self.critic_encoder
        return self.value_head(self.encode(encoder, obs)).squeeze(-1)

    def act(self, obs: Tensor, deterministic: bool = False, noise: Tensor | None = None) -> Tensor:
        """Sample (or take the mode of) an action per observation. `noise` is the sample's
        randomness (`head.draw_noise`, the shape of the distribution parameters); None draws it
        from torch's global generator."""
        params = self.policy_params(obs)
        return self.head.mode(params) if deterministic else self.head.sample(params, noise)

    def act_and_evaluate(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(sampled action, log pi(a|s), V(s)) from one pass of the shared encoder: what a
        shared-trunk network records while acting, so the rollout is not encoded twice."""
        features = self.encode(self.actor_encoder, obs)
        params = self.head(features)
        actions = self.head.sample(params)
        values = self.value_head(features).squeeze(-1)
        return actions, self.head.log_prob(params, actions), values

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log pi(a|s), entropy of pi(.|s), V(s)), each [B]; a shared encoder runs once."""
        features = self.encode(self.actor_encoder, obs)
        params = self.head(features)
        critic = self.critic_encoder
        critic_features = features if critic is None else self.encode(critic, obs)
        values = self.value_head(critic_features).squeeze(-1)
        return self.head.log_prob(params, actions), self.head.entropy(params), values
