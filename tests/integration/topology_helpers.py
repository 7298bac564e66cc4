"""Create a spec's topology in a test vhost: compile it and import the definitions (creates only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from topology.compile import compile_spec
from topology.definitions import to_definitions
from topology.spec import Spec

AUTH = ("guest", "guest")


def create_topology(management_url: str, vhost: str, spec: Spec) -> None:
    topology = compile_spec(spec.model_copy(update={"vhost": vhost}))
    definitions = to_definitions(topology, include_vhost=False)
    response = requests.post(
        f"{management_url}/api/definitions/{quote(vhost, safe='')}", json=definitions, auth=AUTH, timeout=30
    )
    response.raise_for_status()


def queue_depths(management_url: str, vhost: str) -> dict[str, int]:
    """Ready + unacked messages per queue (management stats lag: poll, do not assert once)."""
    response = requests.get(
        f"{management_url}/api/queues/{quote(vhost, safe='')}",
        params={"columns": "name,messages"},
        auth=AUTH,
        timeout=10,
    )
    response.raise_for_status()
    return {q["name"]: int(q.get("messages") or 0) for q in response.json()}


def get_messages(management_url: str, vhost: str, queue: str, count: int = 10) -> list[dict[str, Any]]:
    """Read (and remove) up to `count` messages from a queue through the management API."""
    response = requests.post(
        f"{management_url}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get",
        json={"count": count, "ackmode": "ack_requeue_false", "encoding": "auto"},
        auth=AUTH,
        timeout=10,
    )
    response.raise_for_status()
    return list(response.json())


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll until `condition()` is truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
