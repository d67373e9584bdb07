"""Components: every config group entry is a `_target_`, built by `build`, checked by `check_entry`.

A group entry names a callable and sets its keyword-only parameters:

    # conf/loss/policy/clip.yaml
    _target_: ppo_lab.losses.policy.clip
    _partial_: true
    clip_eps: 0.2

    def clip(logp_new, logp_old, advantages, weight=None, *,
             clip_eps: Annotated[float, Interval(gt=0, lt=1)] = 0.2): ...

The rule is the same for every kind of component: parameters before the `*` are supplied by the
caller (the trainer: observation space, rollout tensors, ...), keyword-only parameters are the
entry's config, and their annotations (with `annotated_types` constraints) are its schema. pydantic
checks a whole entry at once and reports every problem with its key. An entry may hold
sub-entries (the loss's `policy` and `value`, the env's `backend`); they are checked the same way.

A component that needs trainer state beyond the standard inputs of its kind declares it with
`@trainer_inputs(...)`, visible on its definition (V-trace: the current policy's log-probs; the
KL-penalised loss: the KL coefficient); the trainer passes exactly what is declared.

Trust: config files are shared (experiments, sweeps, a colleague's YAML) and may not run code.
A `_target_` is imported only if it is the target of an entry in `conf/`'s own groups (the
registry) or the user allowed it on their machine with `PPO_LAB_ALLOW=<module>[,<module>...]`;
`_target_`s hidden inside plain values are refused, so nothing else is ever instantiated.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import annotated_types as at
import hydra.utils
from omegaconf import DictConfig
from pydantic import ConfigDict, ValidationError, create_model

Positive = Annotated[float, at.Gt(0)]
NonNegative = Annotated[float, at.Ge(0)]
UnitInterval = Annotated[float, at.Interval(ge=0, le=1)]
OpenUnitInterval = Annotated[float, at.Interval(gt=0, lt=1)]
PositiveInt = Annotated[int, at.Ge(1)]
NonNegativeInt = Annotated[int, at.Ge(0)]

ENTRY_KEYS = ("_target_", "_partial_")  # the only underscore keys an entry may carry
ALLOW_VAR = "PPO_LAB_ALLOW"  # module prefixes the user allows as targets and env modules
CONF_DIR = Path(__file__).parent / "conf"  # a link to the repo's conf/; in a wheel, a copy
SHARED_GROUPS = ("experiment", "sweep", "hydra")  # shared files: not part of the registry

F = TypeVar("F", bound=Callable[..., Any])


class ConfigError(ValueError):
    """An invalid configuration, reported before any work starts. One line per problem."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(f"  - {p}" for p in self.problems))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str]]]:
        return (ConfigError, (self.problems,))  # pickled across processes: the list, whole


def trainer_inputs(*names: str) -> Callable[[F], F]:
    """Declare the trainer state a component takes besides the standard inputs of its kind.

    @trainer_inputs("logp_behaviour", "logp_target")
    def vtrace(rewards, values, ..., gamma, logp_behaviour, logp_target, *, rho_bar=1.0): ...
    """

    def declare(fn: F) -> F:
        params = inspect.signature(fn).parameters
        missing = [n for n in names if n not in params]
        if missing:
            raise TypeError(f"{fn.__qualname__} declares inputs it does not take: {missing}")
        fn.trainer_inputs = frozenset(names)  # type: ignore[attr-defined]
        return fn

    return declare


def declared_inputs(component: Callable[..., Any]) -> frozenset[str]:
    """The trainer inputs a built component (or the callable behind a partial) declared."""
    while isinstance(component, functools.partial):
        component = component.func
    return getattr(component, "trainer_inputs", frozenset())


def inputs_declared_by(component: Callable[..., Any], **available: Any) -> dict[str, Any]:
    """The subset of the trainer's `available` state that `component` declared it takes."""
    declared = declared_inputs(component)
    missing = declared - available.keys()
    if missing:
        raise TypeError(
            f"{component} declares trainer inputs the trainer does not have: {sorted(missing)}"
        )
    return {name: available[name] for name in declared}


