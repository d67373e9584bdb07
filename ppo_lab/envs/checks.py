"""Checks of an env entry that need no env: the id against the backend's registry, the
constructor's keyword arguments against its signature or spec. Each message names the key and
what would be valid; `module:Class` ids run their module's code, so they must be allowed."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ppo_lab.components import is_allowed, not_allowed


def unknown_id(env_id: str, known: Iterable[str], what: str) -> str:
    close = difflib.get_close_matches(env_id, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"env.id={env_id!r}: not {what}{hint}"


def user_factory(env_id: str, allow: Sequence[str]) -> tuple[Callable[..., Any] | None, list[str]]:
    """The `module:attr` callable of a user env, imported only if the user allowed it."""
    module, _, attr = env_id.partition(":")
    if not module or not attr:
        return None, [f"env.id={env_id!r}: expected `module:Class` or a registered id"]
    if not is_allowed(env_id, allow):
        return None, [not_allowed(env_id, "env.id")]
    try:
        return getattr(importlib.import_module(module), attr), []
    except (ImportError, AttributeError) as err:
        return None, [f"env.id={env_id!r}: cannot be imported ({err})"]


def signature_problems(
    fn: Callable[..., Any],
    kwargs: Mapping[str, Any],
    extra: Sequence[str],
    where: str = "env.kwargs",
) -> list[str]:
    """Keys `fn(**kwargs)` would not accept (unless it takes **kwargs); `extra` are also valid."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    valid = sorted({*params, *extra} - {"self"})
    return [
        f"{where}.{key}: not an argument of {getattr(fn, '__qualname__', fn)}; valid: "
        f"{', '.join(valid)}"
        for key in kwargs
        if key not in params and key not in extra
    ]


def typed_like_defaults(
    kwargs: Mapping[str, Any], defaults: Mapping[str, Any], where: str = "env.kwargs"
) -> list[str]:
    """Values whose type differs from the default's (int, float, bool, str; ints pass as float)."""
    problems = []
    for key, value in kwargs.items():
        default = defaults.get(key)
        if default is None or value is None:
            continue
        kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
        expected = kinds.get(type(default))
        if expected is None:
            continue
        if not isinstance(value, expected) or (
            type(default) is not bool and isinstance(value, bool)
        ):
            problems.append(
                f"{where}.{key}={value!r}: expected {type(default).__name__} (default {default!r})"
            )
    return problems
