"""The applier's ordering on plain data: what it deletes, what it creates, in which order."""

from __future__ import annotations

from pathlib import Path

from topology.apply.executor import ApplyResult, chunks, schedule, wire_queue
from topology.compile.compiler import compile_spec
from topology.compile.objects import Binding, Queue, Topology
from topology.plan.diff import compute_plan
from topology.plan.scope import Scope
from topology.spec.loader import load_spec

SPEC = load_spec(Path(__file__).resolve().parents[2] / "specs" / "alice.yaml")
DESIRED = compile_spec(SPEC)
SCOPE = Scope.of_spec(SPEC)
Q = "alice.petisco.1.event.user.created.send_mail_handler"
OLD = "alice.petisco.1.event.user.created.old_handler"


def test_from_an_empty_broker_the_vhost_comes_first_then_bulk_creates_in_order() -> None:
    steps = schedule(compute_plan(DESIRED, None, SCOPE))
    assert steps.create_vhost
    assert (steps.delete_bindings, steps.delete_queues, steps.delete_exchanges) == ((), (), ())
    assert [len(steps.create[s]) for s in ("exchanges", "queues", "bindings")] == [3, 6, 8]
    assert steps.steps == 18
    sections = [list(chunk) for chunk in chunks(steps.create, 4)]
    assert sections == [["exchanges", "queues"], ["queues"], ["queues", "bindings"], ["bindings"], ["bindings"]]
    assert sum(len(items) for chunk in chunks(steps.create, 4) for items in chunk.values()) == 17


def test_a_replaced_queue_is_deleted_and_recreated_with_its_bindings() -> None:
    retry = f"retry.{Q}"
    actual = Topology.of(
        "/",
        DESIRED.exchanges,
        [q if q.name != retry else Queue(retry, arguments={**q.arguments, "x-message-ttl": 1}) for q in DESIRED.queues],
        DESIRED.bindings,
    )
    steps = schedule(compute_plan(DESIRED, actual, SCOPE))
    assert steps.delete_queues == (retry,)
    assert steps.delete_bindings == ()  # it goes with its queue
    assert [q["name"] for q in steps.create["queues"]] == [retry]
    assert [b["destination"] for b in steps.create["bindings"]] == [retry]


def test_bindings_of_deleted_queues_need_no_call_but_others_do() -> None:
    orphan = Binding("alice.petisco", Q, "alice.petisco.1.event.user.renamed")
    gone = Binding("alice.petisco", OLD, "alice.petisco.1.event.user.created")
    actual = Topology.of("/", DESIRED.exchanges, [*DESIRED.queues, Queue(OLD)], [*DESIRED.bindings, orphan, gone])
    plan = compute_plan(DESIRED, actual, SCOPE)
    steps = schedule(plan)
    assert steps.delete_queues == (OLD,)
    assert steps.delete_bindings == (orphan,)
    assert not any(steps.create.values())


def test_classic_queues_say_so_when_the_vhost_default_is_another_type() -> None:
    item = {"name": "q", "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 5}}
    assert wire_queue(item, "classic")["arguments"] == {"x-message-ttl": 5}
    assert wire_queue(item, "quorum")["arguments"] == {"x-message-ttl": 5, "x-queue-type": "classic"}
    quorum = {**item, "arguments": {"x-queue-type": "quorum"}}
    assert wire_queue(quorum, "quorum")["arguments"] == {"x-queue-type": "quorum"}
    assert item["arguments"] == {"x-message-ttl": 5}  # not mutated


def test_summary_line() -> None:
    assert ApplyResult(3, 1, 2, 1.234).summary_line == "Apply complete: 3 added, 1 replaced, 2 destroyed in 1.2 s"
    assert ApplyResult(1, 0, 0, 0.034).summary_line.endswith("in 0.03 s")