def config_parameters(target: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of `target` (function or class) with resolved annotations."""
    hints_of = target.__init__ if inspect.isclass(target) and "__init__" in vars(target) else target
    try:
        hints = typing.get_type_hints(hints_of, include_extras=True)
    except TypeError:  # a builtin or C callable: no annotations to read
        hints = {}
    return {
        name: p.replace(annotation=hints.get(name, p.annotation))
        for name, p in inspect.signature(target).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _is_entry(value: Any) -> bool:
    return isinstance(value, Mapping) and "_target_" in value


@functools.cache
def registered_targets(conf_dir: Path = CONF_DIR) -> frozenset[str]:
    """Every `_target_` named by an entry of conf/'s groups: the components ppo_lab ships."""
    from omegaconf import OmegaConf

    found: set[str] = set()
    for path in conf_dir.rglob("*.yaml"):
        if path.relative_to(conf_dir).parts[0] not in SHARED_GROUPS:
            found |= targets_in(OmegaConf.to_container(OmegaConf.load(path)))
    return frozenset(found)


def targets_in(node: Any) -> set[str]:
    """Every `_target_` named anywhere in a plain (nested dicts and lists) config."""
    if isinstance(node, Mapping):
        own = {node["_target_"]} if isinstance(node.get("_target_"), str) else set()
        return own.union(*(targets_in(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(targets_in(value) for value in node))
    return set()


def user_allowlist() -> tuple[str, ...]:
    """Module prefixes allowed on this machine by its user: `PPO_LAB_ALLOW=a.b,c`."""
    return tuple(p for p in re.split(r"[,\s]+", os.environ.get(ALLOW_VAR, "")) if p)


def is_allowed(path: str, allow: Sequence[str] = ()) -> bool:
    """Whether `path` (`pkg.module.name` or `pkg.module:name`) may be imported."""
    if path in registered_targets():
        return True
    return any(path == a or path.startswith((f"{a}.", f"{a}:")) for a in allow)


def not_allowed(path: str, key: str) -> str:
    return (
        f"{key}={path!r}: not an allowed component. Config files are untrusted: ppo_lab "
        "imports only the targets of conf/'s own entries, and modules you allow with "
        f"{ALLOW_VAR}=<module> in your environment"
    )


def _resolve_target(
    node: Mapping[str, Any], where: str, allow: Sequence[str] = ()
) -> tuple[Any, list[str]]:
    path = node.get("_target_")
    if not isinstance(path, str):
        return None, [f"{where}._target_: missing; a group entry names the callable it builds"]
    if not is_allowed(path, allow):
        return None, [not_allowed(path, f"{where}._target_")]
    try:
        return hydra.utils.get_object(path), []
    except Exception as err:  # any import failure is a config problem
        return None, [f"{where}._target_={path!r}: cannot be imported ({err})"]


@functools.cache
def schema_of(target: Callable[..., Any]) -> Any:
    """A pydantic model of `target`'s keyword-only parameters (strict, no NaN, no extra keys)."""
    fields: dict[str, Any] = {}
    for name, p in config_parameters(target).items():
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        fields[name] = (annotation, ... if p.default is inspect.Parameter.empty else p.default)
    config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, arbitrary_types_allowed=True
    )
    return create_model(
        f"{getattr(target, '__qualname__', 'entry')}Config", __config__=config, **fields
    )


def describe_error(error: Mapping[str, Any], where: str, target: Callable[..., Any]) -> str:
    """One line for one pydantic error: the key, the value, and what would be valid."""
    loc = list(error["loc"])
    key = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    name = getattr(target, "__qualname__", str(target))
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = ", ".join(sorted(config_parameters(target))) or "none"
        return f"{key}: unknown key for {name}; valid keys: {valid}"
    if kind == "missing":
        return f"{key}: required by {name} but not set"
    if kind in ("callable_type", "is_instance_of") and isinstance(error.get("input"), str):
        group = key.replace(".", "/")
        return (
            f"{key}={error['input']!r}: a component entry; pick one with "
            f"{group}={error['input']} (an entry of conf/{group}/)"
        )
    return f"{key}={error.get('input')!r}: {error['msg'].replace('Input should', 'should')}"


def check_entry(node: Any, where: str, allow: Sequence[str] = ()) -> list[str]:
    """Every problem with building `node` as a component entry at config path `where`.

    Nothing is imported unless it is allowed (`is_allowed`): the registry, or `allow`.
    """
    if not isinstance(node, Mapping):
        return [f"{where}: expected a group entry (a mapping with _target_), got {node!r}"]
    target, problems = _resolve_target(node, where, allow)
    if target is None:
        return problems
    takes_inputs = caller_inputs(target)
    if takes_inputs and node.get("_partial_") is not True:
        problems.append(
            f"{where}._partial_: must be true; {getattr(target, '__qualname__', '')} "
            f"takes {', '.join(takes_inputs)} from its caller"
        )
    unknown_underscored = [k for k in node if str(k).startswith("_") and k not in ENTRY_KEYS]
    problems += [
        f"{where}.{k}: not allowed in an entry; only {', '.join(ENTRY_KEYS)}"
        for k in unknown_underscored
    ]
    values: dict[str, Any] = {}  # plain values, validated below; sub-entries are checked apart
    for key, value in node.items():
        if key in ENTRY_KEYS or key in unknown_underscored:
            continue
        if _is_entry(value):  # a sub-entry (loss.policy, env.backend): checked on its own
            if key not in config_parameters(target):
                values[key] = value  # reported as an unknown key below
                continue
            problems += check_entry(value, f"{where}.{key}", allow)
        else:
            problems += _nested_targets(value, f"{where}.{key}")
            values[key] = value
    try:
        schema_of(target).model_validate(values)
    except ValidationError as err:
        sub_entries = {k for k, v in node.items() if _is_entry(v)}
        problems += [
            describe_error(e, where, target)
            for e in err.errors()
            if not (e["type"] == "missing" and e["loc"][0] in sub_entries)
        ]
    return problems


def _nested_targets(value: Any, where: str) -> list[str]:
    """A `_target_` hidden inside a plain value (env.kwargs, ...) would be instantiated too."""
    if isinstance(value, Mapping):
        if "_target_" in value:
            return [
                f"{where}._target_: not allowed inside a plain value; only an entry or one of "
                "its declared sub-entries names a callable"
            ]
        return [p for k, v in value.items() for p in _nested_targets(v, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _nested_targets(v, f"{where}[{i}]")]
    return []


def build(node: DictConfig | Mapping[str, Any], **runtime: Any) -> Any:
    """Build an entry and its sub-entries: the only call of `hydra.utils.instantiate`.

    A `_partial_` entry (one whose callable takes inputs from the caller) is called with
    `runtime` when given (`build(cfg.env, num_envs=8)`), else returned as a partial (a loss
    function the trainer calls per minibatch); any other entry is the object it constructs.
    """
    built = plain(hydra.utils.instantiate(node, _convert_="all"))
    return built(**runtime) if runtime else built


def plain(built: Any) -> Any:
    """Hydra's partials re-check its target policy on every call (~50 us); a loss is called
    per minibatch. The targets were allowed before anything was built, so hand out plain
    `functools.partial`s (also inside a built dataclass such as `PPOLoss`)."""
    if isinstance(built, functools.partial):
        keywords = {k: plain(v) for k, v in built.keywords.items()}
        return functools.partial(built.func, *built.args, **keywords)
    if dataclasses.is_dataclass(built) and not isinstance(built, type):
        changes = {f.name: plain(getattr(built, f.name)) for f in dataclasses.fields(built)}
        return dataclasses.replace(built, **changes)
    return built


def caller_inputs(target: Callable[..., Any]) -> list[str]:
    """The parameters of `target` that its caller supplies: those before the `*`."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [n for n, p in inspect.signature(target).parameters.items() if p.kind in kinds]
