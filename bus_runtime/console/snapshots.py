"""The latest read of something slow (the status listing, the dead-letter groups), served at
once and refreshed in the background once older than `max_age`.

The broker samples queue lengths and rates every 5 s itself, so a page polling every 5 s gains
nothing from reading synchronously, and on a vhost of thousands of queues a synchronous read
can take longer than the page may wait. The first read waits; a failed read is raised to the
caller (the page says what is unreachable) until a later read succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_AGE = 2.0  # seconds a read is served before a new one starts


class Snapshot(Generic[T]):
    def __init__(
        self,
        load: Callable[[], T],
        executor: Executor,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._executor = executor
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._read_at: float | None = None
        self._error: BaseException | None = None
        self._pending: Future[T] | None = None

    def refresh(self) -> Future[T]:
        """Start a read unless one is under way; the read under way."""
        with self._lock:
            if self._pending is None:
                self._pending = self._executor.submit(self._read)
            return self._pending

    def get(self) -> tuple[T, float]:
        """The latest value and its age in seconds; starts a read when it is old."""
        with self._lock:
            value, read_at, error, pending = self._value, self._read_at, self._error, self._pending
        stale = read_at is None or self._clock() - read_at > self.max_age
        if stale or error is not None:
            pending = self.refresh()
        if error is not None:
            raise error
        if value is None or read_at is None:
            assert pending is not None
            pending.result()  # the first read: wait (its error is raised)
            with self._lock:
                value, read_at = self._value, self._read_at
            assert value is not None and read_at is not None
        return value, max(0.0, self._clock() - read_at)

    def update(self, change: Callable[[T], T]) -> None:
        """Apply a change we made ourselves to the value held, then read again."""
        with self._lock:
            if self._value is not None:
                self._value = change(self._value)
        self.refresh()

    def _read(self) -> T:
        try:
            value = self._load()
        except BaseException as exc:
            with self._lock:
                self._error, self._pending = exc, None
            raise
        with self._lock:
            self._value, self._read_at, self._error, self._pending = value, self._clock(), None, None
        return value
