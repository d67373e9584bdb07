"""Config schema and validation: every problem is reported, with what would be valid, before
any environment is built.

Hydra composes `conf/`; this module checks the result. Run-level settings are typed by
`RunSettings`; each group entry is typed by the signature of the callable it names (see
`ppo_lab.schema`). `build` is the one place that calls `hydra.utils.instantiate`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any

import hydra.utils
from omegaconf import DictConfig, OmegaConf

from ppo_lab import advantages, normalization
from ppo_lab.losses import policy as policy_losses
from ppo_lab.losses import value as value_losses
from ppo_lab.schema import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    ConfigError,
    Range,
    check_kwargs,
    parameters,
)

PositiveInt = Annotated[int, Range(1, None)]

GROUPS = ("env", "network", "loss", "advantage", "normalization", "optim", "logger")

# Parameters each kind of group callable receives at run time, not from the config.
RUNTIME_ARGS = {
    "env": ("num_envs",),
    "network": ("observation_space", "action_space"),
    "optim": ("params",),
    "logger": ("run_dir", "config", "choices", "run_name"),
    "policy_loss": ("logp_new", "logp_old", "advantages", "weight"),
    "value_loss": ("values", "old_values", "returns", "weight"),
    "advantage": ("rewards", "values", "next_values", "terminated", "done", "gamma",
                  "logp_behaviour", "logp_target"),
}


@dataclass(frozen=True)
class RunSettings:
    """Run-level settings: the top of conf/config.yaml."""

    seed: Annotated[int, Range(0, None)]
    total_timesteps: PositiveInt
    num_envs: PositiveInt
    num_steps: PositiveInt
    update_epochs: PositiveInt
    num_minibatches: PositiveInt
    gamma: Annotated[float, UNIT_INTERVAL]
    anneal_lr: bool
    max_grad_norm: Annotated[float, POSITIVE] | None
    device: str
    torch_threads: Annotated[int, Range(0, None)]
    checkpoint_interval: Annotated[int, Range(0, None)]
    eval_episodes: Annotated[int, Range(0, None)]
    resume: bool = True  # continue from <run dir>/checkpoint.pt when there is one (requeue)
    eval_interval: Annotated[int, Range(0, None)] = 0
    eval_video: bool = False
    seeds_per_trial: PositiveInt = 1  # >1: one job trains several seeds (ppo_lab/job.py)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size


@dataclass(frozen=True)
class LossSettings:
    """The `loss` group: a policy loss and a value loss by name, their coefficients alongside."""

    policy: str
    value: str
    policy_fn: Callable[..., Any]
    value_fn: Callable[..., Any]
    policy_kwargs: dict[str, Any]
    value_kwargs: dict[str, Any]
    vf_coef: float
    ent_coef: float
    target_kl: float | None
    kl_target: float | None

    @property
    def initial_kl_beta(self) -> float | None:
        """The KL-penalty coefficient to start from; None when the policy loss has none."""
        beta = inspect.signature(self.policy_fn).parameters.get("kl_beta")
        return None if beta is None else self.policy_kwargs.get("kl_beta", beta.default)


@dataclass(frozen=True)
class AdvantageSettings:
    """The `advantage` group: an estimator by name, its coefficients, and whether to recompute."""

    estimator: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    recompute: bool

    @property
    def needs_log_probs(self) -> bool:
        return "logp_target" in inspect.signature(self.fn).parameters


def _loss_common(
    *,
    policy: str,
    value: str,
    vf_coef: Annotated[float, NON_NEGATIVE] = 0.5,
    ent_coef: Annotated[float, NON_NEGATIVE] = 0.0,
    target_kl: Annotated[float, POSITIVE] | None = None,
    kl_target: Annotated[float, POSITIVE] | None = None,
) -> None:
    """Keys every `loss` entry may set (the schema of the non-coefficient part)."""


def _advantage_common(*, estimator: str, recompute: bool = False) -> None:
    """Keys every `advantage` entry may set besides the estimator's coefficients."""


def _public_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    return {
        name: fn for name, fn in vars(module).items()
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
    }


def _lookup(module: ModuleType, name: Any, key: str, kinds: str,
            candidates: list[str] | None = None) -> tuple[Callable[..., Any] | None, list[str]]:
    functions = _public_functions(module)
    valid = candidates if candidates is not None else sorted(functions)
    if isinstance(name, str) and name in functions and name in valid:
        return functions[name], []
    return None, [f"{key}={name!r}: unknown {kinds}; valid: {', '.join(valid)}"]


