"""Progress on stderr for long-running phases."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PROGRESS_THRESHOLD = 200  # fewer objects than this apply in a blink: no progress output


class ProgressReporter:
    """Progress on stderr for large applies: a counter on a terminal, a line every few seconds otherwise."""

    def __init__(
        self, stream: TextIO | None = None, threshold: int = PROGRESS_THRESHOLD, interval: float = 2.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.threshold = threshold
        self.interval = interval
        self._last = float("-inf")  # the first report always prints
        self._tty = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if total < self.threshold:
            return
        percent = 100 * done // total
        if self._tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\rApplying: {done}/{total} objects ({percent}%){end}")
            self.stream.flush()
            return
        now = time.monotonic()
        if done >= total or now - self._last >= self.interval:
            self._last = now
            print(f"Applying: {done}/{total} objects ({percent}%)", file=self.stream, flush=True)
