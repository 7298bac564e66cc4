"""The lock `apply` and `destroy` hold on a (vhost, owner) while they run.

The lock is an exclusive AMQP queue named after the owner, declared in the vhost. RabbitMQ
grants an exclusive queue to one connection atomically (a second declare fails with
RESOURCE_LOCKED), so there is no compare-and-set to imitate, and it deletes the queue when
that connection closes: a holder killed with `kill -9` frees the lock at once, a host that
vanished frees it when heartbeats stop. The queue's arguments name the holder (host, pid,
since when), which the management API shows to whoever is locked out.

Once taken, the lock must be visible through the management API with the holder's connection
name: the proof that the AMQP endpoint and the management URL reach the same broker (two
brokers may announce the same cluster name, which is all the probe before any change sees).

`Holder` and the names are pure; `BrokerLock` and `force_unlock` are the shell.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from topology.amqp import FailureKind, classify_failure
from topology.apply.move import amqp_parameters
from topology.broker.amqp_endpoint import EndpointMismatch
from topology.broker.management import ManagementClient
from topology.errors import RabbitformError
from topology.failures import root_cause, tls_verify_message
from topology.tls import CA_CERT_ENV

LOCK_PREFIX = "rabbitform-lock:"  # ':' is in no organization, service or store name: never in a spec's scope
HOLDER_ARGUMENT = "rabbitform-holder"
CONNECTION_ARGUMENT = "rabbitform-connection"
SINCE_ARGUMENT = "rabbitform-since"
RETRY_EVERY_S = 0.5
TICK_S = 0.1  # how often the keeper thread serves heartbeats and looks for release
SHOWN_WITHIN_S = 2.0  # a lock the management API does not show by then was taken on another broker
SHOWN_POLL_S = 0.1


class LockHeld(RabbitformError):
    """Another apply or destroy holds the lock."""


CONNECT_HINT = "pass --amqp-url (or set RABBITMQ_URL) naming the broker's AMQP endpoint"
FAILURE_WORDS: dict[FailureKind, tuple[str, str]] = {
    "refused": ("connection refused", "check that RabbitMQ runs there; " + CONNECT_HINT),
    "unknown host": ("unknown host", CONNECT_HINT),
    "timeout": ("no answer in time", "check the host, port and firewall; " + CONNECT_HINT),
    "handshake": ("no AMQP handshake", "check that the port is an AMQP port (5672, or 5671 for amqps)"),
    "login": ("the broker refused the login", "check the user and password"),
    "access": ("the broker refused access to the vhost", "check the user's permissions on it"),
}


def connect_failure(exc: BaseException, ca_cert: str | None) -> tuple[str, str]:
    """Why the lock's AMQP connection failed, and what to do about it: by the type of the
    failure's root cause (`topology.amqp.classify_failure`), never by its text."""
    kind = classify_failure(exc)
    verify = tls_verify_message(exc)
    if verify is not None:
        why = f"TLS verification failed: {verify}"
        if ca_cert is not None:
            return why, f"check that the CA bundle {ca_cert} holds the CA that signed the broker's certificate"
        return why, f"pass --ca-cert CA.pem (or set {CA_CERT_ENV}) naming the CA that signed the broker's certificate"
    if kind == "tls":
        cause = root_cause(exc)
        return f"TLS handshake failed: {getattr(cause, 'reason', None) or cause}", (
            "check that --amqp-url is amqps:// only on a TLS port"
        )
    if kind in FAILURE_WORDS:
        return FAILURE_WORDS[kind]
    return type(root_cause(exc)).__name__, CONNECT_HINT


