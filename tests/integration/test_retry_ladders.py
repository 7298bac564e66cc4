"""Retry ladders, errors that skip retries and the circuit breaker on the real broker.

A ladder spec applies and plans no changes (both queue-settings modes, and quorum); attempt
times are measured against each tier's delay; a dead letter tells its failure's story; an open
breaker leaves its subscriber's messages in the queue, unattempted, while another subscriber of
the same consumer carries on.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from bus_runtime import retry
from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from tests.integration import ladder_handlers
from tests.integration.live_support import client
from tests.integration.runtime_support import UserCreated, connector, force_close
from tests.integration.support import depth, get_messages, queue_names, wait_for
from topology import naming
from topology.apply.live import converge, plan_live
from topology.spec.loader import load_spec
from topology.status.model import StatusReport
from topology.status.read import read_status
from topology.status.render import render_status_text

H = "tests.integration.ladder_handlers"
QUEUE = "alice.petisco.1.event.user.created.{}"
# What a shared 2-core machine adds to a TTL in the worst case we accept in a test (the
# benchmark measures the real lateness).
SLACK_S = 1.5


def write_spec(tmp_path: Path, vhost: str, subscribers: str, head: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"organization: alice\nvhost: {json.dumps(vhost)}\n{head}"
        "services:\n  petisco:\n    events:\n      UserCreated:\n        subscribers:\n" + subscribers,
        encoding="utf-8",
    )
    return path


def applied(management_url: str, tmp_path: Path, vhost: str, subscribers: str) -> Path:
    """The spec written and applied, the handlers' record of calls emptied: its path."""
    path = write_spec(tmp_path, vhost, subscribers)
    c = client(management_url, timeout=60)
    try:
        converge(load_spec(path), c)
    finally:
        c.close()
    ladder_handlers.calls.clear()
    return path


def dead_letter_headers(management_url: str, vhost: str, queue: str) -> dict[str, Any]:
    [message] = get_messages(management_url, vhost, queue, ackmode="ack_requeue_true")
    return dict(message["properties"]["headers"])


LADDER = (
    "          audit_handler:\n"
    f'            handler: "{H}:always_fails"\n'
    "            retry: {delays_ms: [300, 900, 1800], max_retries: 4, dead_letter_on: [PaymentDeclined]}\n"
    f'          pay_handler: {{handler: "{H}:declines", retry: {{dead_letter_on: [PaymentDeclined]}}}}\n'
    f'          close_handler: {{handler: "{H}:gives_up"}}\n'
    "          bill_handler:\n"
    f'            handler: "{H}:needs_dependency"\n'
    "            retry: {delay_ms: 60000}\n"
    "            circuit_breaker: {failures: 3, window_s: 30, pause_s: 1.5}\n"
    f'          send_mail_handler: {{handler: "{H}:succeeds"}}\n'
)


@pytest.mark.parametrize(
    "head",
    ["", "queue_settings: policies\n", "defaults: {queue_type: quorum}\n"],
    ids=["arguments", "policies", "quorum"],
)
def test_a_ladder_spec_applies_and_plans_no_changes(management_url: str, vhost: str, tmp_path: Path, head: str) -> None:
    spec = load_spec(write_spec(tmp_path, vhost, LADDER, head))
    c = client(management_url, timeout=60)
    try:
        converge(spec, c)
        assert plan_live(spec, c).changes == ()
        audit = QUEUE.format("audit_handler")
        names = set(queue_names(management_url, vhost))
        assert {f"retry.{audit}", f"retry.{audit}.2", f"retry.{audit}.3"} <= names
    finally:
        c.close()


def test_attempts_wait_their_tier_and_dead_letters_tell_the_story(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path
) -> None:
    path = applied(management_url, tmp_path, vhost, LADDER)
    consumer = RabbitMqEventConsumer.from_spec(path, connector=connector(amqp_url))
    consumer.start()
    bus = RabbitMqEventBus(connector(amqp_url), "alice", "petisco")
    try:
        bus.publish(UserCreated(user_id="1"))
        audit_dead = naming.dead_letter_queue(QUEUE.format("audit_handler"))
        wait_for(lambda: depth(amqp_url, audit_dead) == 1, "the ladder to run out", timeout=30)
    finally:
        bus.close()
        consumer.stop()
    times = ladder_handlers.calls["always_fails"]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 5
    for waited, delay in zip(waits, (0.3, 0.9, 1.8, 1.8), strict=True):
        assert delay <= waited + 0.05 < delay + SLACK_S, (waits, delay)
    headers = dead_letter_headers(management_url, vhost, audit_dead)
    assert headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    assert headers[retry.RETRY_COUNT] == 4
    assert headers[retry.ERROR_TYPE] == "TimeoutError"
    assert ", in always_fails\n" in headers[retry.TRACEBACK]
    assert headers[retry.TRACEBACK].endswith("TimeoutError: billing did not answer\n")
    assert headers[retry.HOST] == socket.gethostname() and headers[retry.PID] == os.getpid()
    assert headers[retry.FIRST_FAILURE_AT] < headers[retry.LAST_FAILURE_AT]
    for handler, error in (("pay_handler", "CardExpired"), ("close_handler", "NonRetryableError")):
        headers = dead_letter_headers(management_url, vhost, naming.dead_letter_queue(QUEUE.format(handler)))
        assert headers[retry.DEAD_LETTER_REASON] == retry.REASON_NON_RETRYABLE
        assert (headers[retry.ERROR_TYPE], headers[retry.RETRY_COUNT]) == (error, 0)
    assert len(ladder_handlers.calls["declines"]) == len(ladder_handlers.calls["gives_up"]) == 1


