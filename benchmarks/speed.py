"""Training speed of every env family against its environment's own stepping, in one run.

    python benchmarks/speed.py [--updates 4] [--min-steps 20000]
                               [--families cartpole_cleanrl cartpole_64 ...]
                               [--switches "" amp=bf16 compile=true ...]

For each workload: the raw environment's stepping SPS (random actions, the library alone, as the
env entry configures it; measured just before and just after each training and averaged, so a
change in the host's load moves both sides of the ratio), ppo_lab's training SPS (steady state:
the first update excluded; at least `--updates` updates and `--min-steps` env steps, so a small
batch is not timed over a fraction of a second), their ratio, the peak memory of the training
process (each workload trains in a fresh subprocess, so peaks do not carry over), and where the
training time goes: env stepping (the backend's `step`), inference (acting), update (the batched
rollout pass, advantages and the epochs) and logging (metrics.jsonl and the tracker). Shares are
wall-clock, timed around those calls; the rest (buffer copies, normalization, bookkeeping) is
"other". `--switches` trains each workload once per entry, each entry being extra overrides
("" for none), e.g. `amp=bf16`; with `compile=true` on CUDA, where acting is compiled too, its
time is not split out (a timer inside a compiled method would break its graph), so it counts as
"other".

    cartpole_default  CartPole-v1, ppo_lab's defaults (`python -m ppo_lab`: 8 envs x 32 steps, 15
                      epochs of the whole batch, gymnasium's envs in this process)
    cartpole_cleanrl  CartPole-v1, CleanRL's settings: 4 envs x 128 steps, 4 epochs x 4
                      minibatches, lr 2.5e-4, gymnasium's envs in this process (CleanRL's own)
    cartpole_64       CartPole-v1, 64 envs x 128 steps on envpool, the same update settings
    breakout          env=atari (Breakout-v5, 8 envs, envpool with 2 threads, Nature CNN)
    halfcheetah       env=mujoco (HalfCheetah-v4, 1 env, CleanRL's continuous recipe)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    CLEANRL_CARTPOLE,
    Timers,
    compose_config,
    raw_env_sps,
)

FAMILIES: dict[str, list[str]] = {
    "cartpole_default": [],
    "cartpole_cleanrl": CLEANRL_CARTPOLE,
    "cartpole_64": [*CLEANRL_CARTPOLE, "num_envs=64", "env/backend=envpool"],
    "breakout": ["env=atari"],
    "halfcheetah": ["env=mujoco"],
}


def train_one(family: str, updates: int, min_steps: int, switches: list[str]) -> dict[str, Any]:
    """In a fresh process: train the workload, time its phases, report SPS and peak memory."""
    import ppo_lab.train as train_module
    from ppo_lab.config import validate
    from ppo_lab.envs.envpool_backend import EnvpoolVectorEnv
    from ppo_lab.envs.gymnasium_backend import GymnasiumVectorEnv
    from ppo_lab.networks import ActorCritic
    from ppo_lab.tracking import MetricsFile

    overrides = [*FAMILIES[family], *switches]
    batch = validate(compose_config(*overrides)).run.batch_size
    updates = max(updates, -(-min_steps // batch))
    settings = validate(compose_config(*overrides, f"total_timesteps={batch * updates}"))
    timers = Timers()
    for backend in (EnvpoolVectorEnv, GymnasiumVectorEnv):
        timers.wrap(backend, "step", "env stepping")
    for method in ("send", "recv"):  # envpool_async: the time spent waiting for a pool
        timers.wrap(EnvpoolVectorEnv, method, "env stepping")
    # compile=true or cuda_graphs=true (older ppo_lab: `compiles` or even `compile` missing)
    compiled = getattr(settings.run, "compiles", getattr(settings.run, "compile", False))
    device = train_module.resolve_device(settings.run.device)
    compiled_acting = compiled and device.type == "cuda"  # as train.compile_hot_paths decides
    for method in ("act", "act_and_evaluate") if not compiled_acting else ():
        timers.wrap(ActorCritic, method, "inference")
    for function in ("update", "evaluate_rollout"):
        timers.wrap(train_module, function, "update")
    timers.wrap(MetricsFile, "write", "logging")
    with tempfile.TemporaryDirectory() as tmp:
        figures = train_module.train(settings, Path(tmp), {}, "benchmark")
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "charts/SPS" in r]
    steady = (rows[-1]["global_step"] - rows[0]["global_step"]) / (
        rows[-1]["time"] - rows[0]["time"]
    )
    total = figures["train_time_s"]
    shares = {phase: seconds / total for phase, seconds in timers.seconds.items()}
    shares["other"] = 1 - sum(shares.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "sps": steady,
        "shares": shares,
        "peak_mb": peak_mb,
        "threads": settings.run.torch_threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=4)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--min-steps", type=int, default=20_000)
    parser.add_argument("--switches", nargs="+", default=[""], metavar="OVERRIDES")
    parser.add_argument("--one", choices=list(FAMILIES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process of one workload
        switches = args.switches[0].split()
        print(json.dumps(train_one(args.one, args.updates, args.min_steps, switches)))
        return
    phases = ("env stepping", "inference", "update", "logging", "other")
    print(
        f"{'workload':30s} {'raw env SPS':>12s} {'training SPS':>13s} {'ratio':>6s} "
        f"{'peak MB':>8s}  " + " ".join(f"{p:>12s}" for p in phases)
    )
    for family in args.families:
        overrides = FAMILIES[family]
        cfg = compose_config(*overrides)
        raw_steps = max(200, 8_000 // cfg.num_envs)
        raw_before = raw_env_sps(overrides, raw_steps)
        for switches in args.switches:
            command = [sys.executable, __file__, "--one", family, "--updates", str(args.updates)]
            command += ["--min-steps", str(args.min_steps)]
            child = subprocess.run(
                [*command, "--switches", switches], capture_output=True, text=True, check=True
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            raw_after = raw_env_sps(overrides, raw_steps)
            raw = (raw_before + raw_after) / 2  # the host's load, bracketing the training
            raw_before = raw_after
            shares = " ".join(f"{result['shares'].get(p, 0.0):>12.0%}" for p in phases)
            label = f"{family} {switches}".strip()
            print(
                f"{label:30s} {raw:>12,.0f} {result['sps']:>13,.0f} "
                f"{result['sps'] / raw:>6.3f} {result['peak_mb']:>8,.0f}  {shares}"
            )


if __name__ == "__main__":
    main()
