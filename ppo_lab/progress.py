"""A live progress line: global step, SPS, recent episodic return, ETA (tqdm on a terminal,
a plain log line every ~10% otherwise, e.g. in sweeps and CI logs)."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("ppo_lab")


def in_a_sweep() -> bool:
    """Jobs of a sweep share the terminal: bars would overwrite each other, so they log lines."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class Progress:
    def __init__(self, total_steps: int):
        self.total = total_steps
        self.start = time.perf_counter()
        self.interactive = sys.stderr.isatty() and not in_a_sweep()
        self.bar = tqdm(
            total=total_steps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not self.interactive,
            smoothing=0.1,
        )
        self._next_log = 0.1

    def update(self, global_step: int, recent_returns: list[float]) -> None:
        recent = sum(recent_returns) / len(recent_returns) if recent_returns else float("nan")
        if self.interactive:
            self.bar.set_postfix_str(f"return {recent:.1f}", refresh=False)
            self.bar.update(global_step - self.bar.n)
            return
        done = global_step / self.total
        if done >= self._next_log or global_step >= self.total:
            elapsed = time.perf_counter() - self.start
            sps = global_step / max(elapsed, 1e-9)
            eta = (self.total - global_step) / max(sps, 1e-9)
            log.info(
                "step %d/%d (%.0f%%)  SPS %.0f  return(last 10) %.1f  ETA %.0fs",
                global_step,
                self.total,
                100 * done,
                sps,
                recent,
                eta,
            )
            self._next_log = (int(done * 10) + 1) / 10

    def close(self) -> None:
        self.bar.close()
