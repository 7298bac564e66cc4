"""`queue_settings: policies` and `--move-messages` on plain data: what compiles, plans and schedules."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bus_runtime.memory import InMemoryBroker
from topology import naming
from topology.apply.executor import schedule
from topology.compile.compiler import compile_spec
from topology.compile.definitions import from_definitions, to_definitions
from topology.compile.objects import Policy, Queue, QueueStats, Topology
from topology.compile.policies import BASE_PRIORITY, effective_arguments, effective_policy
from topology.plan.diff import compute_plan
from topology.plan.render.markdown import render_markdown
from topology.plan.render.text import render_text
from topology.plan.saved import parse_saved_plan, plan_json
from topology.plan.scope import Scope
from topology.spec.loader import parse_spec
from topology.spec.model import Spec

MAIN = "alice.petisco.1.event.user.created.send_mail_handler"
NOTIFY = "alice.petisco.1.event.user.created.notify_handler"
QUORUM = "alice.petisco.1.event.user.created.other_handler"


def make(settings: str = "policies", delay: int = 5000, mail_delay: int = 1000, queue_type: str = "classic") -> Spec:
    return parse_spec(
        f"""
organization: alice
queue_settings: {settings}
defaults: {{queue_type: {queue_type}, retry: {{delay_ms: {delay}}}}}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {{retry: {{delay_ms: {mail_delay}}}}}
          notify_handler: {{}}
          other_handler: {{queue_type: quorum}}
