"""asyncio on the in-memory broker: `async def` handlers run on the test's loop, with the same
retries and dead letters as synchronous ones (one dispatch and decision underneath)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Event, EventSubscriber, retry
from bus_runtime.aio import AsyncInMemoryBroker
from bus_runtime.async_handlers import is_async_handler, resolve

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
QUEUE = "alice.petisco.1.event.user.created.send_mail_handler"


class UserCreated(Event):
    user_id: str


class Bounce(Error):
    def __init__(self, message: str) -> None:
        self.message = message


@pytest.mark.asyncio
async def test_async_handler_runs_on_the_tests_loop() -> None:
    broker = AsyncInMemoryBroker.from_spec(ALICE)
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, bool]] = []

    async def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        await asyncio.sleep(0)  # a real await on the loop
        seen.append((event.user_id, asyncio.get_running_loop() is loop))
        return isSuccess

    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])])
    await broker.event_bus("petisco").publish([UserCreated(user_id="1"), UserCreated(user_id="2")])
    await broker.run_until_idle()
    assert seen == [("1", True), ("2", True)]
    assert broker.calls("send_mail_handler") == 2


@pytest.mark.asyncio
async def test_async_failures_retry_then_dead_letter_like_sync_ones() -> None:
    broker = AsyncInMemoryBroker.from_spec(ALICE)

    async def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        return Failure(Bounce(f"mailbox {event.user_id} does not exist"))

    def event_store(event: Any) -> Result[bool, Error]:  # mixed: a plain handler beside an async one
        return isSuccess

    consumer = broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])], max_retries=2)
    consumer.consume_store(event_store)
    await broker.event_bus("petisco").publish(UserCreated(user_id="42"))
    await broker.run_until_idle()
    assert broker.calls("send_mail_handler") == 3
    assert broker.calls("event_store") == 1
    [dead] = broker.messages("dead_letter." + QUEUE)
    assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    assert dead.headers[retry.ERROR_TYPE] == "Bounce"
    assert broker.now_ms == 2 * 5000


@pytest.mark.asyncio
async def test_an_exception_in_an_async_handler_is_a_failure(
    make_async_memory_broker: Any,
) -> None:
    broker = make_async_memory_broker(ALICE, consume=False)

    async def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        raise RuntimeError("smtp timeout")

    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])], max_retries=0)
    await broker.event_bus("petisco").publish(UserCreated(user_id="7"))
    await broker.advance(0)
    [dead] = broker.messages("dead_letter." + QUEUE)
    assert dead.headers[retry.ERROR_TYPE] == "RuntimeError"
    assert dead.headers[retry.ERROR_MESSAGE] == "smtp timeout"


def test_sync_api_runs_async_handlers_on_a_background_loop() -> None:
    """The threaded consumer and `rabbitform consume` take async handlers too."""
    broker = AsyncInMemoryBroker.from_spec(ALICE).broker
    threads: list[str] = []

    async def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        threads.append(threading.current_thread().name)
        return isSuccess

    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])])
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert threads == ["rabbitform-async-handlers"]


def test_is_async_handler_and_resolve() -> None:
    async def f(x: int) -> int:
        return x + 1

    class Callable_:
        async def __call__(self, x: int) -> int:
            return x

    assert is_async_handler(f) and is_async_handler(Callable_()) and not is_async_handler(len)
    assert resolve(f(1)) == 2
    assert resolve(5) == 5


@pytest.mark.asyncio
async def test_resolving_on_the_loops_own_thread_is_refused() -> None:
    async def f() -> int:
        return 1

    with pytest.raises(RuntimeError, match="deadlock"):
        resolve(f(), asyncio.get_running_loop())
