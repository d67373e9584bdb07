"""Atari and MuJoCo speed, measured in one process so the ratios hold on a shared, noisy machine.

Prints, for env=atari (Breakout-v5, 8 envs on envpool, 2 threads) and env=mujoco (HalfCheetah-v4,
1 env, gymnasium's MuJoCo):
  - raw stepping SPS of the entry's env library with random actions (its options): the limit
  - the ppo_lab backend with random actions (same-step reset, real-score bookkeeping)
  - ppo_lab training SPS of the recipe, steady state (first update excluded), and ours / raw

    python benchmarks/env_families.py [--updates 4] [--network nature_cnn]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import backend_sps, compose_config, raw_env_sps
from omegaconf import DictConfig

from ppo_lab.config import validate
from ppo_lab.train import train


def training_sps(cfg: DictConfig, updates: int) -> tuple[float, float]:
    """(steady-state SPS over updates 2.., seconds per update) of a short run of the recipe."""
    batch = cfg.num_envs * cfg.num_steps
    cfg.total_timesteps = batch * updates
    with tempfile.TemporaryDirectory() as tmp:
        train(validate(cfg), Path(tmp), {}, "benchmark")
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "charts/SPS" in r]
    first, last = rows[0], rows[-1]
    seconds = last["time"] - first["time"]
    return (last["global_step"] - first["global_step"]) / seconds, seconds / (len(rows) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=4, help="training updates per family")
    parser.add_argument("--network", default=None, help="e.g. impala_cnn for the Atari run")
    args = parser.parse_args()
    families = {
        "atari": ["env=atari"] + ([f"network={args.network}"] if args.network else []),
        "mujoco": ["env=mujoco"],
    }
    for name, overrides in families.items():
        cfg = compose_config(*overrides)
        raw_steps = 4_000 if name == "atari" else 20_000
        raw = raw_env_sps(list(overrides), raw_steps // cfg.num_envs)
        ours = backend_sps(cfg, raw_steps // cfg.num_envs)
        sps, per_update = training_sps(cfg, args.updates)
        print(
            f"env={name} ({cfg.env.id}, {cfg.num_envs} envs x {cfg.num_steps} steps, "
            f"{cfg.network._target_.rsplit('.', 1)[-1]}, {cfg.torch_threads} torch thread)"
        )
        print(f"  raw env stepping (random actions)       {raw:>9,.0f} SPS")
        print(
            f"  ppo_lab backend (random actions)        {ours:>9,.0f} SPS  = {ours / raw:.2f} x raw"
        )
        print(
            f"  ppo_lab training (steady state)         {sps:>9,.0f} SPS  = {sps / raw:.3f} x raw"
            f"  ({per_update:.1f} s per update)"
        )


if __name__ == "__main__":
    main()
