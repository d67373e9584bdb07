"""Running statistics of M members at once: each member's own, stacked along a member axis.

A member normalizes with its own statistics exactly as its separate run would: the statistics are
`RunningMeanStd`s of shape (M, 1, *shape), fed each member's samples ([*batch, M, 1, *shape]), so
member k's slice is what its run's `RunningMeanStd(shape)` holds. Rollouts are env-major
([T, M * N, ...], env e of member e // N); `envs` names the env of each row where rows are a
subset (the final observations of truncated episodes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ppo_lab.normalization import (
    AdvantageScope,
    Normalizers,
    RunningMeanStd,
    scaled_reward_scan,
)


def _by_member(x: Tensor, members: int, trailing: int) -> Tensor:
    """[..., M * N, *shape] -> [..., N, M, 1, *shape]: samples of each member along its axis."""
    lead, shape = x.shape[: x.ndim - trailing - 1], x.shape[x.ndim - trailing :]
    split = x.reshape(*lead, members, -1, *shape)
    return split.movedim(-trailing - 2, -trailing - 1).unsqueeze(-trailing - 1)


def _stacked(stats: list[RunningMeanStd], device: torch.device) -> RunningMeanStd:
    """One RunningMeanStd of shape (M, 1, *shape) holding the members' statistics."""
    out = RunningMeanStd((len(stats), 1, *stats[0].shape), epsilon=stats[0].epsilon, device=device)
    out.mean.copy_(torch.stack([s.mean for s in stats]).unsqueeze(1))
    out.m2.copy_(torch.stack([s.m2 for s in stats]).unsqueeze(1))
    out.count = stats[0].count
    return out


def _member_stats(stacked: RunningMeanStd, k: int) -> dict[str, Any]:
    return {
        "mean": stacked.mean[k, 0].clone(),
        "m2": stacked.m2[k, 0].clone(),
        "count": stacked.count,
        "epsilon": stacked.epsilon,
    }


class MemberNormalizers:
    """The members' `Normalizers` (one per member, all with the same switches) as one object
    with `Normalizers`' interface over env-major rollouts."""

    def __init__(self, members: list[Normalizers], envs_per_member: int, gamma: Tensor | float):
        first = members[0]
        self.members = members
        self.num_members, self.envs_per_member = len(members), envs_per_member
        self.advantage_scope: AdvantageScope = first.advantage_scope
        self.obs_clip = first.obs_clip
        device = (first.obs or first.value_target or RunningMeanStd()).mean.device
        self.obs = None if first.obs is None else _stacked([m.obs for m in members], device)
        self.value_target = (
            None
            if first.value_target is None
            else _stacked([m.value_target for m in members], device)
        )
        self.reward = None
        if first.reward is not None:
            self.reward = MemberRewardScaler(
                [m.reward for m in members], envs_per_member, gamma, device
            )

    def observation(self, raw: Tensor, envs: Tensor | None = None) -> Tensor:
        """What the networks see, each row with its member's statistics: raw rows [M * N, ...],
        or the rows of `envs` [K] (env indices)."""
        if self.obs is None:
            return raw
        raw = raw.float()
        mean, std = self.obs.mean.float(), self.obs.std.float()  # [M, 1, *shape]
        if envs is None:
            members = raw.view(self.num_members, -1, *raw.shape[1:])
            y = ((members - mean) / std).clamp(-self.obs_clip, self.obs_clip)
            return y.view(raw.shape)
        member = envs // self.envs_per_member
        y = (raw - mean[member, 0]) / std[member, 0]
        return y.clamp(-self.obs_clip, self.obs_clip)

    def update_observations(self, raw: Tensor) -> None:
        """Merge a rollout's raw observations [T, M * N, *shape] into each member's statistics."""
        if self.obs is not None:
            self.obs.update(_by_member(raw, self.num_members, raw.ndim - 2))

    def values(self, critic_output: Tensor) -> Tensor:
        """Critic outputs [M, B] in return units."""
        if self.value_target is None:
            return critic_output
        return self.value_target.denormalize(critic_output)

    def update_value_targets(self, returns: Tensor) -> None:
        """Merge each member's value targets [M, B] into its statistics."""
        if self.value_target is not None:
            self.value_target.update(returns.transpose(0, 1).unsqueeze(-1))

    def member(self, k: int) -> Normalizers:
        """Member k's statistics as a standalone `Normalizers` (for checkpoints and evaluation)."""
        normalizers = self.members[k]
        normalizers.load_state_dict(self.member_state_dict(k))
        return normalizers

    def member_state_dict(self, k: int) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.obs is not None:
            state["obs"] = _member_stats(self.obs, k)
        if self.reward is not None:
            state["reward"] = self.reward.member_state_dict(k)
        if self.value_target is not None:
            state["value_target"] = _member_stats(self.value_target, k)
        return state

    def load_member_state_dict(self, k: int, state: dict[str, Any]) -> None:
        self.members[k].load_state_dict(state)
        if self.obs is not None:
            self._load(self.obs, k, self.members[k].obs)
        if self.value_target is not None:
            self._load(self.value_target, k, self.members[k].value_target)
        if self.reward is not None and self.members[k].reward is not None:
            self.reward.load_member(k, self.members[k].reward)

    @staticmethod
    def _load(stacked: RunningMeanStd, k: int, stats: RunningMeanStd | None) -> None:
        assert stats is not None
        stacked.mean[k, 0] = stats.mean
        stacked.m2[k, 0] = stats.m2
        stacked.count = stats.count


class MemberRewardScaler:
    """`RewardScaler` per member over env-major steps [M * N]: G per env, Var[G] per member."""

    def __init__(
        self, scalers: list[Any], envs_per_member: int, gamma: Tensor | float, device: torch.device
    ):
        self.num_members, self.envs_per_member = len(scalers), envs_per_member
        self.gamma = gamma  # [M * N] when the members' discounts differ
        self.clip = scalers[0].clip
        self.returns = torch.cat([s.returns for s in scalers]).to(device)  # G, [M * N]
        self.rms = _stacked([s.rms for s in scalers], device)  # (M, 1)

    def scale_rollout(self, rewards: Tensor, done: Tensor) -> Tensor:
        """A rollout [T, M * N] at once, each member with its own statistics."""
        mean, m2 = self.rms.mean.view(-1), self.rms.m2.view(-1)  # [M] views of (M, 1)
        scaled, count = scaled_reward_scan(
            rewards,
            done,
            self.returns,
            self.gamma,
            mean,
            m2,
            self.rms.count,
            self.rms.epsilon,
            self.clip,
        )
        self.rms.count = count
        return scaled

    def _rows(self, k: int) -> slice:
        return slice(k * self.envs_per_member, (k + 1) * self.envs_per_member)

    def member_state_dict(self, k: int) -> dict[str, Any]:
        gamma = self.gamma if isinstance(self.gamma, float) else float(self.gamma[self._rows(k)][0])
        return {
            "returns": self.returns[self._rows(k)].clone(),
            "rms": _member_stats(self.rms, k),
            "gamma": gamma,
            "clip": self.clip,
        }

    def load_member(self, k: int, scaler: Any) -> None:
        self.returns[self._rows(k)] = scaler.returns
        MemberNormalizers._load(self.rms, k, scaler.rms)