store: {{}}
"""
    )


def test_arguments_is_the_default_and_compiles_no_policy() -> None:
    spec = make("arguments")
    assert parse_spec("organization: alice\n").queue_settings == "arguments"
    topology = compile_spec(spec)
    assert topology.policies == ()
    assert "policies" not in to_definitions(topology)


def test_policies_keep_only_the_queue_type_as_an_argument() -> None:
    topology = compile_spec(make())
    assert {q.name: dict(q.arguments) for q in topology.queues if q.arguments} == {
        QUORUM: {"x-queue-type": "quorum"},
        naming.retry_queue(QUORUM): {"x-queue-type": "quorum"},
        naming.dead_letter_queue(QUORUM): {"x-queue-type": "quorum"},
    }


def test_retry_queues_share_one_policy_per_tier_and_the_default_tier_covers_the_service() -> None:
    policies = {p.name: p for p in compile_spec(make()).policies}
    default = policies["retry.alice.petisco.defaults"]
    assert (default.pattern, default.priority) == (r"^retry\.alice\.petisco\.", BASE_PRIORITY)
    assert dict(default.definition) == {"message-ttl": 5000, "dead-letter-exchange": "alice.petisco"}
    fast = policies["retry.alice.petisco.ttl-1000ms"]
    assert fast.priority > default.priority
    assert dict(policies["retry.alice.petisco.defaults-quorum"].definition) == {
        "message-ttl": 5000,
        "dead-letter-exchange": "alice.petisco",
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
        "delivery-limit": 20,
    }
    # Main queues need their own dead-letter routing key: one policy each, named after the queue.
    assert dict(policies[MAIN].definition) == {
        "dead-letter-exchange": "dead_letter.alice.petisco",
        "dead-letter-routing-key": naming.dead_letter_queue(MAIN),
    }
    assert policies[QUORUM].definition["dead-letter-strategy"] == "at-least-once"
    assert dict(policies["retry.store"].definition)["dead-letter-routing-key"] == "store"


@pytest.mark.parametrize(
    "queue",
    [MAIN, NOTIFY, QUORUM, naming.retry_queue(MAIN), naming.retry_queue(NOTIFY), naming.retry_queue(QUORUM), "store"],
)
def test_every_queue_gets_the_settings_it_had_as_arguments(queue: str) -> None:
    by_arguments = {q.name: dict(q.arguments) for q in compile_spec(make("arguments")).queues}
    by_policies = compile_spec(make())
    effective = effective_arguments(next(q for q in by_policies.queues if q.name == queue), by_policies.policies)
    for key, value in by_arguments[queue].items():
        if key == "x-dead-letter-routing-key" and value == queue:
            # a retry copy is routed with its queue's name: dead-lettering keeps that key
            assert key not in effective
        else:
            assert effective[key] == value


def test_an_argument_wins_over_a_policy_and_the_highest_priority_policy_applies() -> None:
    low = Policy("low", ".*", {"message-ttl": 1}, priority=0)
    high = Policy("high", "^q$", {"message-ttl": 2}, priority=5)
    assert effective_policy("q", [low, high]) == high
    assert effective_arguments(Queue("q"), [low, high]) == {"x-message-ttl": 2}
    assert effective_arguments(Queue("q", arguments={"x-message-ttl": 3}), [high]) == {"x-message-ttl": 3}


def test_policies_round_trip_through_definitions() -> None:
    topology = compile_spec(make())
    assert from_definitions(json.loads(json.dumps(to_definitions(topology))), "/") == topology


def test_a_delay_change_is_an_in_place_update_of_one_policy() -> None:
    before = compile_spec(make())
    plan = compute_plan(compile_spec(make(delay=7000)), before, Scope.of_spec(make()))
    assert [(c.action, c.kind, c.name) for c in plan.changes] == [
        ("update", "policy", "retry.alice.petisco.defaults"),
        ("update", "policy", "retry.alice.petisco.defaults-quorum"),
        ("update", "policy", "retry.store"),
    ]
    assert plan.summary.update == 3 and plan.summary.replace == 0
    text = render_text(plan)
    assert "~ policy retry.alice.petisco.defaults  (definition.message-ttl: 5000 -> 7000, in place)" in text
    assert "Plan: 0 to add, 3 to update, 0 to replace, 0 to destroy." in text
    assert "| update | 0 | 3 |" in render_markdown(plan)
    assert parse_saved_plan(plan_json(plan), "plan.json").changes == plan.changes


def test_switching_modes_replaces_queues_and_is_refused_with_messages_unless_moved() -> None:
    spec = make()
    arguments = compile_spec(make("arguments"))
    stats = {MAIN: QueueStats(messages=3, consumers=1)}
    refused = compute_plan(compile_spec(spec), arguments, Scope.of_spec(spec), stats)
    assert any("--move-messages" in e for e in refused.errors)
    moved = compute_plan(compile_spec(spec), arguments, Scope.of_spec(spec), stats, move_messages=True)
    assert moved.errors == ()
    change = next(c for c in moved.changes if c.name == MAIN and c.kind == "queue")
    assert change.action == "replace" and change.move
    assert "messages moved; 3 messages, 1 consumer" in render_text(moved)
    assert any("may deliver some twice" in w for w in moved.warnings)
    steps = schedule(moved)
    assert MAIN not in steps.delete_queues
    assert MAIN in [c.name for c, _ in steps.moves]
    bindings = dict((c.name, b) for c, b in steps.moves)[MAIN]
    assert {b.routing_key for b in bindings} == {"alice.petisco.1.event.user.created", naming.retry_queue(MAIN)}
    assert all(b["destination"] != MAIN for b in steps.create["bindings"])
    assert len(steps.put_policies) == len(compile_spec(spec).policies)


def test_a_half_done_move_is_finished_whatever_step_it_stopped_at() -> None:
    spec = make()
    desired = compile_spec(spec)
    holding = Queue(naming.holding_queue(MAIN))
    finished = dataclasses.replace(desired, queues=(*desired.queues, holding))
    plan = compute_plan(desired, finished, Scope.of_spec(spec))
    change = next(c for c in plan.changes if c.name == MAIN)
    assert (change.action, change.move, change.moving) == ("replace", True, True)
    assert "finishing an interrupted move" in render_text(plan)
    gone = dataclasses.replace(finished, queues=tuple(q for q in finished.queues if q.name != MAIN))
    change = next(c for c in compute_plan(desired, gone, Scope.of_spec(spec)).changes if c.name == MAIN)
    assert (change.action, change.moving) == ("replace", True)


def test_foreign_policies_are_out_of_scope_and_a_higher_priority_one_is_a_warning() -> None:
    spec = make()
    desired = compile_spec(spec)
    operator = Policy("ha-all", ".*", {"max-length": 10}, priority=500)
    actual = dataclasses.replace(desired, policies=(*desired.policies, operator))
    plan = compute_plan(desired, actual, Scope.of_spec(spec))
    assert plan.changes == ()
    assert any("policy ha-all (priority 500)" in w and MAIN in w for w in plan.warnings)
    assert not Scope.of_spec(spec).owns_policy("ha-all")
    low = dataclasses.replace(operator, priority=1)
    calm = compute_plan(desired, dataclasses.replace(desired, policies=(*desired.policies, low)), Scope.of_spec(spec))
    assert calm.warnings == ()


def test_the_in_memory_broker_reads_ttl_and_dead_lettering_from_the_policies() -> None:
    broker = InMemoryBroker(compile_spec(make()), "alice")
    retry = naming.retry_queue(NOTIFY)
    broker.publish("retry.alice.petisco", retry, b"{}")
    broker.advance(4999)
    assert broker.depths().get(retry) == 1
    broker.advance(1)
    assert broker.depths().get(NOTIFY) == 1


def test_an_empty_topology_has_no_policies() -> None:
    assert Topology("/").policies == ()


def test_a_saved_plan_with_policy_updates_and_moves_reads_back() -> None:

    spec = make()
    desired = compile_spec(spec)
    gone = Topology.of(
        "/",
        desired.exchanges,
        [q for q in desired.queues if q.name != MAIN] + [Queue(naming.holding_queue(MAIN))],
        desired.bindings,
        [dataclasses.replace(p, priority=7) for p in desired.policies],
    )
    plan = compute_plan(desired, gone, Scope.of_spec(spec), move_messages=True)
    assert {c.action for c in plan.changes} >= {"update", "replace"}
    assert parse_saved_plan(plan_json(plan), "plan.json") == plan


def test_quorum_retry_tiers_whose_delivery_limits_differ_get_policies_of_their_own() -> None:
    """Every quorum retry tier carries its subscriber's delivery limit: a tier policy is shared
    only by queues of the same delay, type and limit, and a limit other than the defaults'
    names its policy."""
    text = (
        "organization: alice\nvhost: /\nqueue_settings: policies\n"
        "defaults: {queue_type: quorum}\n"
        "services:\n  petisco:\n    events:\n      UserCreated:\n        subscribers:\n"
        "          send_mail_handler: {}\n"
        "          audit_handler: {retry: {delivery_limit: 3}}\n"
    )
    policies = {p.name: p for p in compile_spec(parse_spec(text)).policies}
    assert policies["retry.alice.petisco.defaults"].definition["delivery-limit"] == 20
    own = policies["retry.alice.petisco.defaults-limit-3"]
    assert own.definition["delivery-limit"] == 3
    assert own.pattern == r"^retry\.alice\.petisco\.1\.event\.user\.created\.audit_handler$"
    assert own.priority > policies["retry.alice.petisco.defaults"].priority
