"""The relay's lifecycle, driven through its shell by a fake store, sink and clock (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

pytest.importorskip("sqlalchemy")

from bus_runtime.outbox.lifecycle import InvalidTransition, RelayMachine, RelayState, sent_prefix
from bus_runtime.outbox.outbox import StoredMessage
from bus_runtime.outbox.relay import OutboxRelay
from bus_runtime.outbox.sinks import Outcome
from bus_runtime.wire import WireMessage


def row(id_: int, service: str = "orders") -> StoredMessage:
    wire = WireMessage(b"{}", f"m{id_}", "order.placed", 0, f"acme.{service}.1.event.order.placed")
    return StoredMessage(id_, "acme", service, wire, 0.0)


@dataclass
class FakeClaim:
    rows: list[StoredMessage]
    store: FakeStore

    def done(self, ids: Sequence[int], now: float) -> None:
        if self.store.fail_mark:
            raise RuntimeError("server closed the connection unexpectedly")
        self.store.sent.extend(ids)

    def release(self) -> None:
        self.store.released += 1


@dataclass
class FakeStore:
    due_rows: list[StoredMessage] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    released: int = 0
    down: int = 0  # claims that fail before the database answers again
    fail_mark: bool = False
    purged_before: list[float] = field(default_factory=list)

    def claim(self, limit: int) -> FakeClaim:
        if self.down:
            self.down -= 1
            raise ConnectionError('connection to server at "127.0.0.1", port 5433 failed: Connection refused')
        return FakeClaim([r for r in self.due_rows if r.id not in self.sent][:limit], self)

    def due(self) -> tuple[int, float | None]:
        return len([r for r in self.due_rows if r.id not in self.sent]), None

    def purge_sent(self, before: float) -> int:
        self.purged_before.append(before)
        return 0


@dataclass
class FakeSink:
    down: int = 0  # publishes that fail
    refuse: set[int] = field(default_factory=set)  # ids never confirmed
    published: list[int] = field(default_factory=list)

    def publish(self, rows: Sequence[StoredMessage]) -> Outcome:
        if self.down:
            self.down -= 1
            return Outcome(frozenset(), "connection refused")
        self.published.extend(r.id for r in rows)
        return Outcome(frozenset(r.id for r in rows if r.id not in self.refuse), "nacked" if self.refuse else None)

    def close(self) -> None:
        pass


def relay(store: FakeStore, sink: FakeSink, batch: int = 2) -> OutboxRelay:
    return OutboxRelay("sqlite://", sink, store=store, batch=batch, clock=lambda: 1000.0, backoff_initial=0.5)


def drive(r: OutboxRelay, steps: int) -> list[RelayState]:
    return [r.step(wait=False) for _ in range(steps)]


def test_claims_publishes_marks_then_idles() -> None:
    store, sink = FakeStore([row(1), row(2), row(3)]), FakeSink()
    r = relay(store, sink)
    states = drive(r, 8)
    assert states == [
        RelayState.CLAIMING,
        RelayState.PUBLISHING,
        RelayState.MARKING,
        RelayState.CLAIMING,
        RelayState.PUBLISHING,
        RelayState.MARKING,
        RelayState.CLAIMING,
        RelayState.IDLE,
    ]
    assert store.sent == [1, 2, 3] and sink.published == [1, 2, 3]
    assert r.machine.delay == r.machine.poll_interval
    assert store.released == 1  # the empty claim ended at once


def test_broker_down_backs_off_doubling_and_marks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store, sink = FakeStore([row(1)]), FakeSink(down=3)
    r = relay(store, sink)
    delays = []
    for _ in range(30):
        state = r.step(wait=False)
        if state is RelayState.BACKING_OFF:
            delays.append(r.machine.delay)
        if state is RelayState.IDLE:
            break
    assert delays == [0.5, 1.0, 2.0]
    assert store.sent == [1] and r.machine.failures == 0
    assert "broker: connection refused" in caplog.text and "retrying in 0.5s" in caplog.text


def test_database_down_backs_off_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    store, sink = FakeStore([row(1)], down=2), FakeSink()
    r = relay(store, sink)
    assert drive(r, 3) == [RelayState.CLAIMING, RelayState.BACKING_OFF, RelayState.CLAIMING]
    assert "database: connection to server" in caplog.text
    while r.step(wait=False) is not RelayState.IDLE:
        pass
    assert store.sent == [1]


def test_only_the_confirmed_prefix_of_a_stream_is_marked() -> None:
    rows = [row(1), row(2, "billing"), row(3), row(4, "billing")]
    assert sent_prefix(rows, {1, 2, 4}) == [1, 2, 4]
    assert sent_prefix(rows, {1, 3, 4}) == [1, 3]  # billing blocked at 2: 4 goes again after it


def test_unconfirmed_messages_stay_due_and_back_off() -> None:
    store, sink = FakeStore([row(1), row(2)]), FakeSink(refuse={1})
    r = relay(store, sink)
    assert drive(r, 4)[-1] is RelayState.BACKING_OFF
    assert store.sent == []  # 2 follows 1 in the stream: neither is marked
    assert "nacked" in r.machine.last_error


def test_a_failed_mark_releases_the_claim_and_nothing_is_lost() -> None:
    store, sink = FakeStore([row(1)], fail_mark=True), FakeSink()
    r = relay(store, sink)
    assert drive(r, 4)[-1] is RelayState.BACKING_OFF
    assert store.released == 1 and store.sent == []
    store.fail_mark = False
    while r.step(wait=False) is not RelayState.IDLE:
        pass
    assert store.sent == [1] and sink.published == [1, 1]  # published again: same message id


def test_stop_releases_an_open_claim() -> None:
    store, sink = FakeStore([row(1)]), FakeSink()
    r = relay(store, sink)
    drive(r, 2)  # claimed, about to publish
    r.stop()
    assert r.step(wait=False) is RelayState.STOPPED
    assert store.released == 1 and sink.published == []
    assert r.step(wait=False) is RelayState.STOPPED


def test_housekeeping_purges_sent_messages_past_retention() -> None:
    store, sink = FakeStore(), FakeSink()
    r = OutboxRelay("sqlite://", sink, store=store, clock=lambda: 1000.0, retention=60.0)
    drive(r, 3)  # claim nothing, idle, wait
    assert store.purged_before == [940.0]


def test_the_machine_refuses_an_impossible_report() -> None:
    machine = RelayMachine()
    with pytest.raises(InvalidTransition):
        machine.published()
    machine.started()
    machine.claimed(0)
    with pytest.raises(InvalidTransition):
        machine.marked(0)
    assert machine.waited() is RelayState.CLAIMING


def test_metrics_follow_the_outbox_while_the_broker_is_down_and_after() -> None:
    from prometheus_client import CollectorRegistry

    from bus_runtime.outbox.metrics import OutboxMetrics

    registry = CollectorRegistry()
    store, sink = FakeStore([row(1), row(2)]), FakeSink(down=1)
    r = OutboxRelay("sqlite://", sink, store=store, metrics=OutboxMetrics(registry), clock=lambda: 1000.0)
    drive(r, 5)  # claim, publish (refused), mark nothing, back off, wait
    assert registry.get_sample_value("rabbitform_outbox_due") == 2
    while r.step(wait=False) is not RelayState.IDLE:
        pass
    r.step(wait=False)
    assert registry.get_sample_value("rabbitform_outbox_published_total") == 2
    assert registry.get_sample_value("rabbitform_outbox_due") == 0
