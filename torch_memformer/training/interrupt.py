"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, exit cleanly.

The first signal only sets a flag that the loop reads between steps (so a step or a checkpoint
write is never cut in half); a second one raises ``KeyboardInterrupt`` at once, for a user who
does not want to wait. Handlers can only be installed in the main thread; elsewhere (a
notebook's worker thread) the default behaviour stays.
"""

from __future__ import annotations

import logging
import signal
import threading

logger = logging.getLogger(__name__)


class StopRequest:
    """``with StopRequest() as stop: ... if stop.requested: ...``"""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("%s received: stopping after this step and saving a checkpoint (again to abort without saving)",
                       signal.Signals(signum).name)
