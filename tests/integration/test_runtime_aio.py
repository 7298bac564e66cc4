"""An asyncio service on the real broker: `await bus.publish`, `async def` handlers beside plain
ones, a retry and a dead letter with the threaded consumer's headers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from meiga import Error, Failure, Result, isSuccess
from prometheus_client import CollectorRegistry

from bus_runtime import EventSubscriber, retry
from bus_runtime.aio import AsyncRabbitMqEventBus, AsyncRabbitMqEventConsumer
from bus_runtime.errors import TopologyMissing
from bus_runtime.telemetry import hooks
from bus_runtime.telemetry.metrics import enable_metrics
from tests.integration.runtime_support import ORG, SERVICE, UserCreated, connector, subscribers_spec
from tests.integration.support import get_messages, import_topology

QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"


class Bounce(Error):
    def __init__(self, message: str) -> None:
        self.message = message


async def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_async_service_publishes_consumes_retries_and_dead_letters(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    loop = asyncio.get_running_loop()
    calls: dict[str, int] = {}
    on_loop: list[bool] = []

    async def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        calls[event.user_id] = calls.get(event.user_id, 0) + 1
        on_loop.append(asyncio.get_running_loop() is loop)
        await asyncio.sleep(0.001)
        if event.user_id == "bounce":
            return Failure(Bounce("mailbox does not exist"))
        if event.user_id == "flaky" and calls["flaky"] == 1:
            raise RuntimeError("smtp timeout")
        return isSuccess

    stored: list[str] = []

    def event_store(event: Any) -> Result[bool, Error]:  # a plain handler in the same consumer
        stored.append(event.message_type)
        return isSuccess

    subscribers = [EventSubscriber(UserCreated, [send_mail_handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers, retry_ttl=100, store=True))
    metrics = enable_metrics(CollectorRegistry())
    consumer = AsyncRabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE, max_retries=2)
    consumer.consume(subscribers)
    consumer.consume_store(event_store)
    async with AsyncRabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        await consumer.start()
        try:
            events = [UserCreated(user_id=i) for i in ("ok", "flaky", "bounce")]
            assert await bus.publish(events) == []
            await asyncio.gather(*(bus.publish(UserCreated(user_id=f"c{i}")) for i in range(20)))
            await wait_until(
                lambda: calls.get("bounce") == 3 and calls.get("flaky") == 2 and len(stored) == 23,
                "the retries, the dead letter and the store",
            )
            await wait_until(lambda: consumer.dead_lettered_count == 1, "the dead letter to be settled")
        finally:
            await consumer.stop()
            hooks.uninstall(metrics)
    assert all(on_loop) and calls["ok"] == 1
    confirmed = metrics.registry.get_sample_value(
        "rabbitform_publish_confirmed_total", {"exchange": f"{ORG}.{SERVICE}"}
    )
    assert confirmed == 23
    handled = {"subscriber": "send_mail_handler", "event": "user.created"}
    sample = metrics.registry.get_sample_value
    assert sample("rabbitform_messages_handled_total", {**handled, "outcome": "dead_letter"}) == 1
    assert sample("rabbitform_messages_handled_total", {**handled, "outcome": "retry"}) == 3
    [dead] = get_messages(management_url, vhost, "dead_letter." + QUEUE)
    assert json.loads(dead["payload"])["data"]["attributes"]["user_id"] == "bounce"
    headers = dead["properties"]["headers"]
    assert headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    assert headers[retry.RETRY_COUNT] == 2
    assert headers[retry.ERROR_TYPE] == "Bounce"


@pytest.mark.asyncio
async def test_missing_topology_is_reported_by_await_start(amqp_url: str) -> None:
    async def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        return isSuccess

    consumer = AsyncRabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE)
    consumer.consume([EventSubscriber(UserCreated, [send_mail_handler])])
    with pytest.raises(TopologyMissing, match="rabbitform"):
        await consumer.start()
