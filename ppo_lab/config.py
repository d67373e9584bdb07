"""Config validation: every problem is reported, with what would be valid, before any env is built.

Hydra composes `conf/`; `validate` checks the result. Run-level settings are typed by
`RunSettings`; every group entry is a `_target_` checked by `ppo_lab.components.check_entry`
against the signature of the callable it names. Derived sizes are checked here, once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types as at
import torch
from omegaconf import DictConfig, OmegaConf
from pydantic import ValidationError

from ppo_lab.components import (
    ConfigError,
    NonNegativeInt,
    Positive,
    PositiveInt,
    UnitInterval,
    build,
    check_entry,
    describe_error,
    schema_of,
    user_allowlist,
)

# Deterministic evaluation runs one env per episode at once: a bound keeps that in memory.
EvalEpisodes = Annotated[int, at.Interval(ge=0, le=1000)]
GROUPS = ("env", "network", "loss", "advantage", "normalization", "optim", "logger")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Run-level settings: the top of conf/config.yaml."""

    seed: NonNegativeInt
    total_timesteps: PositiveInt
    num_envs: PositiveInt
    num_steps: PositiveInt
    update_epochs: PositiveInt
    num_minibatches: PositiveInt
    gamma: UnitInterval
    anneal_lr: bool
    max_grad_norm: Positive | None
    early_stop_kl: Positive | None = None  # stop an update's epochs once approx_kl exceeds it
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss or env value: stop or skip
    recompute_advantages: bool = False  # fresh advantages from the current critic every epoch
    bootstrap_truncations: bool = True  # a time limit bootstraps V(final obs); false: terminal
    device: str = "auto"
    torch_threads: NonNegativeInt | Literal["auto"] = "auto"  # ppo_lab/threads.py
    amp: Literal["none", "bf16"] = "none"  # encoders compute in bfloat16 (ActorCritic.encode)
    compile: bool = False  # torch.compile the minibatch loss and the policy step (train.py)
    cuda_graphs: bool = False  # compile them to CUDA graphs, replayed each step (CUDA only)
    checkpoint_interval: NonNegativeInt = 50
    eval_episodes: EvalEpisodes = 10
    resume: bool = True  # continue from <run dir>/checkpoint.pt when there is one (requeue)
    eval_interval: NonNegativeInt = 0
    eval_video: bool = False
    seeds_per_trial: PositiveInt = 1  # >1: one job trains several seeds (ppo_lab/job.py)
    population: PositiveInt = 1  # >1: seeds seed..seed+n-1 trained together (ppo_lab/population)
    pack_sweep: bool = False  # multirun: ppo_lab's launcher packs the jobs into populations

    @property
    def compiles(self) -> bool:
        """The hot paths are `torch.compile`d: compile=true, or cuda_graphs=true (which compiles
        them to CUDA graphs)."""
        return self.compile or self.cuda_graphs

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
class Settings:
    """A validated configuration: the typed run-level settings and the composed config, whose
    group entries the trainer builds. `run` is derived from `cfg`; change `cfg` and validate."""

    run: RunSettings
    cfg: DictConfig


def validate(cfg: DictConfig, allow: Sequence[str] = ()) -> Settings:
    """Check the whole config; raise `ConfigError` listing every problem, or return `Settings`.

    Nothing is built but throwaway probes: the env's spaces come from envpool's spec or from
    one gymnasium env made and closed, to check that the network can read them. `allow` adds
    module prefixes to those the user allowed with PPO_LAB_ALLOW (tests use it).
    """
    allow = (*user_allowlist(), *allow)
    secrets = secret_interpolations(cfg)
    if secrets:  # refuse before resolving: the value must not reach a log or a checkpoint
        raise ConfigError(secrets)
    node = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(node, dict)
    run_fields = {f.name for f in dataclasses.fields(RunSettings)}
    problems = [
        f"{key}: unknown top-level key; valid: {', '.join(sorted([*run_fields, *GROUPS]))}"
        for key in node
        if key not in run_fields and key not in GROUPS
    ]
    run_values = {k: v for k, v in node.items() if k in run_fields}
    run_problems = _check_run(run_values)
    problems += run_problems
    problems += _check_device(node.get("device"))
    if node.get("cuda_graphs") is True:
        problems += _check_cuda_graphs(node.get("device"))
    for group in GROUPS:
        if group not in node:
            problems.append(f"{group}: the config group is missing; pick one with {group}=<entry>")
        else:
            problems += check_entry(node[group], group, allow)
    if not any(p.startswith("env") for p in problems) and "env" in node:
        problems += _check_env(node["env"], allow)
    if not problems:  # cross-entry rules a component states in its constructor; the spaces
        problems += _check_builds(cfg)
        problems += _check_network_fits(node)
    if not run_problems:  # derived sizes, once the run-level values themselves are valid
        run = RunSettings(**run_values)
        problems += _check_sizes(run)
        if "env" in node:
            problems += _check_env_groups(node["env"], run)
    if problems:
        raise ConfigError(problems)
    return Settings(run=run, cfg=cfg)