def test_an_open_breaker_leaves_its_messages_unattempted_and_a_probe_closes_it(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path
) -> None:
    path = applied(management_url, tmp_path, vhost, LADDER)
    ladder_handlers.dependency_up.clear()
    bill = QUEUE.format("bill_handler")
    consumer = RabbitMqEventConsumer.from_spec(
        path, subscribers=["bill_handler", "send_mail_handler"], connector=connector(amqp_url), workers=1
    )
    consumer.start()
    bus = RabbitMqEventBus(connector(amqp_url), "alice", "petisco")
    try:
        bus.publish([UserCreated(user_id=str(n)) for n in range(8)])
        wait_for(lambda: len(ladder_handlers.calls["succeeds"]) == 8, "the other subscriber to carry on", timeout=20)
        wait_for(lambda: depth(amqp_url, bill) == 5, "the held deliveries back in the queue, unattempted", timeout=20)
        wait_for(lambda: depth(amqp_url, naming.retry_queue(bill)) == 3, "the three failures' retry copies")
        opened = ladder_handlers.calls["needs_dependency"][-1]
        assert len(ladder_handlers.calls["needs_dependency"]) == 3
        c = client(management_url, timeout=60)
        try:
            spec = load_spec(path)

            def paused_report() -> StatusReport | None:
                report = read_status(spec, c)
                return report if any(s.paused for s in report.subscribers) else None

            report = wait_for(paused_report, "status to show the paused subscriber")
            render = render_status_text(report)
            assert "petisco/bill_handler (paused)" in render
            assert "petisco/send_mail_handler " in render
            [paused] = [s for s in report.subscribers if s.paused]
            assert paused.name == "bill_handler"  # (counts lag: the management stats refresh every few seconds)
        finally:
            c.close()
        ladder_handlers.dependency_up.set()
        wait_for(lambda: depth(amqp_url, bill) == 0, "the probe to close the breaker and the rest to follow")
        wait_for(lambda: len(ladder_handlers.calls["needs_dependency"]) == 8, "every held message handled once")
    finally:
        bus.close()
        consumer.stop()
    probe = ladder_handlers.calls["needs_dependency"][3]
    assert probe - opened >= 1.5 - 0.05
    assert depth(amqp_url, naming.retry_queue(bill)) == 3  # the held ones were never attempts


def test_the_paused_marker_is_declared_again_after_a_reconnect(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path
) -> None:
    """The marker `status` reads is an exclusive queue: it dies with the consumer's connection,
    and the consumer's next connection declares it again while the breaker is still open."""
    subscribers = (
        "          bill_handler:\n"
        f'            handler: "{H}:needs_dependency"\n'
        "            retry: {delay_ms: 60000}\n"
        "            circuit_breaker: {failures: 3, window_s: 30, pause_s: 60}\n"
    )
    path = applied(management_url, tmp_path, vhost, subscribers)
    ladder_handlers.dependency_up.clear()
    marker = naming.paused_marker(QUEUE.format("bill_handler"))
    consumer = RabbitMqEventConsumer.from_spec(path, connector=connector(amqp_url), workers=1)
    consumer.start()
    bus = RabbitMqEventBus(connector(amqp_url), "alice", "petisco")
    try:
        bus.publish([UserCreated(user_id=str(n)) for n in range(3)])
        wait_for(lambda: marker in queue_names(management_url, vhost), "the breaker to open and mark the pause")
        assert force_close(management_url, vhost, "rabbitform-consumer") == 1
        wait_for(lambda: consumer.reconnect_count >= 1, "the consumer to reconnect", timeout=30)
        wait_for(lambda: marker in queue_names(management_url, vhost), "the marker on the new connection")
        assert len(ladder_handlers.calls["needs_dependency"]) == 3  # still paused: nothing attempted since
    finally:
        bus.close()
        consumer.stop()


@pytest.mark.asyncio
async def test_the_asyncio_consumer_climbs_the_same_ladder(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path
) -> None:
    import asyncio

    from bus_runtime.aio import AsyncRabbitMqEventConsumer

    subscribers = (
        f'          audit_handler:\n            handler: "{H}:always_fails_async"\n'
        "            retry: {delays_ms: [200, 600], max_retries: 2}\n"
        f'          pay_handler: {{handler: "{H}:declines_async", retry: {{dead_letter_on: [PaymentDeclined]}}}}\n'
    )
    path = applied(management_url, tmp_path, vhost, subscribers)
    consumer = AsyncRabbitMqEventConsumer.from_spec(path, connector=connector(amqp_url))
    await consumer.start()
    bus = RabbitMqEventBus(connector(amqp_url), "alice", "petisco")
    try:
        bus.publish(UserCreated(user_id="1"))
        dead = naming.dead_letter_queue(QUEUE.format("audit_handler"))
        deadline = time.monotonic() + 20
        while depth(amqp_url, dead) < 1:
            assert time.monotonic() < deadline, "the async ladder did not run out"
            await asyncio.sleep(0.05)
    finally:
        bus.close()
        await consumer.stop()
    times = ladder_handlers.calls["always_fails_async"]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 3
    for waited, delay in zip(waits, (0.2, 0.6), strict=True):
        assert delay - 0.05 <= waited < delay + SLACK_S, waits
    headers = dead_letter_headers(management_url, vhost, naming.dead_letter_queue(QUEUE.format("pay_handler")))
    assert headers[retry.DEAD_LETTER_REASON] == retry.REASON_NON_RETRYABLE
