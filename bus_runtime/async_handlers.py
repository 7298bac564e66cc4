"""Run `async def` handlers from the consumers' worker threads, on an event loop.

The consumers (RabbitMQ and in-memory) call handlers from worker threads and read a meiga
`Result` back. An async handler returns a coroutine instead; `resolve` runs it to completion on
the loop that owns the service's asyncio world (the test's loop for the in-memory broker), or
on one shared background loop when there is none (an async handler under the threaded consumer
or `rabbitform consume`). The worker thread waits for the result; the loop itself never blocks.
(`AsyncRabbitMqEventConsumer` does better: it hands deliveries to its loop directly.)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# The loop that async handlers run on, for code that runs in a thread on behalf of that loop
# (`asyncio.to_thread` copies context variables into the thread).
handler_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "rabbitform_handler_loop", default=None
)

_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """`async def` functions, and callables whose `__call__` is one."""
    target = handler.func if isinstance(handler, functools.partial) else handler
    call = type(target).__call__ if callable(target) and not inspect.isroutine(target) else None
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)


def resolve(value: T | Awaitable[T], loop: asyncio.AbstractEventLoop | None = None) -> T:
    """`value` itself, or the result of awaiting it on `loop` (else the context's, else a shared one).

    Called from a worker thread: never from the loop's own thread, which would deadlock.
    """
    if not inspect.isawaitable(value):
        return value
    target = loop or handler_loop.get() or _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is target:
        _close(value)
        raise RuntimeError("an async handler was called on its own event loop's thread: it would deadlock")
    return asyncio.run_coroutine_threadsafe(_as_coroutine(value), target).result()


async def _await(value: Awaitable[T]) -> T:
    return await value


def _as_coroutine(value: Awaitable[T]) -> Coroutine[Any, Any, T]:
    return value if inspect.iscoroutine(value) else _await(value)


def _close(value: object) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        close()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One daemon thread running a loop, started on first use."""
    global _background
    with _background_lock:
        if _background is None or _background.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="rabbitform-async-handlers", daemon=True)
            thread.start()
            _background = loop
        return _background
