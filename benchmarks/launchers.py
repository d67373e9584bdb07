"""Wall time of one small sweep through each local launcher, alternated in one run.

    python benchmarks/launchers.py [--jobs 8] [--steps 5120] [--rounds 2]

`local` (ppo_lab's process-per-job launcher, the default) against `joblib` (hydra-joblib-
launcher, loky) on the same CartPole sweep: the job count, seeds and budget are the same, so the
ratio is the launchers' overhead. Isolation is why `local` is the default (a killed job is lost
alone); this says what it costs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep_seconds(launcher: str, jobs: int, steps: int, out: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "ppo_lab",
        "-m",
        f"hydra/launcher={launcher}",
        f"seed=range({jobs})",
        f"total_timesteps={steps}",
        "logger=none",
        "eval_episodes=0",
        f"hydra.sweep.dir={out}",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "joblib": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for launcher in times:
                out = Path(tmp) / f"{launcher}-{r}"
                times[launcher].append(sweep_seconds(launcher, args.jobs, args.steps, out))
    print(
        f"{args.jobs} CartPole jobs of {args.steps} steps, whole sweep wall time "
        f"(best of {args.rounds}):"
    )
    for launcher, seconds in times.items():
        every = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"  {launcher:7s} {min(seconds):6.1f} s   (all: {every})")
    print(f"  local / joblib: {min(times['local']) / min(times['joblib']):.2f}")


if __name__ == "__main__":
    main()
