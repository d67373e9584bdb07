"""CartPole speed, measured in one process so the ratios hold on a shared, noisy machine.

Prints, for CartPole-v1 with the default 8 envs:
  - raw stepping SPS with random actions (envpool, 1 thread; gymnasium sync vector env): the limit
  - ppo_lab training SPS of the default config at the same num_envs, and ours / raw
  - the collection phase alone (policy + env + buffer) per backend: the hot loop's overhead
  - training SPS with each backend (gymnasium_sync vs envpool), alternated: picks the default
  - the wall time (and env steps) until the mean return of the last 10 episodes reaches 475

    python benchmarks/cartpole.py [--steps 100000] [--seed 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import backend_sps, compose_config, raw_envpool_sps

from ppo_lab.components import build
from ppo_lab.config import validate
from ppo_lab.rollout import Rollout
from ppo_lab.threads import intra_op_threads
from ppo_lab.train import collect_rollout, train

SOLVED = 475.0


def train_once(overrides: list[str], run_dir: Path) -> tuple[dict, list[dict]]:
    settings = validate(compose_config(*overrides))
    figures = train(settings, run_dir, {}, "benchmark")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return figures, records


def rollout_sps(overrides: list[str], rollouts: int = 100) -> float:
    """SPS of the loop's collection phase alone (policy forward + env step + buffer writes)."""
    settings = validate(compose_config(*overrides))
    run = settings.run
    torch.set_num_threads(intra_op_threads(run.torch_threads, image_observations=False) or 1)
    envs = build(settings.cfg.env, num_envs=run.num_envs)
    space = envs.single_observation_space
    agent = build(
        settings.cfg.network, observation_space=space, action_space=envs.single_action_space
    )
    buf = Rollout.allocate(
        run.num_steps, run.num_envs, space, envs.single_action_space, torch.device("cpu")
    )
    norm = build(
        settings.cfg.normalization,
        obs_shape=space.shape,
        num_envs=run.num_envs,
        gamma=run.gamma,
        device="cpu",
    )
    obs = envs.reset(seed=0)
    start = time.perf_counter()
    for _ in range(rollouts):
        obs, *_ = collect_rollout(envs, agent, buf, obs, norm, None)
    sps = rollouts * run.batch_size / (time.perf_counter() - start)
    envs.close()
    return sps


def time_to_solve(records: list[dict]) -> tuple[float, int] | None:
    for r in records:
        if r.get("charts/recent_return", 0.0) >= SOLVED:
            return r["time"], r["global_step"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="training runs (seeds seed..)")
    args = parser.parse_args()
    num_envs = compose_config().num_envs

    print(f"CartPole-v1, {num_envs} envs (the default config)")
    steps = 20_000 // num_envs
    raw_pool = raw_envpool_sps(compose_config("env/backend=envpool"), steps)
    ours_pool = backend_sps(compose_config("env/backend=envpool"), steps)
    raw_sync = backend_sps(compose_config("env/backend=gymnasium_sync"), steps)
    print(f"  raw envpool stepping (random actions, 1 thread)   {raw_pool:>10,.0f} SPS")
    print(f"  ppo_lab envpool backend (random actions)          {ours_pool:>10,.0f} SPS")
    print(f"  ppo_lab gymnasium_sync backend (random actions)   {raw_sync:>10,.0f} SPS")

    for backend in ("gymnasium_sync", "envpool"):
        sps = rollout_sps([f"env/backend={backend}"])
        print(
            f"  rollout collection only, {backend:15s} {sps:>10,.0f} SPS "
            f"= {sps / raw_pool:.2f} x raw envpool"
        )

    print("training SPS by backend (default config, 30k steps, alternated):")
    for _ in range(2):
        for backend in ("gymnasium_sync", "envpool"):
            with tempfile.TemporaryDirectory() as tmp:
                figures, _ = train_once(
                    ["total_timesteps=30000", f"env/backend={backend}"], Path(tmp)
                )
            print(f"  {backend:15s} {figures['global_step'] / figures['train_time_s']:>8,.0f} SPS")

    print(f"default config, {args.steps:,} steps:")
    for i in range(args.repeats):
        seed = args.seed + i
        with tempfile.TemporaryDirectory() as tmp:
            figures, records = train_once(
                [f"total_timesteps={args.steps}", f"seed={seed}"], Path(tmp)
            )
        train_sps = figures["global_step"] / figures["train_time_s"]
        solved = time_to_solve(records)
        solve = (
            f"solved (last-10 mean >= {SOLVED:.0f}) at {solved[1]:,} steps after {solved[0]:.1f} s"
            if solved
            else "not solved"
        )
        print(
            f"  seed {seed}: training {train_sps:,.0f} SPS = {train_sps / raw_pool:.3f} x raw "
            f"envpool; {figures['train_time_s']:.1f} s for {figures['global_step']:,} steps; "
            f"{solve}; final return {figures['final_return']:.1f}"
        )


if __name__ == "__main__":
    main()
