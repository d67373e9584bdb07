"""A single run's parameters as views into one buffer, and their gradients into another.

A small network's minibatch step is dominated by per-tensor overhead, not arithmetic: zeroing,
clipping and stepping the ten tensors of CartPole's two 64x64 MLPs took 357-484 us of a 1.5-2.0 ms
step on this CPU (fused Adam, clip_grad_norm_, zero_grad). With every parameter a view into one
flat tensor and every gradient a view into another, the optimizer steps one tensor and the
gradient norm is one reduction: 186-228 us (`python benchmarks/minibatch_step.py`). Autograd
accumulates into the gradient views in place, so they are zeroed in place (`zero_gradients`),
never set to None.

Checkpoints keep torch's per-parameter optimizer format (`per_parameter_state`, `flat_state`):
a population member's checkpoint resumes as a single run, and older checkpoints still load.
A population stacks its members' parameters the same way, one row each (`stack_parameters`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn


def flatten_parameters(module: nn.Module) -> nn.Parameter:
    """Re-home `module`'s parameters (and gradients) as views into one flat parameter, returned
    for the optimizer. Each view keeps its tensor's strides (channels-last convolution weights
    stay channels-last). Call it after moving the module to its device."""
    params = list(module.parameters())
    if len({(p.device, p.dtype) for p in params}) != 1 or any(p.dim() == 0 for p in params):
        raise ValueError("flatten_parameters: needs parameters of one device and dtype, 1-D+")
    first = params[0]
    flat = torch.empty(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(flat)
    views = zip(params, _param_views(flat, params), _param_views(grad, params), strict=True)
    for p, view, grad_view in views:
        view.copy_(p.detach())
        p.data = view
        p.grad = grad_view
    flat_param = nn.Parameter(flat)  # shares `flat`'s storage: its step moves every view
    flat_param.grad = grad
    return flat_param


def stack_parameters(
    modules: Sequence[nn.Module], shapes: Mapping[str, torch.Size] | None = None
) -> tuple[nn.Parameter, dict[str, nn.Parameter]]:
    """M modules of one architecture as one flat parameter [M, P] (row k: module k's parameters
    in `parameters()` order, so row k is what `flatten_parameters` makes of module k), its
    gradient one [M, P] buffer, and per parameter name a leaf [M, *shape] that views both (what
    a population's networks compute with). `shapes` may give a name another shape of the same
    size, e.g. [M, 1, A] for a parameter that broadcasts over a batch."""
    named = [dict(m.named_parameters()) for m in modules]
    members, first = len(modules), next(iter(named[0].values()))
    sizes = [p.numel() for p in named[0].values()]
    flat = torch.empty(members, sum(sizes), dtype=first.dtype, device=first.device)
    grad = torch.zeros_like(flat)
    leaves: dict[str, nn.Parameter] = {}
    offset = 0
    for (name, p), size in zip(named[0].items(), sizes, strict=True):
        shape = shapes[name] if shapes is not None else torch.Size((members, *p.shape))
        columns = slice(offset, offset + size)
        flat[:, columns].copy_(torch.stack([n[name].detach().reshape(-1) for n in named]))
        leaf = nn.Parameter(flat[:, columns].view(shape))  # shares `flat`'s storage
        leaf.grad = grad[:, columns].view(shape)  # autograd accumulates here, in place
        leaves[name] = leaf
        offset += size
    flat_param = nn.Parameter(flat)
    flat_param.grad = grad
    return flat_param, leaves


def per_parameter_state(state: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """A flat optimizer's `state_dict()` as the same optimizer over `module.parameters()` writes
    it: each moment split into the parameters' shapes, scalars (Adam's step) repeated."""
    params = list(module.parameters())
    flat_state = state["state"].get(0, {})
    per_param: dict[int, dict[str, Any]] = {i: {} for i in range(len(params))} if flat_state else {}
    for key, value in flat_state.items():
        if isinstance(value, Tensor) and value.dim() == 1 and value.numel() > 1:
            for i, chunk in enumerate(_param_views(value, params)):
                per_param[i][key] = chunk.clone(memory_format=torch.contiguous_format)
        else:
            for i in per_param:
                per_param[i][key] = value.clone() if isinstance(value, Tensor) else value
    groups = [{**group, "params": list(range(len(params)))} for group in state["param_groups"]]
    return {"state": per_param, "param_groups": groups}


def flat_state(state: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """The inverse of `per_parameter_state`: a per-parameter optimizer state (a checkpoint) for
    the optimizer over `flatten_parameters(module)`."""
    params = list(module.parameters())
    saved = state["state"]
    flat: dict[str, Any] = {}
    if saved:
        for key, value in saved[0].items():
            if isinstance(value, Tensor) and value.shape == params[0].shape:
                moment = value.new_empty(sum(p.numel() for p in params))
                for i, view in enumerate(_param_views(moment, params)):
                    view.copy_(saved[i][key])
                flat[key] = moment
            else:
                flat[key] = value
    groups = [{**group, "params": [0]} for group in state["param_groups"]]
    return {"state": {0: flat} if flat else {}, "param_groups": groups}


def _param_views(flat: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """Views of a flat buffer laid out as `flatten_parameters` lays out `params`: each in its
    parameter's shape and strides, so element for element a channels-last weight's moment."""
    views, offset = [], flat.storage_offset()
    for p in params:
        views.append(flat.as_strided(p.shape, p.stride(), offset))
        offset += p.numel()
    return views


def zero_gradients(params: Sequence[Tensor]) -> None:
    """Zero the gradients in place (views stay views); one op for a flat parameter, where
    `Optimizer.zero_grad` spends 50-70 us of Python."""
    for p in params:
        if p.grad is not None:
            p.grad.zero_()


def clip_scale(max_norm: float | Tensor, norm: Tensor) -> Tensor:
    """torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max_norm / (norm + 1e-6)). Single
    runs (`clip_grad_norm`) and populations (`population.optim.clip_grad_norms`, per member)."""
    return torch.clamp(max_norm / (norm + 1e-6), max=1.0)


def clip_grad_norm(params: Sequence[Tensor], max_norm: float) -> Tensor | None:
    """The gradients' global L2 norm before clipping, having scaled them in place by
    `clip_scale` (torch.nn.utils.clip_grad_norm_'s rule); None, leaving them
    as they are, when the norm is not finite. For a flat parameter that is one reduction and one
    multiply: 60-90 us here, against clip_grad_norm_'s 170-240."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = [torch.linalg.vector_norm(g) for g in grads]
    norm = norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))
    if not bool(torch.isfinite(norm)):  # a host sync on a GPU (as clip_grad_norm_'s check)
        return None
    if max_norm < math.inf:
        scale = clip_scale(max_norm, norm)
        for g in grads:
            g.mul_(scale)
    return norm
