"""What the console asks of the broker, as the signed-in user: their credentials, never stored
admin ones, so the broker's permissions decide. Every failure becomes a `ConsoleError` with the
HTTP status the page shows: 401 (wrong credentials), 403 (the broker's reason), 404 (no such
subscriber), 503 (which URL did not answer, password masked, and what to check)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pika
import pika.exceptions

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.deadletters import ops
from bus_runtime.deadletters.amqp import AmqpTransport
from bus_runtime.deadletters.api import DeadLetterQueues
from bus_runtime.deadletters.model import DeadLetter, Selection
from bus_runtime.deadletters.targets import Target, resolve, targets_of
from bus_runtime.errors import BrokerRefused, BrokerUnavailable, BusError
from topology.broker.management import (
    AuthenticationFailed,
    BrokerServerError,
    BrokerTimeout,
    BrokerUnreachable,
    ManagementClient,
    ManagementError,
    PermissionDenied,
)
from topology.compile.compiler import compile_spec
from topology.errors import RabbitformError
from topology.graph import build_graph
from topology.spec.model import Spec
from topology.status.model import QUEUE_COLUMNS, build_status
from topology.urls import mask_text

UNKNOWN_ERROR = "unknown"  # the group of dead letters that carry no error type (as `dlq list` counts them)
MAX_MESSAGES = 500
READERS = 4  # AMQP connections reading dead-letter queues side by side for the groups
GRAPH_LIMIT = 80  # queues; a larger bus is a table only (`rabbitform graph` draws it)


class QueueLocks:
    """One lock per dead-letter queue, shared by every session of the console.

    RabbitMQ cannot peek: a read holds the queue's messages unacked until it gives them back,
    and meanwhile another reader sees the queue empty. A page listing a group while the
    background refresh of the groups reads the same queue would show nothing, so reads, replays
    and purges of one queue take turns inside the console."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}

    @contextlib.contextmanager
    def held(self, broker: str, vhost: str, queue: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((broker, vhost, queue), threading.Lock())
        with lock:
            yield


QUEUE_LOCKS = QueueLocks()


class ConsoleError(RabbitformError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker is; credentials come from whoever signs in."""

    spec: Spec
    management_url: str  # without credentials
    amqp_url: str  # without credentials
    management_timeout: float = 5.0

    def management(self, user: str, password: str) -> ManagementClient:
        return ManagementClient(
            self.management_url, user, password, timeout=self.management_timeout, retries=0, backoff=0.0
        )

    def connector(self, user: str, password: str) -> RabbitMqConnector:
        endpoints = RabbitMqConnector(self.amqp_url, source="--url").endpoints
        url = ",".join(
            dataclasses.replace(endpoint, username=user, password=password).url(self.spec.vhost)
            for endpoint in endpoints
        )
        return RabbitMqConnector(url, connection_name="rabbitform-console", connect_timeout=5.0)


def whoami(config: BrokerConfig, user: str, password: str) -> tuple[str, ...]:
    """The user's tags when the broker accepts the credentials; 401 when it does not."""
    client = config.management(user, password)
    try:
        with _translated(password):
            answer = client.get("whoami") or {}
    finally:
        client.close()
    tags = answer.get("tags", "")
    return tuple(tag for tag in (tags if isinstance(tags, list) else str(tags).split(",")) if tag)


@contextlib.contextmanager
def _translated(*secrets: str) -> Iterator[None]:
    try:
        yield
    except ConsoleError:
        raise
    except AuthenticationFailed as exc:
        raise ConsoleError(401, mask_text(str(exc), secrets)) from None
    except PermissionDenied as exc:
        raise ConsoleError(403, mask_text(str(exc), secrets)) from None
    except BrokerUnavailable as exc:  # a refused login or vhost is the user's permissions, not an outage
        raise ConsoleError(403 if exc.kind in ("login", "access") else 503, mask_text(str(exc), secrets)) from None
    except (BrokerUnreachable, BrokerTimeout, BrokerServerError) as exc:
        raise ConsoleError(503, mask_text(str(exc), secrets)) from None
    except ManagementError as exc:
        raise ConsoleError(getattr(exc, "status", 502) or 502, mask_text(str(exc), secrets)) from None
    except pika.exceptions.ChannelClosedByBroker as exc:
        status = 403 if exc.reply_code == 403 else 409
        raise ConsoleError(status, f"the broker refused: {exc.reply_text}") from None
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise ConsoleError(503, mask_text(f"the broker connection failed: {exc!r}", secrets)) from None
    except BrokerRefused as exc:
        raise ConsoleError(403 if exc.reply_code == 403 else 409, mask_text(str(exc), secrets)) from None
    except BusError as exc:
        raise ConsoleError(409, mask_text(str(exc), secrets)) from None
    except RabbitformError as exc:
        raise ConsoleError(404 if "no subscriber" in str(exc) else 400, mask_text(str(exc), secrets)) from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def group_key(letter: DeadLetter) -> str:
    return letter.error_type or UNKNOWN_ERROR


def subscriber_names(targets: Iterable[Target]) -> dict[str, str]:
    """The name each subscriber goes by, by queue: `SERVICE/NAME` as `dlq` prints it, or its
    queue's name where several subscribers share that (a handler subscribed to several events)."""
    chosen = list(targets)
    counts = Counter(target.label for target in chosen)
    return {target.queue: target.label if counts[target.label] == 1 else target.queue for target in chosen}


def groups_of(target: Target, letters: Iterable[DeadLetter], name: str | None = None) -> list[dict[str, Any]]:
    """A subscriber's dead letters by error type: count, oldest, newest (the last failure times)."""
    by_type: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        by_type[group_key(letter)].append(letter)
    rows = []
    for error_type, items in sorted(by_type.items()):
        times = [t for t in (letter.dead_lettered_at for letter in items) if t is not None]
        rows.append(
            {
                "subscriber": name or target.label,
                "error_type": error_type,
                "count": len(items),
                "oldest": _iso(min(times)) if times else None,
                "newest": _iso(max(times)) if times else None,
                "queue": target.queue,
                "dead_letter_queue": target.dead_letter_queue,
            }
        )
    return rows


@dataclass(frozen=True)
class GroupSelection(Selection):
    """One group (a subscriber's dead letters of one error type), optionally only some ids."""

    group: str = ""

    def matches(self, letter: DeadLetter) -> bool:
        return group_key(letter) == self.group and super().matches(letter)


def message_view(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter for the page: its fields, every header, and the body as text."""
    view = letter.to_dict()
    view["headers"] = {str(k): _text(v) for k, v in sorted(letter.headers.items())}
    view["body"] = letter.body.decode("utf-8", "replace")
    view["traceback"] = _text(getattr(letter, "traceback", None))  # the model's, once it carries one
    return view


def _text(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class UserBroker:
    """The broker as one signed-in user. The management client is kept for the session; each
    dead-letter operation opens its own AMQP connection as the user and closes it."""

    def __init__(self, config: BrokerConfig, user: str, password: str) -> None:
        self.config = config
        self.user = user
        self._password = password
        self.management = config.management(user, password)
        self._names = subscriber_names(targets_of(config.spec))

    def close(self) -> None:
        self.management.close()

    @property
    def spec(self) -> Spec:
        return self.config.spec

    def status(self) -> dict[str, Any]:
        """Per subscriber: its three queues' counts, consumers and rates, from one queue listing
        (only the columns shown). `rabbitform status` also reads every service exchange's
        bindings; the page does not show those, so it does not wait for them."""
        with _translated(self._password):
            rows = self.management.get(
                "queues", self.spec.vhost, params={"columns": ",".join(QUEUE_COLUMNS)}, missing_ok=True
            )
        if rows is None:
            raise ConsoleError(
                404,
                f"vhost {self.spec.vhost!r} does not exist on {self.management.display_url}: run `rabbitform apply`",
            )
        report = build_status(self.spec, rows, {})
        return {
            "vhost": report.vhost,
            "broker": self.management.display_url,
            "subscribers": [s.to_dict() for s in report.subscribers],
        }

    def graph(self) -> dict[str, Any]:
        graph = build_graph(compile_spec(self.spec))
        queues = sum(1 for node in graph.nodes if node.kind == "queue")
        if queues > GRAPH_LIMIT:
            return {"omitted": f"{queues} queues: too many to draw here; `rabbitform graph` draws them"}
        return {
            "nodes": [{"id": n.id, "name": n.name, "kind": n.kind, "role": n.role} for n in graph.nodes],
            "edges": [{"source": e.source, "target": e.target, "label": e.label, "kind": e.kind} for e in graph.edges],
        }

    def _dead_letter_depths(self) -> dict[str, int | None]:
        """Messages per queue as the broker last sampled them (None: not sampled yet). Without
        statistics and with queue totals, the listing costs a fraction of the full one."""
        params = {"columns": "name,messages", "disable_stats": "true", "enable_queue_totals": "true"}
        rows = self.management.get("queues", self.spec.vhost, params=params) or []
        return {str(row.get("name")): _count(row.get("messages")) for row in rows}

    def _dead_letters(self) -> DeadLetterQueues:
        connector = self.config.connector(self.user, self._password)
        return DeadLetterQueues(self.spec, AmqpTransport(connector))

    def groups(self) -> list[dict[str, Any]]:
        """Every group of every subscriber holding dead letters. One listing says which
        dead-letter queues hold anything (the broker samples it every few seconds; a queue not
        sampled yet is read to be sure); only those are read, over AMQP, taking nothing, by up
        to `READERS` connections side by side."""
        with _translated(self._password):
            depths = self._dead_letter_depths()
        holding = [t for t in targets_of(self.spec) if depths.get(t.dead_letter_queue, 0) != 0]
        if not holding:
            return []
        shares = [holding[n::READERS] for n in range(min(READERS, len(holding)))]
        with ThreadPoolExecutor(len(shares), thread_name_prefix="console-read") as pool:
            parts = list(pool.map(self._read_groups, shares))
        return [row for part in parts for row in part]

    def _read_groups(self, targets: list[Target]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        with _translated(self._password), self._dead_letters() as dlq:
            for target in targets:
                with self._reading(target):
                    letters = ops.scan(dlq.transport, target)
                rows.extend(groups_of(target, letters, self.name_of(target)))
        return rows

    def _reading(self, target: Target) -> contextlib.AbstractContextManager[None]:
        return QUEUE_LOCKS.held(self.config.amqp_url, self.spec.vhost, target.dead_letter_queue)

    def name_of(self, target: Target) -> str:
        return self._names.get(target.queue, target.label)

    def target(self, subscriber: str) -> Target:
        with _translated(self._password):
            return resolve(self.spec, subscriber)

    def messages(self, subscriber: str, error_type: str | None, limit: int) -> dict[str, Any]:
        target = self.target(subscriber)
        selection = Selection.of(limit=limit) if error_type is None else _group(error_type, (), limit)
        with _translated(self._password), self._dead_letters() as dlq, self._reading(target):
            letters = ops.scan(dlq.transport, target, selection)
        return {
            "subscriber": self.name_of(target),
            "error_type": error_type,
            "dead_letter_queue": target.dead_letter_queue,
            "messages": [message_view(letter) for letter in letters],
        }

    def replay(self, subscriber: str, error_type: str, ids: Iterable[str] = ()) -> int:
        target = self.target(subscriber)
        with _translated(self._password), self._dead_letters() as dlq, self._reading(target):
            outcome = ops.replay(dlq.transport, target, _group(error_type, ids), _utc_now)
        return outcome.count

    def purge(self, subscriber: str, error_type: str, ids: Iterable[str] = ()) -> int:
        target = self.target(subscriber)
        with _translated(self._password):
            self._may_write(target)
            with self._dead_letters() as dlq, self._reading(target):
                outcome = ops.purge(dlq.transport, target, _group(error_type, ids))
        return outcome.count

    def _may_write(self, target: Target) -> None:
        """RabbitMQ lets whoever may read a queue ack (so purge) its messages; the console asks
        for the write permission a replay needs too, and lets the broker decide: an empty
        message to the default exchange that routes nowhere (no queue is named ""), confirmed."""
        connection = pika.BlockingConnection(self.config.connector(self.user, self._password).parameters("console"))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("", "", b"", mandatory=False)
        finally:
            with contextlib.suppress(Exception):
                connection.close()


def _group(error_type: str, ids: Iterable[str], limit: int | None = None) -> GroupSelection:
    base = Selection.of(ids=ids, limit=limit)
    return GroupSelection(ids=base.ids, limit=base.limit, group=error_type)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
