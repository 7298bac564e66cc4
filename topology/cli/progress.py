"""Progress on stderr for every phase that takes more than a couple of seconds.

Quick phases print nothing. A phase still running after `delay` seconds gets a status line
(rewritten in place on a terminal, repeated every `interval` seconds in a log) from a ticker
thread, so that a long read or a long plan shows signs of life even between steps; when it
ends, one closing line says what it did. A request that waits on a slow (but alive) broker
says so.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from topology.broker.management import ManagementClient


class ProgressReporter:
    """The CLI's `topology.progress.Progress`: writes to `stream` (stderr by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        delay: float = 2.0,
        interval: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
    ) -> None:
        """`clock` and `ticker=False` (call `tick()` yourself) make it testable without waiting."""
        self.stream = stream or sys.stderr
        self.delay = delay
        self.interval = interval
        self.clock = clock
        self.use_ticker = ticker
        self._tty = self.stream.isatty()
        self._lock = threading.Lock()
        self._name = ""
        self._total = 0
        self._done = 0
        self._started = 0.0
        self._shown = False  # a line of this phase has been written
        self._open_line = False  # a terminal line waits to be overwritten
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------- Progress

    def phase(self, name: str, total: int = 0) -> None:
        self.finish()
        with self._lock:
            self._name, self._total, self._done = name, total, 0
            self._started = self.clock()
            self._shown = False
        self._stop = threading.Event()
        if self.use_ticker:
            self._ticker = threading.Thread(target=self._tick, args=(self._stop,), daemon=True)
            self._ticker.start()

    def advance(self, done: int) -> None:
        with self._lock:
            self._done = done
            if self._tty and self._shown:
                self._write_status()

    def waiting(self, what: str, seconds: float) -> None:
        with self._lock:
            self._end_line()
            self.stream.write(
                f"  still waiting for {what} after {seconds:.0f} s; the broker answers, so it is busy, not down\n"
            )
            self.stream.flush()

    def finish(self, summary: str = "") -> None:
        self._stop.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.join()
        with self._lock:
            if not self._name:
                return
            elapsed = self.clock() - self._started
            if self._shown or elapsed >= self.delay:
                if self._open_line:  # a terminal: the closing line replaces the status
                    self.stream.write("\r")
                    self._open_line = False
                said = f"{summary}, " if summary else ""
                clear = "\x1b[K" if self._tty else ""
                self.stream.write(f"{self._name}: {said}{elapsed:.1f} s{clear}\n")
                self.stream.flush()
            self._name = ""

    # ------------------------------------------------------------- internals

    def tick(self) -> None:
        """Show the running phase's status if it has run for `delay` seconds."""
        with self._lock:
            if self._name and self.clock() - self._started >= self.delay:
                self._write_status()
                self._shown = True

    def _tick(self, stop: threading.Event) -> None:
        if stop.wait(self.delay):
            return
        while not stop.is_set():
            self.tick()
            if stop.wait(0.5 if self._tty else self.interval):
                return

    def _status(self) -> str:
        elapsed = self.clock() - self._started
        if self._total:
            percent = 100 * self._done // self._total
            return f"{self._name}: {self._done}/{self._total} ({percent}%), {elapsed:.0f} s"
        return f"{self._name}: {elapsed:.0f} s"

    def _write_status(self) -> None:
        if self._tty:
            self.stream.write(f"\r{self._status()}\x1b[K")
            self._open_line = True
        else:
            self.stream.write(self._status() + "\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False


def reporter_for(client: ManagementClient) -> ProgressReporter:
    """A reporter on stderr that also hears when `client` waits on a slow broker."""
    reporter = ProgressReporter()
    client.on_wait = reporter.waiting
    return reporter
