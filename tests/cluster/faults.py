"""A fault scenario's bookkeeping: publish uniquely numbered events through the runtime, count
what the broker confirmed and what the handler saw, and report what was lost.

Every event carries a unique `user_id`. A confirmed id must end up handled (at least once) or
in the dead-letter queue: anything else is lost. The report of each scenario is kept in
`REPORTS` and printed at the end of the session (see conftest.py)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from meiga import isFailure, isSuccess

from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.errors import PublishError
from bus_runtime.message import Event
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.subscriber_spec import spec_for_subscribers
from tests.cluster.support import Cluster, ClusterNode, queue_info
from tests.integration.support import import_topology
from topology.spec.model import Defaults

ORG, SERVICE = "acme", "orders"
HANDLER = "record_handler"
QUEUE = f"{ORG}.{SERVICE}.1.event.order.placed.{HANDLER}"
RETRY_QUEUE = f"retry.{QUEUE}"
DEAD_QUEUE = f"dead_letter.{QUEUE}"
EXCHANGE = f"{ORG}.{SERVICE}"
ROUTING_KEY = f"{ORG}.{SERVICE}.1.event.order.placed"


class OrderPlaced(Event):
    user_id: str


@dataclasses.dataclass
class Report:
    """One scenario's figures, as docs/cluster.md tabulates them."""

    scenario: str
    published: int = 0
    confirmed: int = 0
    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    lost: int = 0
    recover_s: float | None = None

    def line(self) -> str:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f}"
        return (
            f"| {self.scenario} | {self.published} | {self.confirmed} | {self.handled} | {self.duplicates} "
            f"| {self.dead_lettered} | {self.lost} | {recover} |"
        )


