"""Normalization: running statistics of observations, rewards and returns; advantage scaling.

    RunningMeanStd         mean and variance of a stream of batches, merged exactly (Chan et al.)
    RewardScaler           reward scaling: r / std(discounted return), per env, step by step
    normalize_advantages   (A - mean) / (std + eps), pure
    normalizers            the `_target_` of the `normalization` group: what a run normalizes

Running statistics are state: every one the trainer keeps goes into checkpoints and ships with the
saved policy (an observation-normalized policy is meaningless without its statistics).
`state_dict()` holds plain tensors and Python numbers, and `load_state_dict(state_dict())`
restores the object bit for bit.

References: Chan, Golub & LeVeque 1979, Updating Formulae and a Pairwise Algorithm for Computing
Sample Variances; Engstrom et al. 2020, Implementation Matters in Deep Policy Gradients (reward
scaling, observation normalization); Andrychowicz et al. 2021, What Matters in On-Policy
Reinforcement Learning? (observation normalization, advantage normalization, value targets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from ppo_lab.components import Positive

__all__ = [
    "AdvantageScope",
    "Normalizers",
    "RewardScaler",
    "RunningMeanStd",
    "normalize_advantages",
    "normalizers",
]

AdvantageScope = Literal["minibatch", "batch", "none"]

_STATS_DTYPE = torch.float64  # accumulators: float32 loses the variance after ~1e7 samples


class RunningMeanStd:
    """Running mean and (population) variance per feature, over everything seen by `update`.

    Batches are merged with the pairwise formulas of Chan et al. (1979), exact in real arithmetic
    and numerically stable: the result equals the mean and variance of the concatenated stream,
    whatever the batch sizes. Accumulators are float64 on `device`; the count is an exact int.
    The count starts at 0: before the first update, mean = 0 and var = 1 (normalize is then the
    identity up to eps); no prior pseudo-count is mixed in.

    Args:
        shape: the shape of one sample, () for scalars, (obs_dim,) for vector observations.
        epsilon: added to the variance before the square root in normalize / denormalize.
        device: where the statistics live (the device of the tensors they are applied to).
    """

    def __init__(
        self,
        shape: Sequence[int] = (),
        *,
        epsilon: float = 1e-8,
        device: torch.device | str | None = None,
    ):
        self.shape = tuple(int(s) for s in shape)
        self.epsilon = float(epsilon)
        self.mean = torch.zeros(self.shape, dtype=_STATS_DTYPE, device=device)  # [*shape]
        self.m2 = torch.zeros(self.shape, dtype=_STATS_DTYPE, device=device)  # M2 = Σ (x - mean)²
        self.count = 0
        self._scale_key: tuple = ()  # what `_scale` was computed from
        self._scale: tuple[Tensor, Tensor] | None = None

    @property
    def var(self) -> Tensor:
        """Population variance [*shape] (float64): M2 / n; ones before the first update."""
        return self.m2 / self.count if self.count > 0 else torch.ones_like(self.m2)

    @property
    def std(self) -> Tensor:
        """sqrt(var + epsilon) [*shape] (float64), the scale used by normalize."""
        return torch.sqrt(self.var + self.epsilon)

    def update(self, x: Tensor) -> None:
        """Merge a batch x [*batch, *shape] (any leading batch dims, possibly none) into the stats.

        The batch is reduced over all its leading dims; x is not modified and may be on any
        device or dtype. An empty batch changes nothing.
        """
        if tuple(x.shape[x.ndim - len(self.shape) :]) != self.shape or x.ndim < len(self.shape):
            raise ValueError(
                f"RunningMeanStd.update: expected [*batch, *{self.shape}], got {tuple(x.shape)}"
            )
        batch = x.detach().to(device=self.mean.device, dtype=_STATS_DTYPE).reshape(-1, *self.shape)
        n_b, n_a = batch.shape[0], self.count
        if n_b == 0:
            return
        n = n_a + n_b
        mean_b = batch.mean(dim=0)  # m_b
        m2_b = (batch - mean_b).square().sum(dim=0)  # M2_b = Σ (x - m_b)²
        delta = mean_b - self.mean  # δ = m_b - m_a
        self.mean.add_(delta, alpha=n_b / n)  # m = m_a + δ n_b / n
        self.m2.add_(m2_b).add_(delta.square(), alpha=n_a * n_b / n)  # M2 = M2_a+M2_b+δ² n_a n_b/n
        self.count = n

    def mean_and_std(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, sqrt(var + eps)) in `like`'s dtype and device. Computed again only when the
        statistics changed (any in-place write bumps a tensor's `_version`): a rollout normalizes
        every step with the same statistics, and these are ~8 small ops."""
        key = (
            self.count,
            self.mean._version,
            self.m2._version,
            self.epsilon,
            like.dtype,
            like.device,
        )
        if self._scale is None or key != self._scale_key:
            convert = {"device": like.device, "dtype": like.dtype}
            with torch.inference_mode(False):  # kept for later passes, which may record autograd
                self._scale = (self.mean.to(**convert), self.std.to(**convert))
            self._scale_key = key
        return self._scale

    def normalize(self, x: Tensor, clip: float | None = None) -> Tensor:
        """(x - mean) / sqrt(var + eps), clipped to [-clip, clip]: a new tensor of x's dtype/device.

        x: [..., *shape]; clip: None for no clipping.
        """
        mean, std = self.mean_and_std(x)
        y = (x - mean) / std  # (x - μ) / sqrt(σ² + ε)
        return y if clip is None else y.clamp(-clip, clip)

    def denormalize(self, y: Tensor) -> Tensor:
        """y sqrt(var + eps) + mean, the inverse of normalize without clip (e.g. for a critic
        trained on normalized value targets): a new tensor of y's dtype/device, y: [..., *shape].
        """
        mean, std = self.mean_and_std(y)
        return y * std + mean  # x = y sqrt(σ² + ε) + μ

    def state_dict(self) -> dict[str, Any]:
        """{"mean": float64 [*shape], "m2": float64 [*shape], "count": int, "epsilon": float};
        tensors are copies. var = m2 / count (ones while count = 0)."""
        return {
            "mean": self.mean.clone(),
            "m2": self.m2.clone(),
            "count": self.count,
            "epsilon": self.epsilon,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly what state_dict returned (onto this object's device)."""
        mean, m2 = torch.as_tensor(state["mean"]), torch.as_tensor(state["m2"])
        if tuple(mean.shape) != self.shape or tuple(m2.shape) != self.shape:
            raise ValueError(
                f"RunningMeanStd.load_state_dict: statistics of shape {tuple(mean.shape)}, "
                f"expected {self.shape}"
            )
        self.mean.copy_(mean)
        self.m2.copy_(m2)
        self.count = int(state["count"])
        self.epsilon = float(state.get("epsilon", self.epsilon))


class RewardScaler:
    """Reward scaling (Engstrom et al. 2020; gym's NormalizeReward / SB3's VecNormalize).

    Each env keeps its discounted return G; rewards are divided by the running standard deviation
    of G, not centered (shifting rewards would change the optimal policy under termination):

        G ← gamma G + r;   update Var[G];   r' = clip(r / sqrt(Var[G] + eps), ±clip);
        G ← 0 where the episode ended (done = terminated or truncated).

    Call once per env step with [N] tensors on `device`. G lives in a preallocated float64 buffer
    updated in place; the only new tensors are the statistics' temporaries and the output.

    Args:
        num_envs: N, the number of parallel environments.
        gamma: the discount of G, normally the run's gamma, in [0, 1].
        clip: bound of the scaled reward's magnitude, > 0; None disables clipping.
        epsilon: added to Var[G] before the square root.
        device: where G and its statistics live.
    """

    def __init__(
        self,
        num_envs: int,
        gamma: float,
        clip: float | None = 10.0,
        *,
        epsilon: float = 1e-8,
        device: torch.device | str | None = None,
    ):
        self.gamma = float(gamma)
        self.clip = None if clip is None else float(clip)
        self.returns = torch.zeros(num_envs, dtype=_STATS_DTYPE, device=device)  # G, [N]
        self.rms = RunningMeanStd((), epsilon=epsilon, device=device)  # of G

    def __call__(self, rewards: Tensor, done: Tensor) -> Tensor:
        """Scale one step's rewards [N] (float) given done [N] (bool or 0/1): a new tensor [N].

        Updates G and its statistics; the inputs are not modified.
        """
        if rewards.shape != self.returns.shape or done.shape != self.returns.shape:
            raise ValueError(
                f"RewardScaler: rewards {tuple(rewards.shape)} and done {tuple(done.shape)} must "
                f"be [num_envs] = {tuple(self.returns.shape)}"
            )
        self.returns.mul_(self.gamma).add_(rewards)  # G ← γ G + r
        self.rms.update(self.returns)  # Var[G] over all envs and steps so far
        scaled = rewards / self.rms.std.to(rewards.dtype)  # r' = r / sqrt(Var[G] + ε)
        if self.clip is not None:
            scaled = scaled.clamp_(-self.clip, self.clip)  # r' ∈ [-clip, clip]
        self.returns.masked_fill_(done.to(dtype=torch.bool), 0.0)  # G ← 0 at episode end
        return scaled

    def scale_rollout(self, rewards: Tensor, done: Tensor) -> Tensor:
        """Every step of a rollout [T, N] at once: what T calls of the scaler return, in step
        order, to float64 rounding (`scaled_reward_scan`). Updates G and the statistics."""
        scaled, count = scaled_reward_scan(
            rewards,
            done,
            self.returns,
            self.gamma,
            self.rms.mean.view(1),
            self.rms.m2.view(1),
            self.rms.count,
            self.rms.epsilon,
            self.clip,
        )
        self.rms.count = count
        return scaled

    def state_dict(self) -> dict[str, Any]:
        """{"returns": float64 [N] (the running G), "rms": its RunningMeanStd, "gamma", "clip"}."""
        return {
            "returns": self.returns.clone(),
            "rms": self.rms.state_dict(),
            "gamma": self.gamma,
            "clip": self.clip,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly what state_dict returned (onto this object's device)."""
        returns = torch.as_tensor(state["returns"])
        if returns.shape != self.returns.shape:
            raise ValueError(
                f"RewardScaler.load_state_dict: returns of shape {tuple(returns.shape)}, "
                f"expected {tuple(self.returns.shape)} (num_envs differs)"
            )
        self.returns.copy_(returns)
        self.rms.load_state_dict(state["rms"])
        self.gamma = float(state.get("gamma", self.gamma))
        self.clip = state.get("clip", self.clip)


@torch.no_grad()
def scaled_reward_scan(
    rewards: Tensor,
    done: Tensor,
    returns: Tensor,
    gamma: float | Tensor,
    mean: Tensor,
    m2: Tensor,
    count: int,
    epsilon: float,
    clip: float | None,
) -> tuple[Tensor, int]:
    """Reward scaling of a whole rollout [T, N] (`RewardScaler`, step by step) without a
    per-step statistics update. The N envs form G groups of N / G (G = len(mean): 1 for a run,
    the members of a population), each with its own Var[G]. In place: `returns` [N] (float64,
    the running G), `mean` and `m2` [G] (float64); returns (scaled rewards [T, N], new count).

    The discounted returns are one recurrence, G_t = gamma G_{t-1} (1 - done_{t-1}) + r_t. The
    statistics after step t merge the old ones (n_a, m_a, M2_a) with every G_0..G_t seen so far
    (Chan et al.), from prefix sums of x = G - m_a:  with n_b = N/G (t+1), s1 = sum x,
    s2 = sum x^2, d = s1 / n_b and n = n_a + n_b,

        mean_t = m_a + d n_b / n,     M2_t = M2_a + (s2 - s1^2 / n_b) + d^2 n_a n_b / n,

    and r'_t = clip(r_t / sqrt(M2_t / n + eps)).
    """
    steps, envs = rewards.shape
    groups = mean.shape[0]
    discounted = torch.empty((steps, envs), dtype=returns.dtype, device=returns.device)
    keep = 1.0 - done.to(returns.dtype)
    g = returns
    for t in range(steps):  # one fused op per step: G <- gamma G + r, then G <- 0 at episode ends
        g = torch.addcmul(rewards[t].to(returns.dtype), g, torch.as_tensor(gamma, dtype=g.dtype))
        discounted[t] = g
        g = g * keep[t]
    returns.copy_(g)
    x = discounted.view(steps, groups, -1) - mean.view(groups, 1)  # [T, G, N/G], minus the old mean
    n_a = float(count)
    n_b = (envs // groups) * torch.arange(1, steps + 1, dtype=x.dtype, device=x.device)[:, None]
    s1 = x.sum(2).cumsum(0)  # [T, G]
    s2 = x.square().sum(2).cumsum(0)
    n = n_a + n_b
    d = s1 / n_b
    mean_t = mean + d * n_b / n
    m2_t = m2 + (s2 - s1.square() / n_b) + d.square() * n_a * n_b / n
    std = (m2_t / n + epsilon).sqrt()  # [T, G]
    scaled = (rewards.view(steps, groups, -1) / std.to(rewards.dtype).unsqueeze(-1)).view(
        steps, envs
    )
    if clip is not None:
        scaled = scaled.clamp_(-clip, clip)
    mean.copy_(mean_t[-1])
    m2.copy_(m2_t[-1])
    return scaled, count + steps * (envs // groups)


def normalize_advantages(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """(A - mean(A)) / (std(A) + eps) over all elements of `advantages` (any shape): a new tensor.

    std is the sample standard deviation (Bessel-corrected, like torch's default and CleanRL);
    a single element gives 0 rather than NaN. The caller chooses the scope (minibatch or batch)
    by what it passes in.
    """
    mean = advantages.mean()
    std = advantages.std(correction=1 if advantages.numel() > 1 else 0)
    return (advantages - mean) / (std + eps)  # Â = (A - μ_A) / (σ_A + ε)


@dataclasses.dataclass
class Normalizers:
    """The running statistics a run keeps, and the scope of advantage normalization. All the
    statistics go into checkpoints and the saved policy, so evaluation sees what training saw."""

    advantage_scope: AdvantageScope
    obs: RunningMeanStd | None
    obs_clip: float
    reward: RewardScaler | None
    value_target: RunningMeanStd | None

    def observation(self, raw: Tensor, envs: Tensor | None = None) -> Tensor:
        """What the networks see: raw, or clip((o - mean) / std, +-obs_clip). `envs` (the env of
        each row) does not matter here: every env of a run shares the statistics."""
        if self.obs is None:
            return raw
        return self.obs.normalize(raw.float(), clip=self.obs_clip)

    def values(self, critic_output: Tensor) -> Tensor:
        """The critic's output in return units (it predicts normalized targets when that is on)."""
        if self.value_target is None:
            return critic_output
        return self.value_target.denormalize(critic_output)

    def state_dict(self) -> dict[str, Any]:
        return {
            name: getattr(self, name).state_dict()
            for name in ("obs", "reward", "value_target")
            if getattr(self, name) is not None
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, stats in state.items():
            getattr(self, name).load_state_dict(stats)


def normalizers(
    obs_shape: Sequence[int],
    num_envs: int,
    gamma: float,
    device: torch.device | str,
    *,
    advantage_scope: AdvantageScope = "minibatch",
    observation: bool = False,
    obs_clip: Positive = 10.0,
    reward: bool = False,
    reward_clip: Positive = 10.0,
    value_target: bool = False,
) -> Normalizers:
    """What a run normalizes: the `_target_` of the `normalization` group (conf/normalization/).

    Each flag is one of the well-known PPO implementation details:
        advantage_scope  where (A - mean) / (std + eps) applies (`normalize_advantages`):
                         "minibatch" before each policy loss (the PPO default), "batch" once over
                         the rollout after the estimator, "none" raw advantages
        observation      running mean/std per feature, updated from every rollout step, applied
                         before both networks; normalized values are clipped to +-obs_clip
        reward           reward scaling (`RewardScaler`) with the run's gamma, clipped to
                         +-reward_clip; episodic returns are still reported in raw rewards
        value_target     the critic predicts returns normalized by their running mean/std;
                         its output is denormalized before it enters the advantage estimator
    """
    return Normalizers(
        advantage_scope=advantage_scope,
        obs=RunningMeanStd(obs_shape, device=device) if observation else None,
        obs_clip=obs_clip,
        reward=RewardScaler(num_envs, gamma, reward_clip, device=device) if reward else None,
        value_target=RunningMeanStd((), device=device) if value_target else None,
    )
