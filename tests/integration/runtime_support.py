"""What the runtime integration tests share: message classes, recording handlers, the spec of a
few subscribers, raw publishing, broker-side connection closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import pika
import requests
from meiga import isFailure, isSuccess

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.message import Command, Event
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.subscriber_spec import spec_for_subscribers
from tests.integration.support import AUTH, depths, queue_names, wait_for
from topology.spec.model import Spec

ORG, SERVICE = "alice", "petisco"


class UserCreated(Event):
    user_id: str


class UserDeleted(Event):
    user_id: str


class SendWelcome(Command):
    user_id: str


class Recorder:
    """A handler that records its calls; `outcomes` says what call n returns (default success)."""

    def __init__(self, name: str, outcomes: Sequence[str] = (), sleep: float = 0.0) -> None:
        self.calls: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        self._outcomes = list(outcomes)
        self._sleep = sleep

        def handler(event: Any) -> Any:
            with self._lock:
                self.calls.append((time.monotonic(), event))
                n = len(self.calls)
            if self._sleep:
                time.sleep(self._sleep)
            outcome = self._outcomes[n - 1] if n <= len(self._outcomes) else "ok"
            if outcome == "raise":
                raise RuntimeError(f"call {n} failed")
            return isFailure if outcome == "fail" else isSuccess

        handler.__name__ = name
        self.handler: Callable[[Any], Any] = handler

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    @property
    def events(self) -> list[Any]:
        with self._lock:
            return [event for _, event in self.calls]


def subscribers_spec(subscribers: Sequence[EventSubscriber], retry_ttl: int = 200, store: bool = False) -> Spec:
    """The spec of `subscribers` in alice's petisco service, with the store if asked for."""
    return spec_for_subscribers(ORG, SERVICE, subscribers, retry_ttl, store=store)


def connector(amqp_url: str, heartbeat: int | None = None) -> RabbitMqConnector:
    return RabbitMqConnector(amqp_url, heartbeat=heartbeat)


def assert_all_empty(management_url: str, amqp_url: str, vhost: str) -> None:
    """Nothing left anywhere (call after the consumer stopped: then nothing is unacked either)."""
    left = {name: n for name, n in depths(amqp_url, queue_names(management_url, vhost)).items() if n}
    assert not left, f"messages left: {left}"


def publish_raw(amqp_url: str, routing_key: str, body: bytes, exchange: str = f"{ORG}.{SERVICE}") -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()


def connections_of(management_url: str, vhost: str, prefix: str) -> list[str]:
    response = requests.get(f"{management_url}/api/vhosts/{quote(vhost, safe='')}/connections", auth=AUTH, timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [
        c["name"]
        for c in response.json()
        if str((c.get("client_properties") or {}).get("connection_name", "")).startswith(prefix)
    ]


def force_close(management_url: str, vhost: str, prefix: str, timeout: float = 15.0) -> int:
    """Close (broker side) every connection of `vhost` whose name starts with `prefix`."""
    names = wait_for(lambda: connections_of(management_url, vhost, prefix), f"a {prefix} connection", timeout=timeout)
    for name in names:
        requests.delete(
            f"{management_url}/api/connections/{quote(name, safe='')}",
            auth=AUTH,
            headers={"X-Reason": "forced close by the test"},
            timeout=10,
        )
    return len(names)
