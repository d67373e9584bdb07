"""Stop signals become a request the loop honours between updates, never a half-done update.

SIGTERM, SIGINT (Ctrl-C) and SIGUSR2 (what SLURM sends before preemption) set a flag; the trainer
checks it after each update, writes a checkpoint, flushes metrics and W&B and raises
`StopRequested`, which the job records as `interrupted` with the step reached. A second SIGINT
while stopping interrupts at once.

Under submitit the launcher owns preemption: it bypasses SIGTERM (so that is left to it) and
requeues the job on SIGUSR2. The stop then runs first and submitit's handler after it (see
`StopRequested.hand_over`), so the requeued job resumes from the checkpoint just written.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
Handler = Callable[[int, FrameType | None], Any] | int | None


class StopRequested(KeyboardInterrupt):
    """Raised by the trainer after it saved its state on a stop signal."""

    def __init__(self, signum: int, previous_handler: Handler):
        self.signum = signum
        self.previous_handler = previous_handler
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def hand_over(self) -> None:
        """Call the handler that was installed before ours (submitit's requeue), if any."""
        if callable(self.previous_handler) and self.previous_handler not in _DEFAULTS:
            self.previous_handler(self.signum, None)


_DEFAULTS = (signal.default_int_handler,)


def _owned_by_launcher(handler: Handler) -> bool:
    """submitit bypasses SIGTERM on purpose (preemption comes as SIGUSR2): leave it so."""
    return getattr(handler, "__name__", "") == "bypass"


class GracefulStop:
    """Context manager: while active, stop signals set `requested` instead of killing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Handler] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread; a thread-pool launcher owns them
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if _owned_by_launcher(previous):
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._request)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _request(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C")  # impatient: stop now
        self.signum = signum

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def raise_if_requested(self) -> None:
        """Called by the trainer once its state is saved."""
        if self.signum is not None:
            raise StopRequested(self.signum, self._previous.get(self.signum))
