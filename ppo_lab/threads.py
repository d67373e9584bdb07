"""torch's intra-op threads, chosen by the work (`torch_threads=auto`, the default).

    image observations (CNNs), not in a sweep   every core this process may use: a Nature CNN's
                                                convolutions scale (Breakout trains 1.7x faster
                                                on 2 threads than on 1 here); the env workers
                                                step while the network waits, so they share
    everything else                             1: a small MLP's ops are too small to split (2
                                                threads are slower), and sweep jobs run one per
                                                core side by side
A number sets it as given; 0 leaves torch's own default. `benchmarks/env_families.py` measures
the choice for each family.
"""

from __future__ import annotations

import os
from typing import Literal

Threads = int | Literal["auto"]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def intra_op_threads(setting: Threads, image_observations: bool) -> int | None:
    """The thread count for `torch.set_num_threads`; None leaves torch's default."""
    if setting == "auto":
        from ppo_lab.progress import in_a_sweep

        return available_cores() if image_observations and not in_a_sweep() else 1
    return int(setting) or None
