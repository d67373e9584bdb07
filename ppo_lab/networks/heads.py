"""Policy heads: map features to distribution parameters, chosen from the action space.

Each head works on raw parameter tensors (logits, means) instead of `torch.distributions`
objects: building a distribution object validates its arguments on every call, which costs more
than the network itself for small policies on CPU. `distribution()` still returns the torch
object for evaluation and tests.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import Tensor, nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def orthogonal_(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Module:
    """Orthogonal weights with `gain`, zero bias (the PPO reference implementation's init)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class CategoricalHead(nn.Module):
    """Discrete(n): logits = W h; actions are int64 [B]."""

    def __init__(self, in_features: int, n: int):
        super().__init__()
        self.linear = orthogonal_(nn.Linear(in_features, n), gain=0.01)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features)

    @staticmethod
    def draw_noise(shape: torch.Size, generator: torch.Generator | None = None) -> Tensor:
        """E ~ Exp(1) of the logits' shape: the randomness of one `sample`."""
        device = None if generator is None else generator.device
        return torch.empty(shape, device=device).exponential_(generator=generator)

    @staticmethod
    def sample(logits: Tensor, noise: Tensor | None = None) -> Tensor:
        # Gumbel-max: argmax(logits + G), G = -log(E), E ~ Exp(1)  ==  a sample of softmax(logits)
        if noise is None:
            noise = torch.empty_like(logits).exponential_()
        return (logits - noise.log()).argmax(-1)

    @staticmethod
    def mode(logits: Tensor) -> Tensor:
        return logits.argmax(-1)

    @staticmethod
    def log_prob(logits: Tensor, actions: Tensor) -> Tensor:
        return logits.log_softmax(-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def entropy(logits: Tensor) -> Tensor:
        logp = logits.log_softmax(-1)
        return -(logp.exp() * logp).sum(-1)  # H = -sum_a pi(a) log pi(a)

    @staticmethod
    def distribution(logits: Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=logits)


class MultiDiscreteHead(nn.Module):
    """MultiDiscrete(nvec): one independent categorical per dimension; actions int64 [B, K]."""

    def __init__(self, in_features: int, nvec: list[int]):
        super().__init__()
        self.nvec = list(nvec)
        self.linear = orthogonal_(nn.Linear(in_features, sum(self.nvec)), gain=0.01)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features)

    def _split(self, logits: Tensor) -> tuple[Tensor, ...]:
        return logits.split(self.nvec, dim=-1)

    draw_noise = staticmethod(CategoricalHead.draw_noise)  # one E ~ Exp(1) per logit

    def sample(self, logits: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = torch.empty_like(logits).exponential_()
        parts = zip(self._split(logits), self._split(noise), strict=True)
        return torch.stack([CategoricalHead.sample(part, e) for part, e in parts], -1)

    def mode(self, logits: Tensor) -> Tensor:
        return torch.stack([part.argmax(-1) for part in self._split(logits)], -1)

    def log_prob(self, logits: Tensor, actions: Tensor) -> Tensor:
        parts = self._split(logits)
        return sum(CategoricalHead.log_prob(p, actions[..., i]) for i, p in enumerate(parts))

    def entropy(self, logits: Tensor) -> Tensor:
        return sum(CategoricalHead.entropy(p) for p in self._split(logits))

    def distribution(self, logits: Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError("MultiDiscrete has no single torch distribution; use log_prob")


class GaussianHead(nn.Module):
    """Box: independent Gaussian, mean = W h, log-std a state-independent parameter.

    The raw sampled action is stored and trained on; clipping to the action bounds happens only
    when the action is sent to the environment.
    """

    def __init__(self, in_features: int, action_dim: int, init_log_std: float = 0.0):
        super().__init__()
        self.linear = orthogonal_(nn.Linear(in_features, action_dim), gain=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), init_log_std))

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features)

    @staticmethod
    def draw_noise(shape: torch.Size, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, 1) of the means' shape: the randomness of one `sample`."""
        device = None if generator is None else generator.device
        return torch.randn(shape, generator=generator, device=device)

    def sample(self, mean: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = torch.randn_like(mean)
        return mean + self.log_std.exp() * noise  # a = mu + sigma z

    @staticmethod
    def mode(mean: Tensor) -> Tensor:
        return mean

    def log_prob(self, mean: Tensor, actions: Tensor) -> Tensor:
        # log N(a; mu, sigma) = -(a - mu)^2 / (2 sigma^2) - log sigma - log sqrt(2 pi), summed
        # over the action dimensions
        z = (actions - mean) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - LOG_SQRT_2PI).sum(-1)

    def entropy(self, mean: Tensor) -> Tensor:
        # H = sum_i (1/2 + log sqrt(2 pi) + log sigma_i), the same for every state (log_std is
        # [A], or a population's [M, 1, A])
        return (0.5 + LOG_SQRT_2PI + self.log_std).sum(-1).expand(mean.shape[:-1])

    def distribution(self, mean: Tensor) -> torch.distributions.Distribution:
        normal = torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))
        return torch.distributions.Independent(normal, 1)


ActionHead = CategoricalHead | MultiDiscreteHead | GaussianHead


def head_for(action_space: gym.Space, in_features: int) -> ActionHead:
    """The policy head that matches `action_space`."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(in_features, int(action_space.n))
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return MultiDiscreteHead(in_features, [int(n) for n in action_space.nvec])
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianHead(in_features, action_space.shape[0])
    raise ValueError(
        f"no policy head for action space {action_space}: supported are Discrete, MultiDiscrete "
        "and 1-D Box"
    )
