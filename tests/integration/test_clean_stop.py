"""A clean stop: deliveries stop at once, prefetched ones whose handler has not started go back
to the queue at once, running handlers get a grace period, and `stop()` returns within it even
when the broker does not answer. A second signal to `rabbitform consume` stops at once; the
broker requeues what was in hand. Every path loses nothing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pika
import pytest

from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from tests.integration import slow_handlers
from tests.integration.freezable_proxy import freezable
from tests.integration.runtime_support import connector
from tests.integration.support import RABBITFORM, ROOT, Process, depth, import_topology, wait_for
from topology.spec.loader import load_spec

ORG, SERVICE = "acme", "stopper"
TOTAL = 20


def write_spec(tmp_path: Path, vhost: str, handler: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"organization: {ORG}\nvhost: {vhost!r}\n"
        "defaults: {queue_type: classic, retry: {delay_ms: 5000, max_retries: 3}}\n"
        f"services:\n  {SERVICE}:\n    events:\n      UserCreated:\n        version: 1\n"
        f"        subscribers:\n          {handler}:\n            handler: tests.integration.slow_handlers:{handler}\n"
    )
    return spec


def queue_of(handler: str) -> str:
    return f"{ORG}.{SERVICE}.1.event.user.created.{handler}"


def publish_all(amqp_url: str) -> None:
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish([slow_handlers.UserCreated(user_id=str(n)) for n in range(TOTAL)])


def ids_in(amqp_url: str, queue: str) -> list[str]:
    """The user ids waiting in `queue`, taking them (the test is over)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        found = []
        while True:
            method, _properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append(json.loads(body)["data"]["attributes"]["user_id"])
    finally:
        connection.close()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, management_url: str, vhost: str, amqp_url: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("SLOW_HANDLER_S", "1.5")
    slow_handlers.STARTED.clear()
    slow_handlers.HANDLED.clear()
    spec = write_spec(tmp_path, vhost, "recorded_slow_handler")
    import_topology(management_url, vhost, load_spec(spec))
    publish_all(amqp_url)
    return spec


def test_stop_returns_the_unstarted_at_once_and_lets_running_handlers_finish(recorded: Path, amqp_url: str) -> None:
    queue = queue_of("recorded_slow_handler")
    consumer = RabbitMqEventConsumer.from_spec(recorded, connector=connector(amqp_url), workers=2, prefetch=TOTAL)
    consumer.start()
    wait_for(lambda: len(slow_handlers.STARTED) == 2, "two handlers running")
    stopped = threading.Thread(target=consumer.stop, args=(10.0,))
    began = time.monotonic()
    stopped.start()
    wait_for(lambda: depth(amqp_url, queue) == TOTAL - 2, "the 18 not started back in the queue", timeout=1.0)
    assert slow_handlers.HANDLED == []  # back while the running handlers still run
    stopped.join(15)
    assert 0.5 < time.monotonic() - began < 5  # it waited for the two running handlers, not the grace
    assert sorted(slow_handlers.HANDLED) == sorted(slow_handlers.STARTED)
    left = ids_in(amqp_url, queue)
    assert sorted(left + slow_handlers.HANDLED, key=int) == [str(n) for n in range(TOTAL)]  # nothing lost


def test_stop_returns_within_its_grace_period_when_the_broker_does_not_answer(recorded: Path, amqp_url: str) -> None:
    queue = queue_of("recorded_slow_handler")
    with freezable(5672) as proxy:
        through = connector(proxy.url(amqp_url))
        consumer = RabbitMqEventConsumer.from_spec(recorded, connector=through, workers=2, prefetch=TOTAL)
        consumer.start()
        wait_for(lambda: len(slow_handlers.STARTED) == 2, "two handlers running")
        proxy.freeze()
        began = time.monotonic()
        consumer.stop(2.0)
        assert time.monotonic() - began < 2.5
    # the proxy closed: the broker requeues all it had handed over, acked or not (at-least-once)
    wait_for(lambda: depth(amqp_url, queue) == TOTAL, "every message back in the queue", timeout=10)
    assert sorted(ids_in(amqp_url, queue), key=int) == [str(n) for n in range(TOTAL)]


def _consume(tmp_path: Path, vhost: str, amqp_url: str, management_url: str) -> tuple[Process, str]:
    spec = write_spec(tmp_path, vhost, "slow_handler")
    import_topology(management_url, vhost, load_spec(spec))
    publish_all(amqp_url)
    env = {
        **os.environ,
        "RABBITMQ_URL": amqp_url,
        "SLOW_HANDLER_S": "2",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }
    args = [RABBITFORM, "consume", str(spec), "--workers", "2", "--prefetch", str(TOTAL), "--shutdown-timeout", "10"]
    process = Process(args, env)
    wait_for(lambda: process.count("started ") == 2, "two handlers running", timeout=30)
    return process, queue_of("slow_handler")


def test_consume_on_sigterm_returns_the_unstarted_and_finishes_the_running(
    tmp_path: Path, vhost: str, amqp_url: str, management_url: str
) -> None:
    process, queue = _consume(tmp_path, vhost, amqp_url, management_url)
    process.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: depth(amqp_url, queue) == TOTAL - 2, "the 18 not started back in the queue", timeout=1.5)
    assert process.proc.wait(10) == 0, "".join(process.lines)
    handled = [line.split()[1] for line in process.lines if line.startswith("handled ")]
    assert len(handled) == 2 and "Traceback" not in "".join(process.lines)
    assert sorted(ids_in(amqp_url, queue) + handled, key=int) == [str(n) for n in range(TOTAL)]


def test_consume_stops_at_once_on_a_second_signal_and_the_broker_requeues_the_rest(
    tmp_path: Path, vhost: str, amqp_url: str, management_url: str
) -> None:
    process, queue = _consume(tmp_path, vhost, amqp_url, management_url)
    process.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: depth(amqp_url, queue) == TOTAL - 2, "the 18 not started back in the queue", timeout=1.5)
    began = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(5) == 130, "".join(process.lines)
    assert time.monotonic() - began < 1.5  # at once: the running handlers (2 s) were not awaited
    assert process.count("handled ") == 0
    wait_for(lambda: depth(amqp_url, queue) == TOTAL, "the two in hand requeued by the broker", timeout=10)
    assert sorted(ids_in(amqp_url, queue), key=int) == [str(n) for n in range(TOTAL)]
