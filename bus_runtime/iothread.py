"""One pika I/O loop in one thread: the only thread that touches its connections and channels.

pika is not thread-safe. Other threads never call pika; they hand work to the loop with
`call()` (`add_callback_threadsafe`). The loop outlives connections, so a reconnect is just a
new `SelectConnection` on the same loop and callers never see a stale handle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import describe_error as describe_error  # where it used to live

log = logging.getLogger("bus_runtime")

TESTED_PIKA = ("1.3.2",)  # the pika releases SelectConnection's private override is tested with


class IoThread:
    def __init__(self, name: str) -> None:
        self.ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self.connect_attempts = 0  # connections opened on this loop; picks the node to try next

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the I/O thread (safe from any thread)."""
        self.ioloop.add_callback_threadsafe(partial(fn, *args) if args else fn)

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self, timeout: float = 10.0) -> None:
        if not self._started:
            return
        if self._thread.is_alive():
            self.call(self.ioloop.stop)
            if not self.in_loop():
                self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.ioloop.start()
        except Exception:  # pragma: no cover - a bug in a callback; logged, the thread ends
            log.exception("bus_runtime I/O loop failed")
        finally:
            self.ioloop.close()


class SelectConnection(pika.SelectConnection):
    """pika's `SelectConnection`, writing a burst of frames as one buffer.

    pika hands every frame (3 per message) to its transport separately, and the transport
    makes one `send()` per buffer. While `corked()` (the publisher's pump), frames are
    joined and handed over once: same bytes, same order, far fewer system calls.

    pika has no public hook for this: `_output_marshaled_frames` is private. pyproject.toml
    pins the pika versions in `TESTED_PIKA`, and tests/unit/test_pika_hook.py fails loudly when
    the installed pika's method is not the one this override was written against.
    """

    _cork: list[bytes] | None = None

    def _output_marshaled_frames(self, marshaled_frames: list[bytes]) -> None:
        if self._cork is None:
            super()._output_marshaled_frames([b"".join(marshaled_frames)])
            self.frames_sent += len(marshaled_frames) - 1
            return
        self._cork.extend(marshaled_frames)

    def cork(self) -> None:
        if self._cork is None:
            self._cork = []

    def uncork(self) -> None:
        frames, self._cork = self._cork, None
        if frames and self.is_open:
            super()._output_marshaled_frames([b"".join(frames)])
            self.frames_sent += len(frames) - 1


def open_connection(
    io: IoThread,
    connector: RabbitMqConnector,
    purpose: str,
    on_open: Callable[[pika.SelectConnection], None],
    on_open_error: Callable[[pika.SelectConnection, BaseException], None],
    on_close: Callable[[pika.SelectConnection, BaseException], None],
) -> SelectConnection:
    """A new connection on `io`'s loop (call on the I/O thread).

    With several URLs (a cluster), each call tries the next node in turn: a reconnect after
    losing a node goes to another one, and the backoff of the caller paces the rotation.
    """
    endpoint = io.connect_attempts
    io.connect_attempts += 1
    return SelectConnection(
        parameters=connector.parameters(purpose, endpoint),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_close,
        custom_ioloop=io.ioloop,
    )


def backoff(attempt: int, first: float = 0.1, cap: float = 5.0) -> float:
    """Reconnect delay: doubles from `first` up to `cap` seconds."""
    return min(cap, first * (2 ** max(0, attempt - 1)))