def lock_queue(owner: str) -> str:
    return LOCK_PREFIX + owner


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, for the error the next one gets."""

    command: str
    host: str
    pid: int
    since: str  # ISO 8601 UTC
    connection: str = ""  # the AMQP connection name, to close it on force-unlock

    @classmethod
    def me(cls, command: str, now: datetime | None = None) -> Holder:
        host, pid = socket.gethostname(), os.getpid()
        token = uuid.uuid4().hex[:12]
        return cls(command, host, pid, utc_now(now), f"rabbitform {command} {token}")

    def to_arguments(self) -> dict[str, str]:
        return {
            HOLDER_ARGUMENT: f"{self.command} on host {self.host}, pid {self.pid}",
            SINCE_ARGUMENT: self.since,
            CONNECTION_ARGUMENT: self.connection,
        }

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> Holder | None:
        described = str(arguments.get(HOLDER_ARGUMENT, ""))
        command, _, rest = described.partition(" on host ")
        host, _, pid = rest.partition(", pid ")
        if not command or not host or not (pid.isascii() and pid.isdigit()):
            return None
        return cls(
            command, host, int(pid), str(arguments.get(SINCE_ARGUMENT, "")), str(arguments.get(CONNECTION_ARGUMENT, ""))
        )

    def describe(self) -> str:
        return f"`rabbitform {self.command}` on host {self.host}, pid {self.pid}, since {self.since}"


def utc_now(now: datetime | None = None) -> str:
    """`2026-11-27T04:00:00Z`: whole seconds, UTC, as every holder and record shows time."""
    moment = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def locked_message(vhost: str, owner: str, holder: Holder | None, waited: float) -> str:
    who = holder.describe() if holder else "another process (its holder is not readable)"
    waiting = f" (waited {waited:g} s)" if waited > 0 else ""
    return (
        f"spec {owner!r} on vhost {vhost!r} is locked by {who}{waiting}; wait for it to finish, "
        "pass --lock-timeout SECONDS to wait, or run `rabbitform force-unlock SPEC` if that process is stuck"
    )


class BrokerLock:
    """Hold the (vhost, owner) lock for a `with` block; a background thread keeps the
    connection alive (heartbeats) and owns it after acquisition (pika is not thread-safe)."""

    def __init__(
        self,
        client: ManagementClient,
        vhost: str,
        owner: str,
        command: str,
        timeout: float = 0.0,
        amqp_url: str | None = None,
    ) -> None:
        self.client = client
        self.amqp_url = amqp_url
        self.vhost = vhost
        self.owner = owner
        self.timeout = timeout
        self.holder = Holder.me(command)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None

    def __enter__(self) -> BrokerLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        import pika
        import pika.exceptions

        params = amqp_parameters(self.client, self.vhost, self.amqp_url, connection_name=self.holder.connection)
        started = time.monotonic()
        try:
            connection = pika.BlockingConnection(params)
        except (pika.exceptions.AMQPError, OSError) as exc:  # ssl.SSLError is an OSError
            why, fix = connect_failure(exc, self.client.ca_cert)
            raise RabbitformError(
                f"cannot take the lock on vhost {self.vhost!r}: AMQP connection to {params.host}:{params.port} failed "
                f"({why}); {fix}"
            ) from None
        while True:
            try:
                channel = connection.channel()
                self.holder = replace(self.holder, since=utc_now())  # since it was taken, not asked for
                channel.queue_declare(lock_queue(self.owner), exclusive=True, arguments=self.holder.to_arguments())
                break
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 405:  # RESOURCE_LOCKED: someone holds it
                    connection.close()
                    raise RabbitformError(f"cannot take the lock on vhost {self.vhost!r}: {exc.reply_text}") from None
            waited = time.monotonic() - started
            if waited >= self.timeout:
                holder = read_holder(self.client, self.vhost, self.owner)
                connection.close()
                raise LockHeld(locked_message(self.vhost, self.owner, holder, round(waited, 1) if self.timeout else 0))
            connection.sleep(min(RETRY_EVERY_S, self.timeout - waited))
        if not self._shown_by_management(deadline=time.monotonic() + SHOWN_WITHIN_S):
            connection.close()
            raise EndpointMismatch(
                f"the lock on vhost {self.vhost!r} was taken through AMQP at {params.host}:{params.port}, but the "
                f"management API at {self.client.display_url} does not show it: they are not the same broker; "
                "nothing was changed under the lock. Point both at the same broker, or leave the AMQP URL out"
            )
        self._connection = connection
        self._thread = threading.Thread(target=self._keep_alive, name="rabbitform-lock", daemon=True)
        self._thread.start()

    def _keep_alive(self) -> None:
        connection = self._connection
        try:
            while not self._stop.is_set():
                connection.process_data_events(time_limit=TICK_S)
        except Exception as exc:  # the connection died: the broker has dropped the lock
            self.lost = f"the lock's connection closed ({type(exc).__name__})"
            return
        try:
            connection.close()  # the broker deletes the exclusive queue: the lock is free
        except Exception as exc:
            self.lost = f"closing the lock's connection failed ({type(exc).__name__})"

    def ensure_held(self, command: str) -> None:
        """Refuse to go on when the lock was lost or broken (`force-unlock`) since it was taken,
        e.g. while `command` waited at its confirmation prompt: nothing has changed yet."""
        if self.lost or not self._shown_by_management():
            why = self.lost or "the lock was broken (rabbitform force-unlock?)"
            raise RabbitformError(
                f"{why} while {command} waited on spec {self.owner!r} on vhost {self.vhost!r}: nothing was changed; "
                f"run {command} again"
            )

    def _shown_by_management(self, deadline: float = 0.0) -> bool:
        """Whether the management API shows the lock queue with this holder's connection name (a
        token of its own): proof that the lock is held on the broker the management URL names,
        whatever AMQP endpoint took it (a queue is listed as soon as it is declared; a connection
        only once the statistics interval has passed, up to 5 s). Asked again until `deadline`
        (a node whose metadata store lags its leader by a moment, as Khepri's can on 4.x)."""
        while True:
            queue = self.client.get("queues", self.vhost, lock_queue(self.owner), missing_ok=True)
            arguments = queue.get("arguments") or {} if isinstance(queue, dict) else {}
            if arguments.get(CONNECTION_ARGUMENT) == self.holder.connection:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(SHOWN_POLL_S)

    def release(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        # wake the keeper now rather than at its next tick: every apply ends sooner; a closed
        # connection refuses the callback, and then the keeper has returned already
        with contextlib.suppress(Exception):
            self._connection.add_callback_threadsafe(_wake)
        self._thread.join()
        self._thread = None


def _wake() -> None:
    """Nothing: a callback only to make `process_data_events` return."""


def read_holder(client: ManagementClient, vhost: str, owner: str) -> Holder | None:
    queue = client.get("queues", vhost, lock_queue(owner), missing_ok=True)
    if not isinstance(queue, dict):
        return None
    return Holder.from_arguments(queue.get("arguments") or {})


def force_unlock(client: ManagementClient, vhost: str, owner: str, timeout: float = 15.0) -> Holder | None:
    """Close the holder's connection, which frees the lock; None when nothing held it.

    The holder's process (if any is left) loses the lock and reports it when it finishes.
    """
    queue = client.get("queues", vhost, lock_queue(owner), missing_ok=True)
    if not isinstance(queue, dict):
        return None
    holder = Holder.from_arguments(queue.get("arguments") or {})
    names = _holder_connections(client, vhost, queue, holder)
    if not names:
        raise RabbitformError(
            f"the lock of spec {owner!r} on vhost {vhost!r} is held, but its connection is not listed yet; "
            "try again in a few seconds"
        )
    for name in names:
        client.request("DELETE", ("connections", name), missing_ok=True)
    deadline = time.monotonic() + timeout
    while client.get("queues", vhost, lock_queue(owner), missing_ok=True) is not None:
        if time.monotonic() > deadline:
            raise RabbitformError(
                f"the lock of spec {owner!r} on vhost {vhost!r} is still held after closing its connection"
            )
        time.sleep(0.2)
    return holder or Holder("unknown", "unknown", 0, "")


def _holder_connections(
    client: ManagementClient, vhost: str, queue: dict[str, Any], holder: Holder | None
) -> list[str]:
    """The connection that declared the lock: by the name it gave itself, else the queue's owner."""
    if holder and holder.connection:
        listed = client.get("vhosts", vhost, "connections", missing_ok=True) or []
        named = [c["name"] for c in listed if c.get("user_provided_name") == holder.connection and c.get("name")]
        if named:
            return named
    owner = queue.get("owner_pid_details")
    return [owner["name"]] if isinstance(owner, dict) and owner.get("name") else []
