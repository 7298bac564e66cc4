"""The exported definitions on the real broker: they import cleanly, read back unchanged, and route
messages the way the README says (the store's retries come back to the store alone)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.conftest import PASSWORD, USER
from tests.integration.support import get_messages, import_topology, wait_for
from topology.compile.compiler import compile_spec
from topology.compile.definitions import dumps, from_definitions, is_system_exchange, to_definitions
from topology.spec.loader import load_spec, parse_spec
from topology.spec.model import Spec

SEED = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
MULTI = Path(__file__).resolve().parents[2] / "specs" / "examples" / "multi-service.yaml"

Q = "alice.petisco.1.event.user.created.send_mail_handler"
DEADLINE_S = 20.0

SHORT_RETRIES = """\
organization: alice
defaults:
  retry: {delay_ms: 60000, max_retries: 5}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler:
            retry: {delay_ms: 300}
store:
  retry: {delay_ms: 1000}
"""


def may_be_left_out(field: str, value: object) -> bool:
    """What a broker may omit when it reads back what we exported: `vhost` in a per-vhost
    export, and `internal: false`, which 4.2.9+ and 4.3.3+ drop."""
    return field == "vhost" or (field == "internal" and value is False)


@pytest.fixture
def admin() -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    yield session
    session.close()


def seed_spec() -> Spec:
    return load_spec(SEED)


def multi_spec() -> Spec:
    return load_spec(MULTI, {"env_name": "test"})


def read_back(admin: requests.Session, management_url: str, vhost: str) -> dict[str, Any]:
    response = admin.get(f"{management_url}/api/definitions/{quote(vhost, safe='')}", timeout=30)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


@pytest.mark.parametrize("make_spec", [seed_spec, multi_spec], ids=["seed", "multi-service"])
def test_exported_definitions_import_and_read_back_unchanged(
    make_spec: Any, admin: requests.Session, management_url: str, vhost: str
) -> None:
    topology = import_topology(management_url, vhost, make_spec(), whole_export=True)
    exported = to_definitions(topology)
    broker = read_back(admin, management_url, vhost)

    assert from_definitions(broker, vhost) == topology

    # The raw items too: every key we export comes back with the same value and type; the
    # broker may add keys of its own, and a per-vhost export may leave `vhost` out.
    def by_name(items: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
        return {
            (item["source"], item["destination"], item["routing_key"]) if "source" in item else (item["name"],): item
            for item in items
            if not is_system_exchange(item.get("name", "x")) and item.get("source", "x") != ""
        }

    for kind in ("exchanges", "queues", "bindings"):
        ours, theirs = by_name(exported[kind]), by_name(broker[kind])
        assert sorted(theirs) == sorted(ours), kind
        for key, item in ours.items():
            for field, value in item.items():
                if field not in theirs[key] and may_be_left_out(field, value):
                    continue
                found = theirs[key][field]
                if field == "arguments" and found.get("x-queue-type") == "classic" and "x-queue-type" not in value:
                    found = {k: v for k, v in found.items() if k != "x-queue-type"}  # 4.0+ adds it to every queue
                assert found == value, (kind, key, field)
                assert type(found) is type(value), (kind, key, field)
                if isinstance(value, dict):  # 5000 is not "5000"
                    assert {k: type(v) for k, v in found.items()} == {k: type(v) for k, v in value.items()}, (kind, key)


def test_import_is_idempotent(admin: requests.Session, management_url: str, vhost: str) -> None:
    topology = import_topology(management_url, vhost, seed_spec(), whole_export=True)
    import_topology(management_url, vhost, seed_spec(), whole_export=True)
    assert from_definitions(read_back(admin, management_url, vhost), vhost) == topology


def _rabbitmqctl() -> str | None:
    found = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/usr/lib/rabbitmq/bin")
    local = urlsplit(os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1")).hostname in (
        "127.0.0.1",
        "localhost",
    )
    return found if found and local and os.geteuid() == 0 else None


@pytest.mark.skipif(_rabbitmqctl() is None, reason="needs rabbitmqctl for the local broker, as root")
def test_rabbitmqctl_import_definitions(admin: requests.Session, management_url: str, vhost: str) -> None:
    topology = compile_spec(seed_spec().model_copy(update={"vhost": vhost}))
    # rabbitmqctl reads the file as the broker's user: a world-readable file in a fresh folder.
    folder = Path(tempfile.mkdtemp(prefix="rabbitform-"))
    try:
        folder.chmod(0o755)
        path = folder / "definitions.json"
        path.write_text(dumps(to_definitions(topology)), encoding="utf-8")
        path.chmod(0o644)
        command = [str(_rabbitmqctl()), "import_definitions", str(path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        # The import is asynchronous: wait for it.
        wait_for(
            lambda: from_definitions(read_back(admin, management_url, vhost), vhost) == topology,
            "rabbitmqctl import_definitions to complete",
            timeout=DEADLINE_S,
            interval=0.2,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- routing on the real broker


class Broker:
    """The few management API calls the routing test needs (publish, get), for one vhost."""

    def __init__(self, session: requests.Session, management_url: str, vhost: str) -> None:
        self.session = session
        self.base = management_url
        self.vhost = vhost

    def publish(self, exchange: str, routing_key: str, payload: str) -> None:
        response = self.session.post(
            f"{self.base}/api/exchanges/{quote(self.vhost, safe='')}/{quote(exchange, safe='')}/publish",
            json={"properties": {}, "routing_key": routing_key, "payload": payload, "payload_encoding": "string"},
            timeout=10,
        )
        response.raise_for_status()
        assert response.json() == {"routed": True}, (exchange, routing_key)

    def take(self, queue: str, ackmode: str = "ack_requeue_false") -> list[dict[str, Any]]:
        """Up to 10 messages from `queue`, now (no waiting); `reject_requeue_false` dead-letters them."""
        return get_messages(self.base, self.vhost, queue, ackmode=ackmode)

    def wait_for(self, queue: str, deadline_s: float = DEADLINE_S) -> dict[str, Any]:
        """The first message that arrives in `queue` before the deadline."""
        messages = wait_for(lambda: self.take(queue), f"a message in {queue}", timeout=deadline_s, interval=0.1)
        assert len(messages) == 1, messages
        return messages[0]

    def empty(self, *queues: str) -> bool:
        return all(not self.take(queue, "ack_requeue_true") for queue in queues)


ALL_QUEUES = (Q, f"retry.{Q}", f"dead_letter.{Q}", "store", "retry.store", "dead_letter.store")


@pytest.fixture
def broker(admin: requests.Session, management_url: str, vhost: str) -> Broker:
    import_topology(management_url, vhost, parse_spec(SHORT_RETRIES), whole_export=True)
    return Broker(admin, management_url, vhost)


def test_an_event_reaches_its_subscriber_and_the_store(broker: Broker) -> None:
    broker.publish("alice.petisco", "alice.petisco.1.event.user.created", "event")
    assert broker.wait_for(Q)["payload"] == "event"
    assert broker.wait_for("store")["payload"] == "event"
    broker.publish("alice.petisco", "alice.petisco.7.command.persist.user", "command")
    assert broker.wait_for("store")["payload"] == "command"
    assert broker.empty(*ALL_QUEUES)


def test_the_store_retry_path_returns_to_the_store_alone(broker: Broker) -> None:
    started = time.monotonic()
    broker.publish("retry.alice.petisco", "retry.store", "store retry")
    assert broker.empty("store")  # it waits out its TTL in retry.store first
    message = broker.wait_for("store")
    assert time.monotonic() - started >= 0.9
    assert message["payload"] == "store retry"
    [death] = message["properties"]["headers"]["x-death"]
    assert (death["queue"], death["reason"], death["exchange"]) == ("retry.store", "expired", "retry.alice.petisco")
    assert broker.empty(*ALL_QUEUES)


def test_a_subscriber_retry_returns_to_its_queue_alone(broker: Broker) -> None:
    broker.publish("retry.alice.petisco", f"retry.{Q}", "subscriber retry")
    message = broker.wait_for(Q)
    assert message["payload"] == "subscriber retry"
    assert message["routing_key"] == f"retry.{Q}"
    assert broker.empty(*ALL_QUEUES)  # the store does not hear retries


def test_rejected_messages_are_dead_lettered(broker: Broker) -> None:
    broker.publish("alice.petisco", "alice.petisco.1.event.user.created", "doomed")
    broker.wait_for(Q)  # taken and acked; publish again and reject this time
    broker.take("store")
    broker.publish("alice.petisco", "alice.petisco.1.event.user.created", "doomed")
    wait_for(
        lambda: broker.take(Q, "reject_requeue_false"), f"a message to reject in {Q}", timeout=DEADLINE_S, interval=0.1
    )
    assert broker.wait_for(f"dead_letter.{Q}")["payload"] == "doomed"
    # The store's own dead letters go through the default exchange.
    wait_for(
        lambda: broker.take("store", "reject_requeue_false"),
        "a message to reject in store",
        timeout=DEADLINE_S,
        interval=0.1,
    )
    assert broker.wait_for("dead_letter.store")["payload"] == "doomed"
    # and what a runtime publishes to a service's dead-letter exchange for the store lands there too
    broker.publish("dead_letter.alice.petisco", "dead_letter.store", "given up")
    assert broker.wait_for("dead_letter.store")["payload"] == "given up"
    assert broker.empty(*ALL_QUEUES)