HEADER = (
    "| scenario | published | confirmed | handled | duplicates | dead-lettered | lost | recover (s) |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)
REPORTS: list[Report] = []


class Ledger:
    """What the handler saw, thread-safe; `fail_first` ids fail their first call (a retry)."""

    def __init__(self, fail_first: set[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.times: list[float] = []
        self.fail_first = set(fail_first or ())

    def handler(self, event: OrderPlaced) -> Any:
        with self._lock:
            self.seen[event.user_id] += 1
            self.times.append(time.monotonic())
            if event.user_id in self.fail_first and self.seen[event.user_id] == 1:
                return isFailure
        return isSuccess

    def handled(self) -> set[str]:
        with self._lock:
            return set(self.seen)

    def first_after(self, moment: float) -> float | None:
        with self._lock:
            return next((t for t in self.times if t > moment), None)

    def longest_pause_after(self, moment: float) -> float:
        """The longest stretch without a handled message from `moment` on (how long the fault
        stalled the flow; the messages still in hand at the fault make the first ones)."""
        with self._lock:
            times = [moment, *sorted(t for t in self.times if t > moment)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def duplicates(self) -> int:
        with self._lock:
            # an id that failed on purpose is handled twice by design: its retry is no duplicate
            return sum(count - 1 - (user_id in self.fail_first) for user_id, count in self.seen.items())


def _record_handler(ledger: Ledger) -> Callable[[OrderPlaced], Any]:
    def record_handler(event: OrderPlaced) -> Any:
        return ledger.handler(event)

    return record_handler


def cluster_urls(cluster: Cluster, vhost: str, first: ClusterNode) -> str:
    """All three nodes' URLs, comma-separated, `first` first: the runtime connects there and
    fails over to the others."""
    nodes = [first, *(n for n in cluster.nodes if n != first)]
    return ",".join(n.amqp_url(vhost) for n in nodes)


def cluster_connector(cluster: Cluster, vhost: str, first: ClusterNode, purpose: str = "fault") -> RabbitMqConnector:
    return RabbitMqConnector(cluster_urls(cluster, vhost, first), heartbeat=10, connection_name=purpose)


def create_topology(cluster: Cluster, vhost: str, retry_ms: int = 300, delivery_limit: int = 20) -> None:
    """The quorum topology of one subscriber, as `rabbitform apply` would compile it."""
    subscriber = EventSubscriber(OrderPlaced, [_record_handler(Ledger())])
    spec = spec_for_subscribers(ORG, SERVICE, [subscriber], retry_ttl=retry_ms, max_retries=3)
    retry = spec.defaults.retry.model_copy(update={"delivery_limit": delivery_limit})
    spec = spec.model_copy(update={"defaults": Defaults(queue_type="quorum", retry=retry)})
    import_topology(cluster.management_urls[0], vhost, spec)


@contextmanager
def consuming(connector: RabbitMqConnector, ledger: Ledger, prefetch: int = 50) -> Iterator[RabbitMqEventConsumer]:
    consumer = RabbitMqEventConsumer(connector, ORG, SERVICE, max_retries=3, prefetch=prefetch, workers=4)
    consumer.consume([EventSubscriber(OrderPlaced, [_record_handler(ledger)])])
    consumer.start()
    try:
        yield consumer
    finally:
        consumer.stop(timeout=10)


class Publisher:
    """Publishes `total` numbered events in batches from a thread, `pace` seconds apart, so that
    a fault injected early hits publishing as well as consuming."""

    def __init__(self, connector: RabbitMqConnector, prefix: str, total: int, batch: int = 25, pace: float = 0.03):
        self.bus = RabbitMqEventBus(connector, ORG, SERVICE, timeout=60)
        self.prefix, self.total, self.batch, self.pace = prefix, total, batch, pace
        self._paused = threading.Event()  # never set: its wait() paces the batches
        self.published: list[str] = []
        self.confirmed: set[str] = set()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        for start in range(0, self.total, self.batch):
            events = [
                OrderPlaced(user_id=f"{self.prefix}-{n}") for n in range(start, min(start + self.batch, self.total))
            ]
            self.published.extend(e.user_id for e in events)
            try:
                self.bus.publish(events)
                self.confirmed.update(e.user_id for e in events)
            except PublishError as exc:  # reported, not lost: those ids do not count as confirmed
                self.errors.append(str(exc))
                self.confirmed.update(e.user_id for e in events if not any(e.id in label for label in exc.unconfirmed))
            self._paused.wait(self.pace)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the publisher did not finish"
        self.bus.close()


def dead_lettered(cluster: Cluster, vhost: str) -> int:
    return int(queue_info(vhost, DEAD_QUEUE, cluster.management_urls).get("messages") or 0)


def report(
    name: str, publisher: Publisher | BatchPublisher, ledger: Ledger, dead: int, recover_s: float | None
) -> Report:
    handled = ledger.handled()
    result = Report(
        scenario=name,
        published=len(publisher.published),
        confirmed=len(publisher.confirmed),
        handled=len(handled),
        duplicates=ledger.duplicates(),
        dead_lettered=dead,
        lost=max(0, len(publisher.confirmed - handled) - dead),
        recover_s=recover_s,
    )
    REPORTS.append(result)
    print(f"\n{HEADER}\n{result.line()}")
    return result


class BatchPublisher:
    """Publishes batches of uniquely numbered events back to back from a thread until stopped,
    and keeps when each confirmed batch started and returned: `first_confirmed_after(t)` is how
    long after a fault at `t` publishing was back (the first batch begun after it, confirmed)."""

    def __init__(self, connector: RabbitMqConnector, prefix: str, batch: int = 20, pace: float = 0.01):
        self.bus = RabbitMqEventBus(connector, ORG, SERVICE, timeout=30)
        self.prefix, self.batch, self.pace = prefix, batch, pace
        self.published: list[str] = []
        self.confirmed: set[str] = set()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._batches: list[tuple[float, float]] = []  # (began, confirmed) of each confirmed batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BatchPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        for start in itertools.count(0, self.batch):
            if self._stop.is_set():
                return
            events = [OrderPlaced(user_id=f"{self.prefix}-{n}") for n in range(start, start + self.batch)]
            self.published.extend(e.user_id for e in events)
            began = time.monotonic()
            try:
                self.bus.publish(events)
            except PublishError as exc:  # reported, not lost: those ids do not count as confirmed
                self.errors.append(str(exc))
                failed = {label.split(" ", 1)[1] for label in exc.unconfirmed}
                with self._lock:
                    self.confirmed.update(e.user_id for e in events if e.id not in failed)
            else:
                with self._lock:
                    self.confirmed.update(e.user_id for e in events)
                    self._batches.append((began, time.monotonic()))
            self._stop.wait(self.pace)

    def confirmed_count(self) -> int:
        with self._lock:
            return len(self.confirmed)

    def first_confirmed_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the return of the first batch begun after it and confirmed."""
        with self._lock:
            done = [end for began, end in self._batches if began >= moment]
        return min(done) - moment if done else None

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the publisher did not finish"
        self.bus.close()
