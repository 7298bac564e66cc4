"""The in-memory broker at the AMQP level: routing, queue TTL, dead-lettering, acks, the clock."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bus_runtime.memory import BrokerError, Expired, InMemoryBroker, NotIdleError, Routed, Unroutable
from topology.compile.objects import Binding, Exchange, Queue, Topology

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def retry_topology(ttl: int = 1000, dead_letter_key: str | None = "retry.q") -> Topology:
    """A main queue `q` on exchange `main`, with a TTL queue `retry.q` that sends messages back."""
    retry_args: dict[str, object] = {"x-message-ttl": ttl, "x-dead-letter-exchange": "main"}
    if dead_letter_key is not None:
        retry_args["x-dead-letter-routing-key"] = dead_letter_key
    return Topology.of(
        "/",
        [Exchange("main"), Exchange("retry")],
        [Queue("q"), Queue("retry.q", arguments=retry_args), Queue("parked")],
        [Binding("main", "q", "a.#"), Binding("main", "q", "retry.q"), Binding("retry", "retry.q", "retry.q")],
    )


def test_publish_routes_by_topic_and_keeps_headers() -> None:
    broker = InMemoryBroker(retry_topology(), "alice", start=START)
    assert broker.publish("main", "a.b", b"x", {"h": 1}) == ["q"]
    [message] = broker.messages("q")
    assert (message.body, message.exchange, message.routing_key, dict(message.headers)) == (
        b"x",
        "main",
        "a.b",
        {"h": 1},
    )


def test_unroutable_is_traced_and_unknown_exchange_is_an_error() -> None:
    broker = InMemoryBroker(retry_topology(), "alice")
    assert broker.publish("main", "nothing.matches.b", b"x") == []
    assert isinstance(broker.trace[-1], Unroutable)
    with pytest.raises(BrokerError, match="no exchange 'missing'"):
        broker.publish("missing", "a", b"x")


def test_default_exchange_routes_by_queue_name() -> None:
    broker = InMemoryBroker(retry_topology(), "alice")
    assert broker.publish("", "parked", b"x") == ["parked"]
    assert broker.publish("", "no-such-queue", b"x") == []


def test_ttl_expires_on_the_virtual_clock_and_dead_letters_with_x_death() -> None:
    broker = InMemoryBroker(retry_topology(ttl=1000), "alice", start=START)
    broker.publish("retry", "retry.q", b"x", {"h": 1})
    broker.advance(999)
    assert broker.depth("retry.q") == 1
    broker.advance(1)
    assert broker.depth("retry.q") == 0
    [message] = broker.messages("q")
    assert (message.exchange, message.routing_key) == ("main", "retry.q")
    assert message.headers["h"] == 1
    assert message.headers["x-first-death-reason"] == "expired"
    assert message.headers["x-first-death-queue"] == "retry.q"
    assert message.headers["x-first-death-exchange"] == "retry"
    [death] = message.headers["x-death"]
    assert death == {
        "count": 1,
        "reason": "expired",
        "queue": "retry.q",
        "time": datetime(2026, 1, 1, 0, 0, 1),
        "exchange": "retry",
        "routing-keys": ["retry.q"],
    }
    assert any(isinstance(e, Expired) and e.at_ms == 1000 for e in broker.trace)


def test_a_second_death_in_the_same_queue_increments_the_count() -> None:
    broker = InMemoryBroker(retry_topology(ttl=100), "alice")
    broker.publish("retry", "retry.q", b"x")
    broker.advance(100)
    tag, first = broker.get("q") or (0, None)
    assert first is not None
    broker.ack(tag)
    broker.publish("retry", "retry.q", b"x", first.headers)
    broker.advance(100)
    [message] = broker.messages("q")
    [death] = message.headers["x-death"]
    assert death["count"] == 2


def test_without_a_dead_letter_routing_key_the_message_keeps_its_own() -> None:
    topology = retry_topology(ttl=10, dead_letter_key=None)
    broker = InMemoryBroker(topology, "alice")
    broker.publish("", "retry.q", b"x")  # routing key "retry.q" is bound on main to q
    broker.advance(10)
    assert [m.routing_key for m in broker.messages("q")] == ["retry.q"]


def test_expired_without_a_dead_letter_exchange_is_dropped() -> None:
    topology = Topology.of("/", [], [Queue("short", arguments={"x-message-ttl": 5})], [])
    broker = InMemoryBroker(topology, "alice")
    broker.publish("", "short", b"x")
    assert broker.run_until_idle() == 2  # one clock jump, one expiry
    assert broker.depths() == {}
    assert broker.now_ms == 5


def test_reject_without_requeue_dead_letters_and_with_requeue_puts_back_at_the_head() -> None:
    topology = Topology.of(
        "/",
        [Exchange("dlx")],
        [Queue("work", arguments={"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead"}), Queue("d")],
        [Binding("dlx", "d", "dead")],
    )
    broker = InMemoryBroker(topology, "alice")
    broker.publish("", "work", b"1")
    broker.publish("", "work", b"2")
    tag, _ = broker.get("work") or (0, None)
    broker.reject(tag, requeue=True)
    assert [(m.body, m.redelivered) for m in broker.messages("work")] == [(b"1", True), (b"2", False)]
    tag, _ = broker.get("work") or (0, None)
    broker.reject(tag)
    [dead] = broker.messages("d")
    assert dead.headers["x-death"][0]["reason"] == "rejected"
    assert dead.headers["x-first-death-queue"] == "work"
    with pytest.raises(BrokerError, match="unknown delivery tag"):
        broker.ack(tag)


def test_run_until_idle_stops_when_only_unconsumed_queues_hold_messages() -> None:
    broker = InMemoryBroker(retry_topology(ttl=1000), "alice")
    broker.publish("retry", "retry.q", b"x")
    broker.run_until_idle()
    assert broker.now_ms == 1000
    assert broker.depths() == {"q": 1}
    routed = [e.queue for e in broker.trace if isinstance(e, Routed)]
    assert routed == ["retry.q", "q"]


def test_an_endless_ttl_loop_is_stopped_with_a_clear_error() -> None:
    loop = Topology.of(
        "/",
        [],
        [
            Queue(
                "ping",
                arguments={"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "pong"},
            ),
            Queue(
                "pong",
                arguments={"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "ping"},
            ),
        ],
        [],
    )
    broker = InMemoryBroker(loop, "alice")
    broker.publish("", "ping", b"x")
    with pytest.raises(NotIdleError, match=r"still busy after 50 steps .*Queues holding messages"):
        broker.run_until_idle(max_steps=50)


def test_the_clock_never_goes_back() -> None:
    broker = InMemoryBroker(retry_topology(), "alice", start=START)
    broker.advance(250)
    assert broker.now() == datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        broker.advance(-1)


def test_from_spec_holds_what_apply_would_create() -> None:
    broker = InMemoryBroker.from_spec(ALICE)
    queue = "alice.petisco.1.event.user.created.send_mail_handler"
    assert set(broker.queue_names) == {
        queue,
        f"retry.{queue}",
        f"dead_letter.{queue}",
        "store",
        "retry.store",
        "dead_letter.store",
    }
    assert broker.exchange_names == ["alice.petisco", "dead_letter.alice.petisco", "retry.alice.petisco"]
    assert broker.organization == "alice"


def test_buses_need_the_organization() -> None:
    with pytest.raises(BrokerError, match="organization"):
        InMemoryBroker(retry_topology()).event_bus("petisco")
