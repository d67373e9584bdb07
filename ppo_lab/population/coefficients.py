"""Members' coefficients as tensors: M built components that differ only in numbers, as one.

`merge` takes the M members' built components (a loss, an estimator: `functools.partial`s and
dataclasses of them) and returns one of the same structure in which every number the members
disagree on is a `Varying` tensor [M]. `varying_leaves` lists those tensors in a fixed order and
`bind` rebuilds the component with chosen values in their place: a member's own 0-dim slices
inside `vmap` (the losses), or values per env column [M * N] (the estimators, which work
element-wise over envs). Anything else that differs (a function, a string, a flag) cannot be
batched and is a `ConfigError` naming it; so is a differing int (n-step's horizon
sets the shape of the computation, not a coefficient).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from ppo_lab.components import ConfigError


@dataclasses.dataclass(frozen=True)
class Varying:
    """A coefficient that differs between members: values [M]."""

    values: Tensor


def _is_float(value: Any) -> bool:
    return isinstance(value, float)


def merge(components: Sequence[Any], where: str) -> Any:
    """One component for M members' equal-structured components (see the module docstring)."""
    first = components[0]
    if all(c == first for c in components[1:]) and not isinstance(first, functools.partial):
        return first
    if all(_is_float(c) for c in components):  # a coefficient; an int (a horizon) is structure
        return Varying(torch.tensor(components))
    if all(isinstance(c, functools.partial) for c in components):
        same_call = all(
            c.func is first.func
            and c.args == first.args
            and c.keywords.keys() == first.keywords.keys()
            for c in components
        )
        if same_call:
            keywords = {
                key: merge([c.keywords[key] for c in components], f"{where}.{key}")
                for key in first.keywords
            }
            return functools.partial(first.func, *first.args, **keywords)
    if dataclasses.is_dataclass(first) and all(type(c) is type(first) for c in components):
        fields = {
            f.name: merge([getattr(c, f.name) for c in components], f"{where}.{f.name}")
            for f in dataclasses.fields(first)
        }
        return dataclasses.replace(first, **fields)
    values = ", ".join(sorted({repr(getattr(c, "func", c)) for c in components}))
    raise ConfigError(
        [
            f"{where}: the members differ in something a population cannot batch ({values}); "
            "only real-valued coefficients may differ between the members of a population"
        ]
    )


def _walk(component: Any) -> Iterator[Varying]:
    if isinstance(component, Varying):
        yield component
    elif isinstance(component, functools.partial):
        for value in component.keywords.values():
            yield from _walk(value)
    elif dataclasses.is_dataclass(component) and not isinstance(component, type):
        for f in dataclasses.fields(component):
            yield from _walk(getattr(component, f.name))


def varying_leaves(component: Any) -> list[Tensor]:
    """The [M] tensors of a merged component, in `bind`'s order."""
    return [leaf.values for leaf in _walk(component)]


def bind(component: Any, values: Sequence[Any]) -> Any:
    """The merged component with its `Varying` leaves replaced by `values`, in order."""
    remaining = iter(values)

    def rebuild(node: Any) -> Any:
        if isinstance(node, Varying):
            return next(remaining)
        if isinstance(node, functools.partial):
            keywords = {k: rebuild(v) for k, v in node.keywords.items()}
            return functools.partial(node.func, *node.args, **keywords)
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            changed = {f.name: rebuild(getattr(node, f.name)) for f in dataclasses.fields(node)}
            return _replace_unchecked(node, changed)
        return node

    return rebuild(component)


def _replace_unchecked(node: Any, fields: dict[str, Any]) -> Any:
    """dataclasses.replace without re-running __post_init__ (checked once, in `merge`)."""
    clone = object.__new__(type(node))
    for name, value in {**vars(node), **fields}.items():
        object.__setattr__(clone, name, value)
    return clone


def per_env(component: Any, envs_per_member: int, device: torch.device) -> Any:
    """The component with each member's coefficient repeated for its envs: [M * N]."""
    leaves = [v.to(device).repeat_interleave(envs_per_member) for v in varying_leaves(component)]
    return bind(component, leaves)
