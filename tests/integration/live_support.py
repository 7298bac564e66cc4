"""Helpers for the live plan/apply tests: specs of a few subscribers, hand-made drift, waiting."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import PASSWORD, USER
from tests.integration.support import wait_for
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_queue_stats
from topology.spec.loader import parse_spec
from topology.spec.model import Spec

ORG = "alice"
MAIN = "alice.petisco.1.event.user.created.send_mail_handler"
RETRY = f"retry.{MAIN}"
DEAD = f"dead_letter.{MAIN}"
AUDIT = "alice.petisco.1.event.user.created.audit_handler"


def make_spec(vhost: str, *, delay_ms: int = 5000, audit: bool = False, send_mail: bool = True) -> Spec:
    """The seed spec (UserCreated with send_mail_handler, and a store), optionally with a second
    subscriber `audit_handler` or without send_mail_handler."""
    subscribers = []
    if send_mail:
        subscribers.append(f"          send_mail_handler: {{retry: {{delay_ms: {delay_ms}}}}}")
    if audit:
        subscribers.append("          audit_handler: {}")
    text = "\n".join(
        [
            f"organization: {ORG}",
            f"vhost: {json.dumps(vhost)}",
            "services:",
            "  petisco:",
            "    events:",
            "      UserCreated:",
            "        subscribers:" + ("" if subscribers else " {}"),
            *subscribers,
            "store: {queue: store}",
        ]
    )
    return parse_spec(text + "\n")


def client(url: str, **options: Any) -> ManagementClient:
    """A client that does not wait between retries: failure tests stay fast."""
    return ManagementClient(url, USER, PASSWORD, backoff=0, **options)


def publish(c: ManagementClient, vhost: str, queue: str, count: int) -> None:
    """Put `count` messages in `queue` through the default exchange."""
    for n in range(count):
        c.post(
            "exchanges",
            vhost,
            "amq.default",
            "publish",
            body={
                "properties": {"delivery_mode": 2},
                "routing_key": queue,
                "payload": f"m{n}",
                "payload_encoding": "string",
            },
        )


def wait_for_messages(c: ManagementClient, vhost: str, queue: str, count: int) -> None:
    def counted() -> bool:
        stats = read_queue_stats(c, vhost, [queue]).get(queue)
        return stats is not None and stats.messages >= count

    # The management API's stats lag a few seconds behind the queue.
    wait_for(counted, f"the management API to count {count} messages in {queue}", timeout=20.0, interval=0.2)
