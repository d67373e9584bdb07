"""Checkpoints: plain data only, written atomically, loaded with `weights_only=True`.

A checkpoint holds tensors, numbers, strings, lists and dicts: the model and optimizer state,
every running statistic, the RNG states, the resolved config and the env's spaces as plain
structures. Nothing in it is a pickled Python object, so loading a shared or tampered file can
not run code: `torch.load(weights_only=True)` refuses anything else, and so does `load_checkpoint`.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppo_lab.components import ConfigError
from ppo_lab.config import RunSettings
from ppo_lab.files import replace_atomically

FORMAT = 2  # the checkpoint layout; 1 (pickled spaces and config) is no longer read

# Settings a resumed run may change: they do not alter what the training computes.
RESUMABLE_CHANGES = frozenset(
    {
        "resume",
        "eval_episodes",
        "eval_interval",
        "eval_video",
        "checkpoint_interval",
        "logger",
        "device",
        "torch_threads",
        "compile",
        "cuda_graphs",
        "on_nonfinite",
        "pack_sweep",
    }
)


RUN_DEFAULTS = {
    field.name: field.default
    for field in dataclasses.fields(RunSettings)
    if field.default is not dataclasses.MISSING
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be (safely) read: tampered, truncated or of another format."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` via a temp file and an atomic rename."""
    replace_atomically(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; refuse anything that is not plain data."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a ppo_lab checkpoint that loads as plain data ({first}); it was not "
            "loaded. Checkpoints are untrusted input: only tensors and plain values are read."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, expected {FORMAT}")
    return state


def space_to_plain(space: gym.Space) -> dict[str, Any]:
    """A gymnasium space as plain data (tensors and numbers), for a checkpoint."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": torch.from_numpy(np.array(space.low)),
            "high": torch.from_numpy(np.array(space.high)),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": torch.from_numpy(np.array(space.nvec))}
    raise TypeError(f"cannot store a {type(space).__name__} space in a checkpoint")


def space_from_plain(plain: dict[str, Any]) -> gym.Space:
    """The space `space_to_plain` stored."""
    kind = plain.get("type")
    if kind == "Box":
        dtype = np.dtype(plain["dtype"])
        return gym.spaces.Box(plain["low"].numpy(), plain["high"].numpy(), dtype=dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(plain["n"], start=plain["start"])
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(plain["nvec"].numpy())
    raise CheckpointError(f"unknown space type {kind!r} in checkpoint")


def rng_state() -> dict[str, Any]:
    """The random generators a run draws from, as tensors and numbers: torch (CPU, CUDA), numpy."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())  # map_location may have moved it to the GPU
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].cpu().numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def training_state(
    *,
    config: dict[str, Any],
    model: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    normalizers: dict[str, Any],
    global_step: int,
    update: int,
    kl_beta: float | None,
    recent_returns: list[float],
    observation_space: gym.Space,
    action_space: gym.Space,
    wandb_run_id: str,
) -> dict[str, Any]:
    """Everything needed to resume training or to run the policy as it was trained; `model` is
    the agent's `state_dict()`."""
    return {
        "model": model,
        "optimizer": optimizer_state,  # torch's per-parameter format
        "normalizers": normalizers,
        "global_step": global_step,
        "update": update,
        "kl_beta": kl_beta,
        "recent_returns": list(recent_returns),
        "rng": rng_state(),
        "config": config,
        "observation_space": space_to_plain(observation_space),
        "action_space": space_to_plain(action_space),
        "wandb_run_id": wandb_run_id,
    }


def check_resumable(state: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """A checkpoint is continued only by the configuration that wrote it (same schedule too).
    A run-level setting newer than the checkpoint's ppo_lab counts as its default there."""
    saved = {**RUN_DEFAULTS, **state["config"]}
    differs = sorted(
        k
        for k in config.keys() | saved.keys()
        if k not in RESUMABLE_CHANGES and config.get(k) != saved.get(k)
    )
    if differs:
        changes = "; ".join(
            f"{k}: {_short(saved.get(k))} -> {_short(config.get(k))}" for k in differs
        )
        raise ConfigError(
            [
                f"{path} was written by a run with other settings ({changes}). A resume "
                "continues the same run and schedule; it may change only "
                f"{', '.join(sorted(RESUMABLE_CHANGES))}. Start a new run in a fresh dir "
                "(hydra.run.dir=...) for other settings."
            ]
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
