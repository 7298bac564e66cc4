"""What the integration tests share: waiting with a deadline, importing a topology into the test's
vhost, reading queues (depths over AMQP, names and messages through the management API), and
running a `rabbitform` child process."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pika
import requests

from tests.conftest import PASSWORD, USER
from topology.compile.compiler import compile_spec
from topology.compile.definitions import to_definitions
from topology.compile.objects import Topology
from topology.spec.model import Spec

T = TypeVar("T")

AUTH = (USER, PASSWORD)
ROOT = Path(__file__).resolve().parents[2]
RABBITFORM = str(Path(sys.executable).with_name("rabbitform"))


def wait_for(condition: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until `condition()` is truthy and return that value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def import_topology(
    management_url: str, vhost: str, spec_or_topology: Spec | Topology, *, whole_export: bool = False
) -> Topology:
    """Create a spec's (or a compiled topology's) objects in `vhost`, which exists; return the topology.

    By default the exchanges, queues and bindings go to `POST /api/definitions/{vhost}` (creates
    only). `whole_export` posts the whole export instead, its `vhosts` entry included, to
    `POST /api/definitions`: the file `rabbitform export` writes, imported as a user would."""
    if isinstance(spec_or_topology, Spec):
        topology = compile_spec(spec_or_topology.model_copy(update={"vhost": vhost}))
    else:
        topology = dataclasses.replace(spec_or_topology, vhost=vhost)
    if whole_export:
        url, definitions = f"{management_url}/api/definitions", to_definitions(topology)
    else:
        url = f"{management_url}/api/definitions/{quote(vhost, safe='')}"
        definitions = to_definitions(topology, include_vhost=False)
    response = requests.post(url, json=definitions, auth=AUTH, timeout=30)
    assert response.status_code in (200, 201, 204), response.text
    return topology


def queue_names(management_url: str, vhost: str) -> list[str]:
    """The names of the queues in `vhost`, sorted."""
    response = requests.get(
        f"{management_url}/api/queues/{quote(vhost, safe='')}", params={"columns": "name"}, auth=AUTH, timeout=10
    )
    response.raise_for_status()
    return sorted(q["name"] for q in response.json())


def depths(amqp_url: str, queues: Iterable[str]) -> dict[str, int]:
    """Ready messages per queue, read over AMQP (the management API's counts lag by seconds)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        return {name: int(channel.queue_declare(name, passive=True).method.message_count) for name in queues}
    finally:
        connection.close()


def depth(amqp_url: str, queue: str) -> int:
    """Ready messages in one queue, read over AMQP."""
    return depths(amqp_url, [queue])[queue]


def get_messages(
    management_url: str, vhost: str, queue: str, count: int = 10, ackmode: str = "ack_requeue_false"
) -> list[dict[str, Any]]:
    """Up to `count` messages from `queue`, now (no waiting), through the management API; the
    default `ackmode` removes them, `ack_requeue_true` puts them back, `reject_requeue_false`
    dead-letters them."""
    response = requests.post(
        f"{management_url}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get",
        json={"count": count, "ackmode": ackmode, "encoding": "auto"},
        auth=AUTH,
        timeout=10,
    )
    response.raise_for_status()
    return list(response.json())


class Process:
    """A child process whose combined output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return "".join(list(self.lines)).count(text)

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code
