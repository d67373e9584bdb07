"""MLP actor-critics of M members as one module whose layers hold [M, ...] parameters.

A network of linear layers, elementwise activations and a policy head (`network=mlp`) needs no
vmap: member k's linear layer is x_k W_k^T + b_k, and all M of them are one batched matrix product
(`torch.baddbmm`) on [M, B, in] inputs; activations, heads, log-probabilities and entropies act on
the last dimension and broadcast over the leading member dimension. vmap dispatches every op
through its batching rules, about 0.5 ms per call of CartPole's MLP on this CPU, whatever M is;
this module costs what one network costs plus the arithmetic (`python benchmarks/populations.py`).
CNNs keep vmap (`MemberAgents`), where the convolutions' arithmetic dwarfs the dispatch.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ppo_lab.networks import ActorCritic
from ppo_lab.networks.heads import CategoricalHead, GaussianHead, MultiDiscreteHead

# the module types a member-batched copy computes correctly on [M, B, ...] tensors
BATCHABLE = (
    ActorCritic,
    nn.Sequential,
    nn.Linear,
    nn.Tanh,
    nn.ReLU,
    nn.ELU,
    CategoricalHead,
    MultiDiscreteHead,
    GaussianHead,
)


class MemberLinear(nn.Module):
    """M linear layers: x [M, B, in] -> [M, B, out], y_k = x_k W_k^T + b_k, one baddbmm.
    `weight` [M, out, in] and `bias` [M, out] are the population's stacked leaves."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter):
        super().__init__()
        self.weight = weight
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def batchable(agent: nn.Module) -> bool:
    """Whether every part of `agent` computes member-wise on [M, B, ...] once its linear
    layers are `MemberLinear`s (no convolutions, no layers of unknown shape rules)."""
    return all(type(module) in BATCHABLE for module in agent.modules())


def member_shapes(agent: ActorCritic, members: int) -> dict[str, torch.Size]:
    """Each parameter's shape in the member-batched module: [M, *shape], except a Gaussian
    head's state-independent log-std, [M, 1, A], which broadcasts over the batch."""
    shapes = {name: torch.Size((members, *p.shape)) for name, p in agent.named_parameters()}
    if isinstance(agent.head, GaussianHead):
        shapes["head.log_std"] = torch.Size((members, 1, *agent.head.log_std.shape))
    return shapes


def member_batched(agent: ActorCritic, leaves: dict[str, nn.Parameter]) -> ActorCritic:
    """A copy of `agent`'s architecture computing M members at once with `leaves` (name ->
    [M, ...], shaped by `member_shapes`) as its parameters."""
    batched = copy.deepcopy(agent).to("meta")
    for name, module in list(batched.named_modules()):
        if isinstance(module, nn.Linear):
            parent, _, attr = name.rpartition(".")
            layer = MemberLinear(leaves[f"{name}.weight"], leaves[f"{name}.bias"])
            setattr(batched.get_submodule(parent), attr, layer)
    if isinstance(batched.head, GaussianHead):
        batched.head.log_std = leaves["head.log_std"]
    names = {name for name, _ in batched.named_parameters()}
    if names != set(leaves):
        raise ValueError(f"member_batched: unbatched parameters {sorted(names ^ set(leaves))}")
    return batched
