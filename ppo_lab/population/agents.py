"""M actor-critics as one: parameters stacked along a leading member dimension.

Each member is built as its separate run would build it (`torch.manual_seed(seed)`, then the
network factory), then the M modules' parameters are stacked (`torch.func.stack_module_state`)
and every forward pass is one `vmap` of `functional_call` over the members: M agents' matrix
products run as batched ones, with one set of Python and autograd overhead.

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
from torch.func import functional_call, stack_module_state, vmap

from ppo_lab.networks import ActorCritic, pixels_for_vmap


class _Method(nn.Module):
    """Calls one method of the wrapped module as `forward` (functional_call calls forward)."""

    def __init__(self, agent: ActorCritic):
        super().__init__()
        self.agent = agent

    def forward(self, method: str, *args: Tensor) -> Any:
        if method == "act":  # (obs, noise): vmap slices positional tensors only
            obs, noise = args
            return self.agent.act(obs, noise=noise)
        return getattr(self.agent, method)(*args)


class MemberAgents:
    """`M` ActorCritics with stacked parameters [M, ...]; `parameters()` are the leaf tensors the
    optimizer steps. `evaluate` and `value` take and return member-major tensors [M, B, ...];
    `act` takes env-major observations [M * N, ...], as the rollout holds them."""

    def __init__(self, agents: Sequence[ActorCritic], generators: Sequence[torch.Generator]):
        self.num_members = len(agents)
        params, buffers = stack_module_state(list(agents))
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        template = copy.deepcopy(agents[0]).to("meta")
        pixels_for_vmap(template)
        self._template = _Method(template)
        self._head = agents[0].head
        self._param_dim = agents[0].head.linear.out_features  # logits or means per sample
        self.generators = list(generators)
        self._calls: dict[str, Callable[..., Any]] = {}

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def call(self, method: str, *args: Tensor) -> Any:
        """`ActorCritic.<method>(*args)` of every member on its own slice of args [M, ...]."""
        if method not in self._calls:

            def one(params: dict[str, Tensor], buffers: dict[str, Tensor], *args: Tensor) -> Any:
                named = {f"agent.{k}": v for k, v in {**params, **buffers}.items()}
                return functional_call(self._template, named, (method, *args))

            self._calls[method] = vmap(one)
        return self._calls[method](self.params, self.buffers, *args)

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log pi(a|s), entropy, V(s)) [M, B] each, with gradients to the stacked parameters."""
        return self.call("evaluate", obs, actions)

    def value(self, obs: Tensor) -> Tensor:
        """V(s) [M, B]."""
        return self.call("value", obs)

    def act(self, obs: Tensor) -> Tensor:
        """Sampled actions [M * N, ...] for env-major observations [M * N, ...]."""
        members = obs.view(self.num_members, -1, *obs.shape[1:])
        shape = (members.shape[1], self._param_dim)
        noise = torch.stack([self._head.draw_noise(shape, g) for g in self.generators])
        actions = self.call("act", members, noise)
        return actions.reshape(-1, *actions.shape[2:])

    def member(self, k: int) -> ActorCritic:
        """Member k as a standalone module (a copy of its parameters)."""
        agent = copy.deepcopy(self._template.agent).to_empty(device=self.device)
        state = {name: value[k].detach().clone() for name, value in self.params.items()}
        state.update({name: value[k].clone() for name, value in self.buffers.items()})
        agent.load_state_dict(state)
        return agent

    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Set member k's parameters and buffers from an ActorCritic state dict."""
        with torch.no_grad():
            for name, value in {**self.params, **self.buffers}.items():
                value[k].copy_(state[name])

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device
