"""Replace a queue without losing its messages (`apply --move-messages`).

Queue arguments and type are immutable, so a replace deletes the queue. A move keeps what it
holds, and what is published meanwhile:

1. a holding queue (`naming.holding_queue`) gets the queue's bindings and catches new publishes;
2. the old queue is unbound and its messages are moved into the holding queue;
3. the old queue is deleted only when empty (`if-empty`);
4. the new queue is declared and bound, the holding queue unbound;
5. the holding queue's messages are moved into the new queue, and the holding queue deleted.

Each move republishes with publisher confirms and acks the original only once confirmed. A
queue is bound to its replacement before it is unbound, so a publish in between reaches both:
before each move the destination's messages are read (and put back) and a message whose
`message_id` the destination already holds is not moved twice. The same rule makes the move
restartable: killed anywhere, the next apply finds the holding queue, resumes at the step it
stopped at, and the messages in flight at the kill (confirmed but not acked) are not duplicated.
Messages without a `message_id` are never dropped (and could then arrive twice).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

from topology import naming
from topology.amqp import connection_parameters, queue_depth
from topology.amqp.transfer import TransferError, TransferResult
from topology.amqp.transfer import transfer as _transfer
from topology.broker.amqp_endpoint import resolve_amqp
from topology.broker.management import ManagementClient, RequestRejected
from topology.compile.definitions import normalise_queue_arguments
from topology.compile.objects import Binding, freeze_arguments
from topology.errors import RabbitformError
from topology.plan.model import Change
from topology.tls import client_context
from topology.urls import parse_urls

DELETE_ATTEMPTS = 5
MoveProgress = Callable[[str, int, int], None]
"""Called with (what is moving, messages done, messages in total)."""


class MoveError(RabbitformError):
    """A move could not go on; what was moved stays moved, and the next apply resumes it."""


def amqp_parameters(
    client: ManagementClient, vhost: str, amqp_url: str | None = None, connection_name: str | None = None
) -> pika.ConnectionParameters:
    """AMQP connection parameters for the broker behind `client`, on `vhost`: `amqp_url` (its vhost
    replaced), else the endpoint `resolve_amqp` finds through the management API (verified when the
    environment names one). An `amqps://` URL is verified as the management API is: its CA
    bundle, or not with --insecure."""
    endpoint = parse_urls(amqp_url or resolve_amqp(client, None), "amqp", "--amqp-url")[0]
    tls = client_context(client.ca_cert, client.insecure) if endpoint.uses_tls else None
    return connection_parameters(endpoint, vhost, heartbeat=30, tls=tls, connection_name=connection_name)


def transfer(
    params: pika.ConnectionParameters,
    source: str,
    destination: str,
    limit: int,
    seen: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TransferResult:
    """`topology.amqp.transfer.transfer`, its failure a `MoveError` (the next apply resumes)."""
    try:
        return _transfer(params, source, destination, limit, seen, progress)
    except TransferError as exc:
        raise MoveError(str(exc)) from None


def message_count(params: pika.ConnectionParameters, queue: str) -> int | None:
    """Ready messages in `queue` now (None when it does not exist), read over AMQP: the
    management API's counts lag by seconds."""
    connection = pika.BlockingConnection(params)
    try:
        return queue_depth(connection.channel(), queue)
    finally:
        if connection.is_open:
            connection.close()


def drain_into(
    params: pika.ConnectionParameters,
    source: str,
    destination: str,
    progress: MoveProgress | None = None,
) -> TransferResult:
    """Move every message of the (unbound) `source` into `destination`, without duplicates:
    first read the destination's messages and put them back, noting their ids, then move."""
    seen: set[str] = set()
    waiting = message_count(params, destination) or 0
    if waiting:
        transfer(params, destination, destination, waiting, seen)
    result = TransferResult(seen=seen)
    while True:
        total = message_count(params, source)
        if not total:
            return result
        label = f"{source} -> {destination}"

        def report(done: int, total: int = total, label: str = label) -> None:
            if progress is not None:
                progress(label, done, total)

        step = transfer(params, source, destination, total, seen, report)
        result.moved += step.moved
        result.skipped += step.skipped


