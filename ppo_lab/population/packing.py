"""Which runs can train as one population: the same config up to seeds and coefficients.

Members may differ in `seed`, in the run-level numbers `gamma`, `max_grad_norm` and
`early_stop_kl`, and in any real number inside the `loss`, `advantage` and `optim` entries
(learning rate, clip ranges, entropy and value coefficients, GAE lambda, ...): those become
tensors with a member dimension. Everything else (env, network, normalization, sizes, schedules,
every choice of entry, and ints such as n-step's horizon) must be equal. `packing_key` is what a
sweep's jobs are grouped by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from ppo_lab.components import ConfigError
from ppo_lab.config import ASYNC_POPULATION, Settings, env_groups, population_refusals

MEMBER_RUN_KEYS = ("seed", "gamma", "max_grad_norm", "early_stop_kl", "population", "pack_sweep")
MEMBER_GROUPS = ("loss", "advantage", "optim")
NUMBER = "<real>"


def _numbers_masked(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _numbers_masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers_masked(v) for v in node]
    if isinstance(node, float):  # coefficients; an int (n-step's horizon) is structure
        return NUMBER
    return node


def shared_part(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config every member of a population must share."""
    out = {k: v for k, v in config.items() if k not in MEMBER_RUN_KEYS}
    for group in MEMBER_GROUPS:
        if group in out:
            out[group] = _numbers_masked(out[group])
    return out


def packing_key(config: dict[str, Any]) -> str:
    """Runs with equal keys can be members of one population."""
    return json.dumps(shared_part(config), sort_keys=True, default=str)


def _differences(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{path}.{k}".strip("."))]
    return [] if a == b else [path]


def check_packable(settings: Sequence[Settings]) -> None:
    """ConfigError naming what differs when the runs cannot be one population."""
    refusals = sorted({message for s in settings for message in population_refusals(s.run)})
    if refusals:
        raise ConfigError(refusals)
    configs: list[Any] = [OmegaConf.to_container(s.cfg, resolve=True) for s in settings]
    if any(env_groups(config["env"]) > 1 for config in configs):
        raise ConfigError([ASYNC_POPULATION])
    shared = [shared_part(config) for config in configs]
    problems = sorted({d for other in shared[1:] for d in _differences(shared[0], other, "")})
    if problems:
        raise ConfigError(
            [
                f"{key}: differs between the members; a population's members may differ only "
                f"in {', '.join(MEMBER_RUN_KEYS[:-2])} and the numbers of "
                f"{', '.join(MEMBER_GROUPS)}"
                for key in problems
            ]
        )
