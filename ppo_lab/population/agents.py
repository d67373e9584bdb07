"""M actor-critics as one: parameters stacked along a leading member dimension.

Each member is built as its separate run would build it (`torch.manual_seed(seed)`, then the
network factory), then the M modules' parameters are stacked into one flat parameter [M, P]
(`flat_params.stack_parameters`: the optimizer and the gradient clip each touch one tensor), with
a leaf [M, ...] per parameter viewing it. MLPs compute with a member-batched copy of their module
(`population.batched`: one baddbmm per layer), so M agents' products run as batched ones with
one set of Python and autograd overhead. Other networks (the CNNs), whose arithmetic dwarfs that
overhead, run one `functional_call` per member on the CPU, channels-last as a single run, and
one `vmap` of it over the members elsewhere.

Layouts. The envs of a population are one vector env of M * N envs, member-major: env e belongs
to member e // N. Rollout tensors are [T, M * N, ...]; the update works on [M, B, ...].

Randomness. Every member has its own `torch.Generator`, which starts where its separate run's
global generator would be after building the network; action noise and minibatch order are drawn
from it in the same order as a separate run draws them, so a member reproduces that run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ppo_lab.flat_params import stack_parameters
from ppo_lab.networks import ActorCritic, pixels_for_vmap
from ppo_lab.population.batched import batchable, member_batched, member_shapes


class _Method(nn.Module):
    """Calls one method of the wrapped module as `forward` (functional_call calls forward), with
    `call`'s positional arguments (act's noise among them) for every way members run."""

    def __init__(self, agent: ActorCritic):
        super().__init__()
        self.agent = agent

    def forward(self, method: str, *args: Tensor) -> Any:
        if method == "act":  # (obs, noise): vmap slices positional tensors only
            obs, noise = args
            return self.agent.act(obs, noise=noise)
        return getattr(self.agent, method)(*args)


class MemberAgents:
    """`M` ActorCritics with stacked parameters [M, ...] viewing one flat parameter `flat`
    [M, P], the tensor the optimizer steps (its `grad` is every member's gradient). `evaluate`
    and `value` take and return member-major tensors [M, B, ...]; `act` takes env-major
    observations [M * N, ...], as the rollout holds them."""

    def __init__(
        self,
        agents: Sequence[ActorCritic],
        generators: Sequence[torch.Generator],
        loop: bool | None = None,
    ):
        """`loop`: how a network that is not member-batched (a CNN) runs its members: one
        pass each (True), or one `vmap` for all (False); None = loop on the CPU, vmap elsewhere.
        On this CPU a loop of channels-last passes took 235-242 ms for two Nature CNN members'
        forward and backward on 256 frames each, vmap's grouped convolutions 320-380 ms."""
        self.num_members = len(agents)
        template = agents[0]
        self.shapes = {name: p.shape for name, p in template.named_parameters()}  # one member's
        batched = batchable(template)
        shapes = member_shapes(template, self.num_members) if batched else None
        self.flat, self.params = stack_parameters(agents, shapes)
        self.buffers = {
            name: torch.stack([dict(a.named_buffers())[name] for a in agents])
            for name, _ in template.named_buffers()
        }
        self._batched = _Method(member_batched(template, self.params)) if batched else None
        self._loop = self.flat.device.type == "cpu" if loop is None else loop
        self._template = _Method(copy.deepcopy(template).to("meta"))  # a single run's layout
        vmapped = copy.deepcopy(template).to("meta")
        pixels_for_vmap(vmapped)
        self._vmapped = _Method(vmapped)
        self._head = template.head
        self._param_dim = template.head.linear.out_features  # logits or means per sample
        self.generators = list(generators)
        self._calls: dict[str, Callable[..., Any]] = {}

    def call(self, method: str, *args: Tensor) -> Any:
        """`ActorCritic.<method>(*args)` of every member on its own slice of args [M, ...]."""
        if self._batched is not None:
            return self._batched(method, *args)
        if self._loop:
            return self._each_member(method, *args)
        if method not in self._calls:

            def one(params: dict[str, Tensor], buffers: dict[str, Tensor], *args: Tensor) -> Any:
                named = {f"agent.{k}": v for k, v in {**params, **buffers}.items()}
                return functional_call(self._vmapped, named, (method, *args))

            self._calls[method] = vmap(one)
        return self._calls[method](self.params, self.buffers, *args)

    def _each_member(self, method: str, *args: Tensor) -> Any:
        """`call` as M passes, member k's on its parameters' row k, the results stacked."""
        stacked = {**self.params, **self.buffers}
        outs = [
            functional_call(
                self._template,
                {f"agent.{name}": value[k] for name, value in stacked.items()},
                (method, *(arg[k] for arg in args)),
            )
            for k in range(self.num_members)
        ]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*outs, strict=True))
        return torch.stack(outs)

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log pi(a|s), entropy, V(s)) [M, B] each, with gradients to the stacked parameters."""
        return self.call("evaluate", obs, actions)

    def value(self, obs: Tensor) -> Tensor:
        """V(s) [M, B]."""
        return self.call("value", obs)

    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Sampled actions (or the distributions' modes) [M * N, ...] for env-major observations
        [M * N, ...]."""
        members = obs.view(self.num_members, -1, *obs.shape[1:])
        if deterministic:  # no noise drawn: the members' generators stay where they were
            actions = self._head.mode(self.call("policy_params", members))
        else:
            shape = (members.shape[1], self._param_dim)
            noise = torch.stack([self._head.draw_noise(shape, g) for g in self.generators])
            actions = self.call("act", members, noise)
        return actions.reshape(-1, *actions.shape[2:])

    def member(self, k: int) -> ActorCritic:
        """Member k as a standalone module (a copy of its parameters)."""
        agent = copy.deepcopy(self._template.agent).to_empty(device=self.device)
        agent.load_state_dict(self.member_state_dict(k))
        return agent

    def member_state_dict(self, k: int) -> dict[str, Tensor]:
        """Member k's parameters and buffers (copies), as its ActorCritic's state_dict."""
        state = {
            name: value[k].detach().reshape(self.shapes[name]).clone()
            for name, value in self.params.items()
        }
        state.update({name: value[k].clone() for name, value in self.buffers.items()})
        return state

    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Set member k's parameters and buffers from an ActorCritic state dict."""
        with torch.no_grad():
            for name, value in {**self.params, **self.buffers}.items():
                value[k].copy_(state[name].reshape(value[k].shape))

    @property
    def device(self) -> torch.device:
        return self.flat.device