class QueueMover:
    """Carries out one queue's move through the management API (declare, bind, delete) and AMQP (messages)."""

    def __init__(
        self,
        client: ManagementClient,
        params: pika.ConnectionParameters,
        vhost: str,
        vhost_queue_type: str = "classic",
        progress: MoveProgress | None = None,
    ) -> None:
        self.client = client
        self.params = params
        self.vhost = vhost
        self.vhost_queue_type = vhost_queue_type
        self.progress = progress

    def __call__(self, change: Change, bindings: list[Binding]) -> None:
        self.move(change, bindings)

    def move(self, change: Change, bindings: list[Binding]) -> None:
        name = change.name
        wanted = change.after or {"name": name}
        holding = naming.holding_queue(name)
        current = self._queue(name)
        if current is not None and self._is_wanted(current, wanted):
            if self._queue(holding) is None:
                return  # nothing left to do
        else:
            self._declare(holding, {"x-queue-type": "classic"})
            for binding in bindings:
                self._bind(holding, binding)
            if current is not None:
                self._unbind_all(name)
                self._empty_and_delete(name, holding)
            self._declare(name, dict(wanted.get("arguments") or {}))
        for binding in bindings:
            self._bind(name, binding)
        self._unbind_all(holding)
        self._empty_and_delete(holding, name)

    # -- steps ------------------------------------------------------------------------------

    def _queue(self, name: str) -> dict[str, Any] | None:
        found = self.client.get("queues", self.vhost, name, params={"disable_stats": "true"}, missing_ok=True)
        return found if isinstance(found, dict) else None

    def _is_wanted(self, current: dict[str, Any], wanted: dict[str, Any]) -> bool:
        have = normalise_queue_arguments(current.get("arguments") or {}, self.vhost_queue_type)
        want = normalise_queue_arguments(wanted.get("arguments") or {}, "classic")
        return freeze_arguments(have) == freeze_arguments(want)

    def _declare(self, name: str, arguments: dict[str, Any]) -> None:
        if self.vhost_queue_type != "classic" and "x-queue-type" not in arguments:
            arguments = {**arguments, "x-queue-type": "classic"}
        body = {"durable": True, "auto_delete": False, "arguments": arguments}
        try:
            self.client.put("queues", self.vhost, name, body=body)
        except RequestRejected as exc:
            raise MoveError(f"cannot declare queue {name} on vhost {self.vhost!r}: {exc.reason}") from None

    def _bind(self, queue: str, binding: Binding) -> None:
        body = {"routing_key": binding.routing_key, "arguments": dict(binding.arguments)}
        self.client.post("bindings", self.vhost, "e", binding.source, "q", queue, body=body)

    def _unbind_all(self, queue: str) -> None:
        listed = self.client.get("queues", self.vhost, queue, "bindings", missing_ok=True) or []
        for item in listed:
            if item.get("source", "") == "":
                continue  # the default exchange's implicit binding
            self.client.delete("bindings", self.vhost, "e", item["source"], "q", queue, item["properties_key"])

    def _empty_and_delete(self, source: str, destination: str) -> None:
        """Move `source` into `destination` until the broker agrees it is empty and deletes it."""
        found = self._queue(source)
        arguments = (found or {}).get("arguments") or {}
        classic = str(arguments.get("x-queue-type") or self.vhost_queue_type) == "classic"
        for _ in range(DELETE_ATTEMPTS):
            drain_into(self.params, source, destination, self.progress)
            if not classic:  # RabbitMQ 3.x refuses if-empty for quorum queues: read, then delete
                if not message_count(self.params, source):
                    self.client.delete("queues", self.vhost, source)
                    return
                continue
            try:
                self.client.delete("queues", self.vhost, source, params={"if-empty": "true"})
                return
            except RequestRejected as exc:
                if exc.status != 400:
                    raise
        raise MoveError(
            f"queue {source} on vhost {self.vhost!r} keeps receiving messages (a consumer requeueing them?): "
            f"stop its consumers and run apply again to finish the move into {destination}"
        )


class MoveProgressReporter:
    """Progress of large moves on stderr: a line every few seconds."""

    def __init__(self, threshold: int = 5000, interval: float = 2.0) -> None:
        self.threshold = threshold
        self.interval = interval
        self._last = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        if total < self.threshold:
            return
        now = time.monotonic()
        if done >= total or now - self._last >= self.interval:
            self._last = now
            print(f"Moving messages {what}: {done}/{total} ({100 * done // total}%)", file=sys.stderr, flush=True)