def _split_coefficients(node: dict[str, Any], common: Callable[..., Any]
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    common_keys = inspect.signature(common).parameters
    return ({k: v for k, v in node.items() if k in common_keys},
            {k: v for k, v in node.items() if k not in common_keys})


def _policy_loss_names() -> list[str]:
    return sorted(n for n, fn in _public_functions(policy_losses).items()
                  if "logp_new" in inspect.signature(fn).parameters)


def _validate_loss(node: dict[str, Any]) -> tuple[LossSettings | None, list[str]]:
    common, coefficients = _split_coefficients(node, _loss_common)
    problems = check_kwargs(_loss_common, common, "loss")
    policy_fn, p1 = _lookup(policy_losses, node.get("policy"), "loss.policy", "policy loss",
                            _policy_loss_names())
    value_fn, p2 = _lookup(value_losses, node.get("value"), "loss.value", "value loss")
    problems += p1 + p2
    if policy_fn is None or value_fn is None:
        return None, problems
    policy_params = inspect.signature(policy_fn).parameters
    value_params = inspect.signature(value_fn).parameters
    policy_kwargs = {k: v for k, v in coefficients.items() if k in policy_params}
    value_kwargs = {k: v for k, v in coefficients.items() if k in value_params}
    for key in coefficients.keys() - policy_kwargs.keys() - value_kwargs.keys():
        takes = [
            f"{kind} loss {name!r} takes {', '.join(check_names) or 'nothing'}"
            for kind, name, fn, skip in (
                ("policy", node["policy"], policy_fn, RUNTIME_ARGS["policy_loss"]),
                ("value", node["value"], value_fn, RUNTIME_ARGS["value_loss"]),
            )
            for check_names in [sorted(parameters(fn, skip))]
        ]
        problems.append(f"loss.{key}: not a parameter of the chosen losses ({'; '.join(takes)}); "
                        "remove it or pick a loss that takes it")
    problems += check_kwargs(policy_fn, policy_kwargs, "loss", skip=RUNTIME_ARGS["policy_loss"])
    problems += check_kwargs(value_fn, value_kwargs, "loss", skip=RUNTIME_ARGS["value_loss"])
    if common.get("kl_target") is not None and "kl_beta" not in policy_params:
        problems.append(f"loss.kl_target: only loss.policy=kl_penalty adapts a KL coefficient, "
                        f"not {node['policy']!r}; remove it")
    if problems:
        return None, problems
    return LossSettings(
        policy=node["policy"], value=node["value"], policy_fn=policy_fn, value_fn=value_fn,
        policy_kwargs=policy_kwargs, value_kwargs=value_kwargs,
        vf_coef=common.get("vf_coef", 0.5), ent_coef=common.get("ent_coef", 0.0),
        target_kl=common.get("target_kl"), kl_target=common.get("kl_target"),
    ), []


def _validate_advantage(node: dict[str, Any]) -> tuple[AdvantageSettings | None, list[str]]:
    common, coefficients = _split_coefficients(node, _advantage_common)
    problems = check_kwargs(_advantage_common, common, "advantage")
    fn, lookup_problems = _lookup(advantages, node.get("estimator"), "advantage.estimator",
                                  "advantage estimator")
    problems += lookup_problems
    if fn is not None:
        problems += check_kwargs(fn, coefficients, "advantage", skip=RUNTIME_ARGS["advantage"])
    if problems or fn is None:
        return None, problems
    recompute = common.get("recompute", False)
    return AdvantageSettings(node["estimator"], fn, coefficients, recompute), []


def _target(node: dict[str, Any], key: str) -> tuple[Callable[..., Any] | None, list[str]]:
    path = node.get("_target_")
    if not isinstance(path, str):
        return None, [f"{key}._target_: missing; a group entry names the ppo_lab callable it "
                      "builds"]
    try:
        return hydra.utils.get_method(path), []
    except Exception as err:  # report any import failure as a config problem
        return None, [f"{key}._target_={path!r}: cannot be imported ({err})"]


def _validate_target_node(node: dict[str, Any], key: str) -> list[str]:
    fn, problems = _target(node, key)
    if fn is None:
        return problems
    kwargs = {k: v for k, v in node.items() if k not in ("_target_", "_partial_")}
    return check_kwargs(fn, kwargs, key, skip=RUNTIME_ARGS[key])


def _validate_device(device: Any) -> list[str]:
    import torch

    if not isinstance(device, str):
        return []
    if device == "auto" or device == "cpu":
        return []
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return [f"device={device!r}: CUDA is not available on this machine; use device=cpu "
                    "or device=auto"]
        try:
            index = torch.device(device).index or 0
        except RuntimeError:
            return [f"device={device!r}: not a device; valid: auto, cpu, cuda, cuda:<index>, mps"]
        if index >= torch.cuda.device_count():
            return [f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s)"]
        return []
    if device == "mps":
        return [] if torch.backends.mps.is_available() else [
            "device='mps': MPS is not available; use device=cpu or device=auto"]
    return [f"device={device!r}: not a device; valid: auto, cpu, cuda, cuda:<index>, mps"]


@dataclass(frozen=True)
class Settings:
    """A validated configuration: typed run settings plus resolved group entries."""

    run: RunSettings
    loss: LossSettings
    advantage: AdvantageSettings
    normalization: normalization.NormalizationSettings
    cfg: DictConfig


def validate(cfg: DictConfig) -> Settings:
    """Check the whole config; raise `ConfigError` listing every problem, or return `Settings`."""
    node = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(node, dict)
    run_fields = {f.name for f in dataclasses.fields(RunSettings)}
    problems = [
        f"{key}: unknown top-level key; valid: {', '.join(sorted([*run_fields, *GROUPS]))}"
        for key in node if key not in run_fields and key not in GROUPS
    ]
    missing = [g for g in GROUPS if not isinstance(node.get(g), dict)]
    problems += [f"{g}: the config group is missing or not a mapping; pick one with {g}=<entry>"
                 for g in missing]
    run_values = {k: v for k, v in node.items() if k in run_fields}
    run_problems = check_kwargs(RunSettings, run_values, "")
    problems += run_problems
    problems += _validate_device(node.get("device"))
    for key in ("env", "network", "optim", "logger"):
        if key not in missing:
            problems += _validate_target_node(node[key], key)
    loss, advantage = None, None
    if "loss" not in missing:
        loss, loss_problems = _validate_loss(node["loss"])
        problems += loss_problems
    if "advantage" not in missing:
        advantage, advantage_problems = _validate_advantage(node["advantage"])
        problems += advantage_problems
    if "normalization" not in missing:
        problems += check_kwargs(normalization.NormalizationSettings, node["normalization"],
                                 "normalization")
    if not run_problems:  # derived sizes, once the run-level values themselves are valid
        problems += _check_sizes(RunSettings(**run_values))
    if problems:
        raise ConfigError(problems)
    assert loss is not None and advantage is not None
    return Settings(
        run=RunSettings(**run_values),
        loss=loss,
        advantage=advantage,
        normalization=normalization.NormalizationSettings(**node["normalization"]),
        cfg=cfg,
    )


def _check_sizes(run: RunSettings) -> list[str]:
    """Derived sizes that must agree, with the change that would fix each."""
    problems = []
    if run.batch_size % run.num_minibatches:
        divisors = [d for d in range(1, min(run.batch_size, 64) + 1) if run.batch_size % d == 0]
        problems.append(
            f"num_minibatches={run.num_minibatches}: must divide num_envs * num_steps = "
            f"{run.num_envs} * {run.num_steps} = {run.batch_size}; e.g. num_minibatches in "
            f"{divisors}"
        )
    elif run.minibatch_size < 2:
        problems.append(f"num_minibatches={run.num_minibatches}: leaves minibatches of "
                        f"{run.minibatch_size} sample; use fewer minibatches")
    if run.total_timesteps < run.batch_size:
        problems.append(
            f"total_timesteps={run.total_timesteps}: smaller than one batch (num_envs * "
            f"num_steps = {run.batch_size}); raise it or shrink the batch"
        )
    if (run.eval_interval or run.eval_video) and not run.eval_episodes:
        problems.append("eval_episodes=0: eval_interval and eval_video need evaluation episodes; "
                        "set eval_episodes to 1 or more, or eval_interval=0 eval_video=false")
    if run.eval_video:
        problems += _check_video_extra()
    return problems


def _check_video_extra() -> list[str]:
    """eval_video encodes mp4s with imageio and its ffmpeg binary: the `video` extra.

    (W&B logs the finished file as is; moviepy is only needed to log raw frame arrays.)
    """
    import importlib.util

    missing = [m for m in ("imageio", "imageio_ffmpeg")
               if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    return [f"eval_video=true: needs {', '.join(missing)}; install the extra with "
            "`pip install -e '.[video]'` or set eval_video=false"]


def build(node: DictConfig, **runtime: Any) -> Any:
    """Instantiate a `_target_` group entry with its run-time arguments (the only instantiate)."""
    factory = hydra.utils.instantiate(node, _partial_=True, _convert_="all")
    return factory(**runtime)