def with_seed(settings: Settings, seed: int) -> Settings:
    """The same configuration with another seed."""
    cfg = settings.cfg.copy()
    cfg.seed = seed
    return validate(cfg)


def _check_run(values: dict[str, Any]) -> list[str]:
    try:
        schema_of(RunSettings).model_validate(values)
    except ValidationError as err:
        by_field: dict[Any, list[dict[str, Any]]] = {}
        for e in err.errors():
            by_field.setdefault(e["loc"][0], []).append(dict(e))
        problems = []
        for field, errors in by_field.items():
            if len(errors) == 1:
                problems.append(describe_error(errors[0], "", RunSettings).lstrip("."))
            else:  # one per member of a union (an int or "auto"): one line saying either
                wants = " or ".join(e["msg"].removeprefix("Input should ") for e in errors)
                problems.append(f"{field}={errors[0].get('input')!r}: should {wants}")
        return problems
    return []


SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def secret_interpolations(cfg: DictConfig) -> list[str]:
    """`${oc.env:NAME}` of a secret-looking NAME anywhere in the config, which would be
    logged to W&B and written into checkpoints once resolved."""
    problems = []

    def scan(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                scan(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                scan(v, f"{key}[{i}]")
        elif isinstance(node, str):
            for name in re.findall(r"\$\{oc\.env:\s*([^,}\s]+)", node):
                if SECRET_NAME.search(name):
                    problems.append(
                        f"{key}: reads the environment variable {name}, which looks "
                        "like a secret; config values are logged to W&B and saved "
                        "in checkpoints, so secrets may not be interpolated into them"
                    )

    container = OmegaConf.to_container(cfg, resolve=False)
    scan({k: v for k, v in container.items() if k != "hydra"}, "")
    return problems


def _backend_class(env: dict[str, Any]) -> Any:
    import hydra.utils

    return hydra.utils.get_object(env["backend"]["_target_"])  # checked and allowed already


def _check_env(env: dict[str, Any], allow: Sequence[str]) -> list[str]:
    """The env id against its backend's registry and its kwargs, without making an env."""
    backend = _backend_class(env)
    check = getattr(backend, "problems_with", None)
    return [] if check is None else check(env["id"], dict(env.get("kwargs") or {}), allow)


def _check_network_fits(node: dict[str, Any]) -> list[str]:
    """The network reads the env's observations and acts in its action space."""
    from ppo_lab.rollout import observation_dtype

    env = node["env"]
    probe = getattr(_backend_class(env), "probe_spaces", None)
    if probe is None:
        return []
    try:
        obs_space, action_space = probe(env["id"], dict(env.get("kwargs") or {}))
    except Exception as err:  # the env's own constructor refused its kwargs
        return [
            f"env: {env['id']} could not be made with env.kwargs={env.get('kwargs')} "
            f"({type(err).__name__}: {err})"
        ]
    where = f"network={node['network']['_target_'].rsplit('.', 1)[-1]} with env.id={env['id']}"
    if node["normalization"].get("observation") and observation_dtype(obs_space) == torch.uint8:
        return [
            f"normalization.observation=true with uint8 image observations {obs_space} "
            f"({where}): pixels are scaled by 1/255 in the network; use normalization=adv"
        ]
    try:
        build(node["network"], observation_space=obs_space, action_space=action_space)
    except ValueError as err:
        return [f"{where}: {err}"]
    return []


def _check_builds(cfg: DictConfig) -> list[str]:
    """Entries that are pure and cheap to build (the loss) are built once here, so the rules
    their constructors enforce (a KL-penalised loss needs its schedule) fail before any env."""
    try:
        build(cfg.loss)
    except Exception as err:  # hydra wraps what the constructor raised
        cause = err.__cause__ if isinstance(err.__cause__, ValueError) else err
        return [f"loss: {cause}"]
    return []


def _check_cuda_graphs(device: Any) -> list[str]:
    """cuda_graphs=true needs the run on a CUDA device (one `_check_device` accepted)."""
    if isinstance(device, str) and device.startswith("cuda"):
        return []  # whether it exists: `_check_device`
    if device == "auto" and torch.cuda.is_available():
        return []
    where = "no CUDA device here" if device == "auto" else f"device={device}"
    return [
        f"cuda_graphs=true: CUDA graphs need a CUDA device ({where}); drop cuda_graphs=true, "
        "or run on a GPU with device=auto or device=cuda"
    ]


def _check_device(device: Any) -> list[str]:
    if not isinstance(device, str) or device in ("auto", "cpu"):
        return []
    valid = "valid: auto, cpu, cuda, cuda:<index>, mps"
    if device.startswith("cuda"):
        try:
            index = torch.device(device).index or 0
        except RuntimeError:
            return [f"device={device!r}: not a device; {valid}"]
        if not torch.cuda.is_available():
            return [
                f"device={device!r}: CUDA is not available on this machine; use device=cpu "
                "or device=auto"
            ]
        if index >= torch.cuda.device_count():
            return [f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s)"]
        return []
    if device == "mps":
        return (
            []
            if torch.backends.mps.is_available()
            else ["device='mps': MPS is not available; use device=cpu or device=auto"]
        )
    return [f"device={device!r}: not a device; {valid}"]


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
        problems.append(
            f"num_minibatches={run.num_minibatches}: leaves minibatches of "
            f"{run.minibatch_size} sample; use fewer minibatches"
        )
    if run.total_timesteps < run.batch_size:
        problems.append(
            f"total_timesteps={run.total_timesteps}: smaller than one batch (num_envs * "
            f"num_steps = {run.batch_size}); raise it or shrink the batch"
        )
    if (run.eval_interval or run.eval_video) and not run.eval_episodes:
        problems.append(
            "eval_episodes=0: eval_interval and eval_video need evaluation episodes; "
            "set eval_episodes to 1 or more, or eval_interval=0 eval_video=false"
        )
    if run.eval_video:
        problems += _check_video_extra()
    if run.population > 1 and run.seeds_per_trial > 1:
        problems.append(
            f"population={run.population} with seeds_per_trial={run.seeds_per_trial}: both "
            "train several seeds in one job; set one of them to 1"
        )
    if run.population > 1:
        problems += population_refusals(run)
    return problems


def population_refusals(run: RunSettings) -> list[str]:
    """The switches of `run` a population cannot take, each with its message: validation asks
    it of `population=N`, packing of every job it would pack."""
    switches = ((run.compile, COMPILE_POPULATION), (run.cuda_graphs, CUDA_GRAPHS_POPULATION))
    return [message for on, message in switches if on]


def env_groups(env: dict[str, Any]) -> int:
    """How many groups the envs step in (`async_groups` of the envpool backend; else 1)."""
    backend = env.get("backend") or {}
    return int(backend.get("async_groups", 1)) if isinstance(backend, dict) else 1


def _check_env_groups(env: dict[str, Any], run: RunSettings) -> list[str]:
    groups = env_groups(env)
    if groups > run.num_envs:
        return [
            f"env.backend.async_groups={groups} with num_envs={run.num_envs}: each group needs "
            f"an env; use at most {run.num_envs}"
        ]
    if groups > 1 and run.population > 1:
        return [ASYNC_POPULATION]
    return []


ASYNC_POPULATION = (
    "env.backend.async_groups: a population steps all its members' envs as one pool; use "
    "env/backend=envpool (or async_groups=1) for populations"
)
COMPILE_POPULATION = (
    "compile=true: a population's members run batched (and their losses through "
    "torch.func.vmap), which this switch does not compile; drop compile=true, or train single "
    "runs (population=1, no population launcher)"
)
CUDA_GRAPHS_POPULATION = COMPILE_POPULATION.replace("compile=true", "cuda_graphs=true")


def _check_video_extra() -> list[str]:
    """eval_video encodes mp4s with imageio and its ffmpeg binary: the `video` extra.

    (W&B logs the finished file as is; moviepy is only needed to log raw frame arrays.)
    """
    import importlib.util

    missing = [m for m in ("imageio", "imageio_ffmpeg") if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    return [
        f"eval_video=true: needs {', '.join(missing)}; install the extra with "
        "`pip install -e '.[video]'` or set eval_video=false"
    ]
