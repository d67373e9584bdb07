"""A Hydra callback that writes the sweep summary when a multirun ends.

Registered in conf/config.yaml under `hydra.callbacks.sweep_summary`. Hydra does not call
`on_multirun_end` when a job failed; then `python -m ppo_lab.sweep summarize <sweep dir>` writes
the same table on demand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


STARTED: list[Path] = []  # the sweep dirs this process started (read by ppo_lab.__main__)


class SweepSummaryCallback(Callback):
    """Writes `sweep_summary.md` and `.csv` into the sweep dir at the end of a multirun.

    It also remembers the sweep dir when the multirun starts: `python -m ppo_lab` writes the
    final summary itself after any multirun, also one that ended in an error (Hydra calls
    `on_multirun_end` only when every job succeeded).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        STARTED.append(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ppo_lab.sweep.summary import write_summary

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            paths = write_summary(sweep_dir)
        except Exception as err:  # the sweep itself succeeded: never fail it here
            log.warning("sweep summary not written for %s: %s", sweep_dir, err)
            return
        log.info("sweep summary: %s", paths[0])
