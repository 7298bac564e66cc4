"""Live plan and apply through the library API, each test in its own vhost on the real broker."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pika
import pytest

from tests.conftest import AMQP_HOST, AMQP_PORT, PASSWORD, USER
from tests.integration.live_support import AUDIT, DEAD, MAIN, RETRY, client, make_spec, publish, wait_for_messages
from tests.integration.support import wait_for
from topology.apply.executor import ApplyError, execute
from topology.apply.live import StalePlanError, apply_plan, check_fresh, converge, plan_live
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_snapshot
from topology.compile.objects import Binding
from topology.plan.model import Plan
from topology.plan.saved import SavedPlan
from topology.progress import Silent

AMQP_URL = f"amqp://{USER}:{PASSWORD}@{AMQP_HOST}:{AMQP_PORT}"


@pytest.fixture
def broker(management_url: str) -> Iterator[ManagementClient]:
    c = client(management_url)
    yield c
    c.close()


def changes(plan: Plan) -> set[tuple[str, str, str]]:
    return {(c.action, c.kind, c.name) for c in plan.changes}


def queue_names(c: ManagementClient, vhost: str) -> set[str]:
    topology = read_snapshot(c, vhost).topology
    assert topology is not None
    return {q.name for q in topology.queues}


def test_apply_from_empty_then_plan_shows_no_changes(broker: ManagementClient, vhost: str) -> None:
    spec = make_spec(vhost)
    plan = plan_live(spec, broker)
    assert plan.summary.add == 17 and not plan.summary.replace and not plan.summary.destroy
    assert plan.management_url == broker.display_url

    result = converge(spec, broker, plan)

    assert result.added == 17
    assert result.summary_line.startswith("Apply complete: 17 added, 0 replaced, 0 destroyed in ")
    again = plan_live(spec, broker)
    assert not again.has_changes and again.unchanged == 17


def test_a_missing_vhost_is_planned_as_a_create(broker: ManagementClient, vhost: str) -> None:
    new_vhost = f"{vhost}-new"
    spec = make_spec(new_vhost)
    try:
        plan = plan_live(spec, broker)
        assert plan.changes[0].kind == "vhost" and plan.changes[0].action == "create"
        assert not any(c.action == "delete" for c in plan.changes)
        converge(spec, broker, plan)
        assert not plan_live(spec, broker).has_changes
    finally:
        broker.delete("vhosts", new_vhost)


def test_adding_a_subscriber_only_creates(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost), broker)
    plan = plan_live(make_spec(vhost, audit=True), broker)
    assert {c.action for c in plan.changes} == {"create"}
    assert changes(plan) >= {("create", "queue", AUDIT), ("create", "queue", f"retry.{AUDIT}")}
    assert plan.summary.add == 7
    converge(make_spec(vhost, audit=True), broker, plan)
    assert AUDIT in queue_names(broker, vhost)


def test_changing_a_retry_delay_replaces_the_retry_queue_and_rebinds_it(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost, delay_ms=5000), broker)
    plan = plan_live(make_spec(vhost, delay_ms=10000), broker)

    assert {(c.action, c.kind) for c in plan.changes} == {("replace", "queue"), ("replace", "binding")}
    [queue] = [c for c in plan.changes if c.kind == "queue"]
    assert queue.name == RETRY
    assert queue.reason == "arguments.x-message-ttl: 5000 -> 10000"
    [binding] = [c for c in plan.changes if c.kind == "binding"]
    assert binding.name == f"retry.alice.petisco -> {RETRY} [{RETRY}]"

    result = converge(make_spec(vhost, delay_ms=10000), broker, plan)
    assert (result.added, result.replaced, result.destroyed) == (0, 2, 0)
    topology = read_snapshot(broker, vhost).topology
    assert topology is not None
    assert next(q for q in topology.queues if q.name == RETRY).arguments["x-message-ttl"] == 10000
    assert Binding("retry.alice.petisco", RETRY, RETRY).key in {b.key for b in topology.bindings}


def test_removing_a_subscriber_deletes_its_queues_and_bindings(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost, audit=True), broker)
    plan = plan_live(make_spec(vhost, audit=True, send_mail=False), broker)

    assert {c.action for c in plan.changes} == {"delete"}
    assert {c.name for c in plan.changes if c.kind == "queue"} == {MAIN, RETRY, DEAD}
    assert sum(1 for c in plan.changes if c.kind == "binding") == 4
    assert all(c.messages == 0 and c.consumers == 0 for c in plan.changes if c.kind == "queue")

    converge(make_spec(vhost, audit=True, send_mail=False), broker, plan)
    remaining = queue_names(broker, vhost)
    assert not remaining & {MAIN, RETRY, DEAD}
    assert AUDIT in remaining


def test_a_queue_holding_messages_is_only_deleted_with_allow_data_loss(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost), broker)
    publish(broker, vhost, MAIN, 3)
    wait_for_messages(broker, vhost, MAIN, 3)
    removed = make_spec(vhost, send_mail=False)

    refused = plan_live(removed, broker)
    assert refused.errors == (
        f"queue {MAIN} holds 3 messages: deleting it loses them; rerun with --allow-data-loss to accept losing them",
    )
    with pytest.raises(ApplyError, match="refusing to apply a plan with errors"):
        apply_plan(refused, broker)
    assert MAIN in queue_names(broker, vhost)

    allowed = plan_live(removed, broker, allow_data_loss=True)
    assert not allowed.errors and "allowed by --allow-data-loss" in allowed.warnings[0]
    converge(removed, broker, allowed)
    assert MAIN not in queue_names(broker, vhost)


@contextlib.contextmanager
def holding_one_unacked(broker: ManagementClient, vhost: str, queue: str) -> Iterator[None]:
    """A consumer that receives one message of `queue` and holds it unacknowledged: the queue has
    no ready message, so a passive declare (and `if-empty`) sees it empty."""
    connection = pika.BlockingConnection(pika.URLParameters(f"{AMQP_URL}/{quote(vhost, safe='')}"))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        delivered: list[bytes] = []
        channel.basic_consume(queue, lambda _ch, _method, _props, body: delivered.append(body))
        while not delivered:
            connection.process_data_events(time_limit=0.1)

        def counted() -> bool:
            row = broker.get("queues", vhost, queue, params={"columns": "name,messages_unacknowledged"})
            return int(row.get("messages_unacknowledged") or 0) == 1

        wait_for(counted, f"the management API to count the unacknowledged message of {queue}", timeout=20.0)
        yield
    finally:
        connection.close()  # the broker requeues the message


def test_a_message_a_consumer_holds_unacknowledged_stops_the_apply(broker: ManagementClient, vhost: str) -> None:
    """AMQP counts ready messages only: the unacknowledged come from the management API."""
    converge(make_spec(vhost), broker)
    plan = plan_live(make_spec(vhost, send_mail=False), broker)  # MAIN is empty: planned for deletion
    assert not plan.errors and ("delete", "queue", MAIN) in changes(plan)
    publish(broker, vhost, MAIN, 1)
    with holding_one_unacked(broker, vhost, MAIN):
        with pytest.raises(
            ApplyError,
            match=rf"queue {MAIN} \(1 unacknowledged by a consumer\) on vhost .* now holds messages.*nothing was changed",
        ):
            apply_plan(plan, broker)
        assert MAIN in queue_names(broker, vhost)


def test_if_empty_protects_messages_that_arrive_after_the_plan(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost), broker)
    plan = plan_live(make_spec(vhost, send_mail=False), broker)
    assert not plan.errors
    publish(broker, vhost, MAIN, 1)

    # read again over AMQP before the first change: the apply does not start
    with pytest.raises(
        ApplyError, match=rf"queue {MAIN} \(1 message\) on vhost .* now holds messages.*nothing was changed"
    ):
        apply_plan(plan, broker)
    assert MAIN in queue_names(broker, vhost)
    # and without that read (a message landing between it and the delete), if-empty still refuses
    with pytest.raises(ApplyError, match=f"queue {MAIN} on vhost .* is not empty"):
        execute(plan, broker)
    assert MAIN in queue_names(broker, vhost)


def test_objects_outside_the_scope_survive_every_apply(broker: ManagementClient, vhost: str) -> None:
    broker.put("exchanges", vhost, "other.events", body={"type": "topic", "durable": True})
    broker.put("queues", vhost, "other.work", body={"durable": True, "arguments": {"x-message-ttl": 1}})
    broker.put("queues", vhost, "alice.petiscoz.1.event.x.y", body={"durable": True})  # a look-alike prefix
    broker.put("queues", vhost, "bob.petisco.1.event.user.created.h", body={"durable": True})
    broker.post("bindings", vhost, "e", "other.events", "q", "other.work", body={"routing_key": "#"})
    broker.put("exchanges", vhost, "alice.petisco", body={"type": "topic", "durable": True})
    broker.post("bindings", vhost, "e", "alice.petisco", "q", "other.work", body={"routing_key": "alice.#"})
    outside = {"other.work", "alice.petiscoz.1.event.x.y", "bob.petisco.1.event.user.created.h"}

    for spec in (make_spec(vhost, audit=True), make_spec(vhost, delay_ms=7000), make_spec(vhost, send_mail=False)):
        plan = plan_live(spec, broker)
        assert not any(name in outside or "other." in name for _, _, name in changes(plan))
        converge(spec, broker, plan)
        topology = read_snapshot(broker, vhost).topology
        assert topology is not None
        assert outside <= {q.name for q in topology.queues}
        assert "other.events" in {e.name for e in topology.exchanges}
        assert Binding("other.events", "other.work", "#").key in {b.key for b in topology.bindings}
        assert Binding("alice.petisco", "other.work", "alice.#").key in {b.key for b in topology.bindings}


def test_a_stale_saved_plan_is_refused(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost), broker)
    saved = SavedPlan.of(plan_live(make_spec(vhost, audit=True), broker)).to_plan()
    check_fresh(saved, broker)  # nothing changed yet

    broker.delete("queues", vhost, DEAD)  # someone changes an object the plan depends on

    with pytest.raises(StalePlanError, match="is stale"):
        check_fresh(saved, broker)


def test_a_plan_stays_fresh_when_unrelated_queues_receive_messages(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost), broker)
    saved = SavedPlan.of(plan_live(make_spec(vhost, audit=True), broker)).to_plan()
    publish(broker, vhost, MAIN, 2)
    wait_for_messages(broker, vhost, MAIN, 2)
    check_fresh(saved, broker)


def test_drift_made_by_hand_shows_in_the_plan_and_apply_repairs_it(broker: ManagementClient, vhost: str) -> None:
    spec = make_spec(vhost)
    converge(spec, broker)
    listed = broker.get("bindings", vhost, "e", "dead_letter.alice.petisco", "q", DEAD)
    broker.delete("bindings", vhost, "e", "dead_letter.alice.petisco", "q", DEAD, listed[0]["properties_key"])
    broker.delete("queues", vhost, RETRY)
    broker.put("queues", vhost, RETRY, body={"durable": True, "arguments": {"x-message-ttl": 1000, "x-max-length": 10}})

    plan = plan_live(spec, broker)
    assert changes(plan) == {
        ("create", "binding", f"dead_letter.alice.petisco -> {DEAD} [{DEAD}]"),
        ("replace", "queue", RETRY),
        ("create", "binding", f"retry.alice.petisco -> {RETRY} [{RETRY}]"),
    }
    [queue] = [c for c in plan.changes if c.kind == "queue"]
    assert queue.reason is not None
    assert "arguments.x-max-length: 10 -> (absent)" in queue.reason
    assert "arguments.x-message-ttl: 1000 -> 5000" in queue.reason

    converge(spec, broker, plan)
    assert not plan_live(spec, broker).has_changes


def test_an_interrupted_apply_is_completed_by_running_it_again(broker: ManagementClient, vhost: str) -> None:
    spec = make_spec(vhost, audit=True)

    class CrashAfterFirstChunk(Silent):
        def advance(self, done: int) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan_live(spec, broker), broker, progress=CrashAfterFirstChunk(), chunk_size=5)
    halfway = plan_live(spec, broker)
    assert 0 < halfway.summary.add < 24

    converge(spec, broker)
    assert not plan_live(spec, broker).has_changes


def test_creates_only_never_deletes(broker: ManagementClient, vhost: str) -> None:
    converge(make_spec(vhost, delay_ms=5000), broker)
    spec = make_spec(vhost, delay_ms=9000, audit=True, send_mail=False)
    additive = plan_live(spec, broker).creates_only()

    assert {c.action for c in additive.changes} == {"create"}
    apply_plan(additive, broker)
    assert {MAIN, RETRY, DEAD, AUDIT} <= queue_names(broker, vhost)


def test_names_needing_percent_encoding(broker: ManagementClient, management_url: str) -> None:
    vhost = f"odd/vhost #{uuid.uuid4().hex[:6]}"
    spec = make_spec(vhost)
    try:
        converge(spec, broker)
        assert not plan_live(spec, broker).has_changes
        converge(make_spec(vhost, send_mail=False), broker)
        assert MAIN not in queue_names(broker, vhost)
    finally:
        broker.delete("vhosts", vhost)


def test_a_vhost_whose_default_queue_type_is_quorum_keeps_classic_queues_classic(
    broker: ManagementClient, vhost: str
) -> None:
    quorum_vhost = f"{vhost}-quorum"
    broker.put("vhosts", quorum_vhost, body={"defaultqueuetype": "quorum", "default_queue_type": "quorum"})
    if read_snapshot(broker, quorum_vhost).default_queue_type != "quorum":
        broker.delete("vhosts", quorum_vhost)
        pytest.skip("this broker does not support a vhost default queue type")
    try:
        broker.put("permissions", quorum_vhost, broker.user, body={"configure": ".*", "write": ".*", "read": ".*"})
        spec = make_spec(quorum_vhost)
        converge(spec, broker)
        assert not plan_live(spec, broker).has_changes
        queue = broker.get("queues", quorum_vhost, MAIN)
        assert queue["type"] == "classic"
    finally:
        broker.delete("vhosts", quorum_vhost)
