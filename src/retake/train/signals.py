"""Stop requests: SIGTERM (a scheduler preempting the job, torchrun shutting down) and SIGINT (Ctrl-C) only
set a flag, so the trainer can finish the current step, save a checkpoint and exit cleanly. A second SIGINT
while it does so falls back to the default handler (an immediate KeyboardInterrupt)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Within `with StopFlag() as stop:` the signals set `stop.requested` (the name of the first signal)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        # Handlers can only be installed from the main thread; elsewhere (e.g. a notebook worker) the
        # flag simply never fires and the default behaviour stays.
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signum).name
            if signum == signal.SIGINT:
                signal.signal(signal.SIGINT, signal.default_int_handler)
