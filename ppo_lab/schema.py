"""Signatures as schemas: check config values against a callable's annotated parameters.

A config group entry names a ppo_lab callable; the callable's keyword parameters, with their type
hints and `Range` markers, are the schema of that entry. `check_kwargs` reports every unknown key,
wrong type and out-of-range value in one pass, each as a line naming the key and what is valid.

    def clip(logp_new, logp_old, advantages, *,
             clip_eps: Annotated[float, Range(0, 1, open=True)] = 0.2)
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal, Union


class ConfigError(ValueError):
    """An invalid configuration, reported before any work starts. One line per problem."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(f"  - {p}" for p in self.problems))


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed interval of a number. `open=True` excludes both ends; `low_open`/`high_open` one."""

    low: float | None = None
    high: float | None = None
    open: bool = False
    low_open: bool = False
    high_open: bool = False

    def contains(self, x: float) -> bool:
        lo_open, hi_open = self.open or self.low_open, self.open or self.high_open
        if self.low is not None and (x < self.low or (lo_open and x == self.low)):
            return False
        return self.high is None or not (x > self.high or (hi_open and x == self.high))

    def __str__(self) -> str:
        lo_open, hi_open = self.open or self.low_open, self.open or self.high_open
        if self.high is None:
            return f"{'>' if lo_open else '>='} {self.low}"
        if self.low is None:
            return f"{'<' if hi_open else '<='} {self.high}"
        return f"in {'(' if lo_open else '['}{self.low}, {self.high}{')' if hi_open else ']'}"


POSITIVE = Range(0, None, low_open=True)
NON_NEGATIVE = Range(0, None)
UNIT_INTERVAL = Range(0, 1)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple, Sequence):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    """Whether a plain (OmegaConf-converted) config value fits a type hint."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _matches(value, typing.get_args(tp)[0])
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping) or tp is dict:
        return isinstance(value, Mapping)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _ranges(tp: Any) -> list[Range]:
    if typing.get_origin(tp) is typing.Annotated:
        return [m for m in typing.get_args(tp)[1:] if isinstance(m, Range)]
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [r for a in typing.get_args(tp) for r in _ranges(a)]
    return []


def parameters(fn: Callable[..., Any], skip: Collection[str] = ()) -> dict[str, inspect.Parameter]:
    """Keyword-settable parameters of `fn` (a function, class or dataclass), minus `skip`."""
    target = fn.__init__ if inspect.isclass(fn) and not dataclasses.is_dataclass(fn) else fn
    sig = inspect.signature(target)
    hints = typing.get_type_hints(target, include_extras=True)
    out = {}
    for name, p in sig.parameters.items():
        if name in skip or name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = p.replace(annotation=hints.get(name, p.annotation))
    return out


def check_kwargs(
    fn: Callable[..., Any],
    given: Mapping[str, Any],
    where: str,
    *,
    skip: Collection[str] = (),
    extra_allowed: Collection[str] = (),
) -> list[str]:
    """Problems with calling `fn(**given)` as a config entry, one message per problem.

    `skip` names parameters supplied at run time (observation space, device...), which therefore
    must not be set in the config; `extra_allowed` names keys consumed elsewhere.
    `where` is the config path of `given` (e.g. "loss"), used to name keys in messages.
    """
    params = parameters(fn, skip)
    problems = []
    prefix = f"{where}." if where else ""
    fn_name = getattr(fn, "__qualname__", repr(fn))
    for key, value in given.items():
        if key in extra_allowed:
            continue
        if key not in params:
            valid = ", ".join(sorted([*params, *extra_allowed])) or "none"
            problems.append(f"{prefix}{key}: unknown key for {fn_name}; valid keys: {valid}")
            continue
        tp = params[key].annotation
        if not _matches(value, tp):
            problems.append(f"{prefix}{key}={value!r}: expected {_type_name(tp)}")
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for r in _ranges(tp):
                if not r.contains(value):
                    problems.append(f"{prefix}{key}={value!r}: must be {r}")
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and name not in given:
            problems.append(f"{prefix}{name}: required by {fn_name} but not set")
    return problems
