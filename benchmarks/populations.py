"""Populations against separate runs, measured in one process so the ratios hold on a noisy machine.

    python benchmarks/populations.py [--sizes 1 4 16] [--updates 4] [--study] [--study-steps N]

For each workload, the training SPS of one separate run (`ppo_lab.train.train`) and of
populations of M members (`ppo_lab.population`), counted over all members' env steps, and their
ratio: how many runs' worth of env steps a population takes per second of one core. The
workloads are CartPole with CleanRL's settings (4 envs x 128 steps, 4 epochs x 4 minibatches),
CartPole with RL Zoo's recipe (8 envs x 32 steps, 20 epochs of the whole batch: ppo_lab's default
recipe with its former 20 epochs) and with ppo_lab's default recipe (15 epochs), each on gymnasium
and on envpool, and HalfCheetah-v4 (ppo_lab's MuJoCo recipe, envpool).
Start-up (imports, env construction) is excluded: the clock runs from the first reset to the end
of the last update (`figures["train_time_s"]`).

Below the table, where each ratio comes from: for every population, how many runs' worth of
updates (advantages, epochs) and of rollouts (acting, env stepping) it does per second, each
against the single run's. The update's figure bounds the whole: even a free rollout cannot lift
the overall ratio above it by more than the single run's rollout share allows.

With `--study`, the wall time of `experiment=loss_ablation` (4 losses x 10 seeds) with
`hydra/launcher=population` against `hydra/launcher=local`, whole processes, and the
per-variant mean final returns of both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import CLEANRL_CARTPOLE, Timers, compose_config

import ppo_lab.population.trainer as population_trainer
import ppo_lab.train as train_module
from ppo_lab.config import validate
from ppo_lab.population.trainer import Member, train_population
from ppo_lab.train import train

RL_ZOO_CARTPOLE = ["update_epochs=20", "optim.lr=1e-3"]  # the default recipe's former epochs
WORKLOADS = {
    "CartPole, CleanRL settings, gymnasium": CLEANRL_CARTPOLE,
    "CartPole, CleanRL settings, envpool": [*CLEANRL_CARTPOLE, "env/backend=envpool"],
    "CartPole, RL Zoo recipe, gymnasium": RL_ZOO_CARTPOLE,
    "CartPole, RL Zoo recipe, envpool": [*RL_ZOO_CARTPOLE, "env/backend=envpool"],
    "CartPole, default recipe, gymnasium": [],
    "CartPole, default recipe, envpool": ["env/backend=envpool"],
    "HalfCheetah-v4, MuJoCo recipe, envpool": ["env=mujoco", "env/backend=envpool"],
}


PHASES = Timers()  # update and rollout seconds of the measurement running now
for module, update_name in ((train_module, "update"), (population_trainer, "update_population")):
    PHASES.wrap(module, update_name, "update")
    PHASES.wrap(module, "collect_rollout", "rollout")
PHASES.wrap(train_module, "evaluate_rollout", "update")
PHASES.wrap(population_trainer, "evaluate_population_rollout", "update")


def phase_seconds() -> dict[str, float]:
    """The update and rollout seconds since the last call."""
    seconds = dict(PHASES.seconds)
    PHASES.seconds.clear()
    return seconds


def settings_of(overrides: list[str], updates: int, seed: int):
    base = validate(compose_config(*overrides))
    steps = updates * base.run.batch_size
    return validate(
        compose_config(
            *overrides, f"total_timesteps={steps}", f"seed={seed}", "checkpoint_interval=0"
        )
    )


def single_sps(overrides: list[str], updates: int, root: Path) -> float:
    settings = settings_of(overrides, updates, seed=1)
    figures = train(settings, root / "single", {}, "benchmark")
    return figures["global_step"] / figures["train_time_s"]


def population_sps(overrides: list[str], updates: int, size: int, root: Path) -> float:
    members = [
        Member(settings_of(overrides, updates, seed), root / f"pop{size}" / f"seed_{seed}", {}, "b")
        for seed in range(1, size + 1)
    ]
    train_population(members)
    steps = sum(m.figures["global_step"] for m in members)
    return steps / members[0].figures["train_time_s"]


def study(launcher: str, steps: int | None, out: Path) -> tuple[float, dict[str, list[float]]]:
    """Wall time of `experiment=loss_ablation` with `launcher`, and each loss's final returns."""
    command = [
        sys.executable,
        "-m",
        "ppo_lab",
        "-m",
        "experiment=loss_ablation",
        f"hydra/launcher={launcher}",
        f"pack_sweep={launcher == 'population'}",  # the study packs itself unless told not to
        "logger=none",
        f"hydra.sweep.dir={out}",
        *([f"total_timesteps={steps}"] if steps else []),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    returns: dict[str, list[float]] = {}  # loss -> its jobs' final returns
    for path in out.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        returns.setdefault(summary["choices"]["loss"], []).append(summary["final_return"])
    return seconds, {loss: r for loss, r in sorted(returns.items())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--updates", type=int, default=4, help="updates per measurement")
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--study", action="store_true", help="also time experiment=loss_ablation")
    parser.add_argument("--study-steps", type=int, default=None, help="total_timesteps per job")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"one core (torch threads 1); {args.updates} updates per measurement")
    print(
        f"{'workload':48s} {'1 run':>8s} " + " ".join(f"{'M=' + str(m):>16s}" for m in args.sizes)
    )
    by_phase: dict[str, list[str]] = {name: [] for name in args.workloads}
    with tempfile.TemporaryDirectory() as tmp:
        # the process's first run pays one-time costs (lazy imports, allocator warm-up): not timed
        single_sps(WORKLOADS[args.workloads[0]], 1, Path(tmp) / "warm-up")
        for name in args.workloads:
            overrides = WORKLOADS[name]
            root = Path(tmp) / name.replace(" ", "_").replace(",", "")
            phase_seconds()
            single = single_sps(overrides, args.updates, root)
            single_phases = phase_seconds()
            cells = []
            for size in args.sizes:
                sps = population_sps(overrides, args.updates, size, root)
                cells.append(f"{sps:>8,.0f} ({sps / single:4.1f}x)")
                phases = phase_seconds()  # the same steps per member as the single run
                by_phase[name].append(
                    " ".join(
                        f"{phase} {size * single_phases[phase] / phases[phase]:4.1f}x"
                        for phase in ("update", "rollout")
                    )
                )
            print(f"{name:48s} {single:>8,.0f} " + " ".join(f"{c:>16s}" for c in cells))
            total = sum(single_phases.values())
            by_phase[name].insert(0, f"1 run: update {single_phases['update'] / total:.0%}")
        print("\nruns' worth per second, by phase (population against the single run):")
        for name, cells in by_phase.items():
            print(f"  {name:46s} " + "  |  ".join(cells))
        if args.study:
            results = {}
            for launcher in ("local", "population"):
                results[launcher] = study(launcher, args.study_steps, Path(tmp) / launcher)
            local, population = results["local"][0], results["population"][0]
            print("experiment=loss_ablation (4 losses x 10 seeds), whole sweep wall time:")
            for launcher, (seconds, returns) in results.items():
                means = ", ".join(f"{loss} {sum(r) / len(r):.1f}" for loss, r in returns.items())
                print(f"  {launcher:10s} {seconds:7.1f} s   mean final return: {means}")
            print(f"  local / population: {local / population:.2f}x")


if __name__ == "__main__":
    main()
