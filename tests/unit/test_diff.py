"""The offline diff on plain data: creates, replaces with reasons, scoped deletes, safety, normalisation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from topology.compile.compiler import compile_spec
from topology.compile.definitions import from_definitions, to_definitions
from topology.compile.objects import Binding, Exchange, Queue, QueueStats, Topology
from topology.plan.diff import compute_plan, diff
from topology.plan.model import Change, Plan
from topology.plan.saved import SavedPlan, plan_data
from topology.plan.scope import Scope
from topology.spec.loader import load_spec

SEED = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
SPEC = load_spec(SEED)
DESIRED = compile_spec(SPEC)
SCOPE = Scope.of_spec(SPEC)

Q = "alice.petisco.1.event.user.created.send_mail_handler"
RETRY_Q = f"retry.{Q}"
OLD_Q = "alice.petisco.1.event.user.created.old_handler"


def with_queue(topology: Topology, name: str, **changes: object) -> Topology:
    """`topology` with queue `name` changed (or added when missing)."""
    queues = {q.name: q for q in topology.queues}
    queues[name] = replace(queues.get(name, Queue(name)), **changes)
    return Topology.of(topology.vhost, topology.exchanges, queues.values(), topology.bindings)


def plus(topology: Topology, *objects: Exchange | Queue | Binding) -> Topology:
    return Topology.of(
        topology.vhost,
        [*topology.exchanges, *(o for o in objects if isinstance(o, Exchange))],
        [*topology.queues, *(o for o in objects if isinstance(o, Queue))],
        [*topology.bindings, *(o for o in objects if isinstance(o, Binding))],
    )


def actions(plan: Plan) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]


def test_create_everything_from_an_empty_broker_including_the_vhost() -> None:
    plan = compute_plan(DESIRED, None, SCOPE)
    assert plan.changes[0] == Change("create", "vhost", "/", after={"name": "/"})
    assert [c.kind for c in plan.changes] == ["vhost"] + ["exchange"] * 3 + ["queue"] * 6 + ["binding"] * 8
    assert {c.action for c in plan.changes} == {"create"}
    assert all(c.before is None and c.after is not None and c.reason is None for c in plan.changes)
    assert plan_data(plan)["summary"] == {"add": 18, "replace": 0, "destroy": 0, "unchanged": 0}
    assert (plan.warnings, plan.errors) == ((), ())
    retry = next(c for c in plan.changes if c.name == RETRY_Q)
    assert retry.after == {
        "name": RETRY_Q,
        "durable": True,
        "auto_delete": False,
        "arguments": {
            "x-message-ttl": 5000,
            "x-dead-letter-exchange": "alice.petisco",
            "x-dead-letter-routing-key": RETRY_Q,
        },
    }
    binding = next(c for c in plan.changes if c.kind == "binding" and c.name.endswith("[alice.petisco.*.event.#]"))
    assert binding.name == "alice.petisco -> store [alice.petisco.*.event.#]"


def test_an_existing_empty_vhost_is_not_created_again() -> None:
    plan = compute_plan(DESIRED, Topology(vhost="/"), SCOPE)
    assert "vhost" not in {c.kind for c in plan.changes}
    assert plan.summary.add == 17


def test_no_changes() -> None:
    plan = compute_plan(DESIRED, DESIRED, SCOPE)
    assert plan.changes == ()
    assert not plan.has_changes
    assert plan_data(plan)["summary"] == {"add": 0, "replace": 0, "destroy": 0, "unchanged": 17}


def test_replace_names_the_property_with_old_and_new_values() -> None:
    args = dict(next(q for q in DESIRED.queues if q.name == RETRY_Q).arguments)
    actual = with_queue(DESIRED, RETRY_Q, arguments={**args, "x-message-ttl": 1000})
    plan = compute_plan(DESIRED, actual, SCOPE)
    queue_change = plan.changes[0]
    assert (queue_change.action, queue_change.kind, queue_change.name) == ("replace", "queue", RETRY_Q)
    assert queue_change.reason == "arguments.x-message-ttl: 1000 -> 5000"
    assert queue_change.before is not None and queue_change.before["arguments"]["x-message-ttl"] == 1000
    assert queue_change.after is not None and queue_change.after["arguments"]["x-message-ttl"] == 5000


def test_a_string_is_not_a_number() -> None:
    args = dict(next(q for q in DESIRED.queues if q.name == RETRY_Q).arguments)
    actual = with_queue(DESIRED, RETRY_Q, arguments={**args, "x-message-ttl": "5000"})
    plan = compute_plan(DESIRED, actual, SCOPE)
    assert plan.changes[0].reason == 'arguments.x-message-ttl: "5000" -> 5000'


def test_missing_and_durability_differences() -> None:
    actual = with_queue(DESIRED, Q, arguments={}, durable=False)
    [change] = [c for c in compute_plan(DESIRED, actual, SCOPE).changes if c.kind == "queue"]
    assert change.reason == (
        'durable: false -> true; arguments.x-dead-letter-exchange: (absent) -> "dead_letter.alice.petisco"; '
        'arguments.x-dead-letter-routing-key: (absent) -> "dead_letter.alice.petisco.1.event.user.created.send_mail_handler"'
    )


def test_exchange_type_change_replaces_the_exchange_and_recreates_its_bindings() -> None:
    exchanges = [replace(e, type="direct") if e.name == "retry.alice.petisco" else e for e in DESIRED.exchanges]
    actual = Topology.of("/", exchanges, DESIRED.queues, DESIRED.bindings)
    plan = compute_plan(DESIRED, actual, SCOPE)
    assert actions(plan) == [
        ("replace", "exchange", "retry.alice.petisco"),
        ("replace", "binding", f"retry.alice.petisco -> {RETRY_Q} [{RETRY_Q}]"),
        ("replace", "binding", "retry.alice.petisco -> retry.store [retry.store]"),
    ]
    assert plan.changes[0].reason == 'type: "direct" -> "topic"'
    assert plan.changes[1].reason == "recreated with replaced exchange retry.alice.petisco"


def test_bindings_are_recreated_with_their_replaced_queue() -> None:
    actual = with_queue(DESIRED, Q, arguments={"x-dead-letter-exchange": "dead_letter.alice.petisco"})
    plan = compute_plan(DESIRED, actual, SCOPE)
    assert actions(plan) == [
        ("replace", "queue", Q),
        ("replace", "binding", f"alice.petisco -> {Q} [alice.petisco.1.event.user.created]"),
        ("replace", "binding", f"alice.petisco -> {Q} [{RETRY_Q}]"),
    ]
    for change in plan.changes[1:]:
        assert change.reason == f"recreated with replaced queue {Q}"
        assert change.before == change.after
    assert plan_data(plan)["summary"] == {"add": 0, "replace": 3, "destroy": 0, "unchanged": 14}


def test_only_owned_objects_are_deleted() -> None:
    actual = plus(
        DESIRED,
        # owned: the spec's exchanges and queue prefixes
        Queue(OLD_Q),
        Queue(f"retry.{OLD_Q}"),
        Binding("alice.petisco", OLD_Q, "alice.petisco.1.event.user.created"),
        Binding("alice.petisco", "store", "alice.petisco.2.event.#"),
        # not owned: another organization, another service, a team's own objects
        Exchange("bob.petisco"),
        Exchange("alice.billing"),
        Queue("bob.petisco.1.event.user.created.h"),
        Queue("alice.billing.1.event.invoice.paid.h"),
        Queue("storefront"),
        Binding("bob.petisco", "store", "#"),
        Binding("alice.petisco", "storefront", "#"),
    )
    plan = compute_plan(DESIRED, actual, SCOPE)
    assert actions(plan) == [
        ("delete", "queue", OLD_Q),
        ("delete", "queue", f"retry.{OLD_Q}"),
        ("delete", "binding", f"alice.petisco -> {OLD_Q} [alice.petisco.1.event.user.created]"),
        ("delete", "binding", "alice.petisco -> store [alice.petisco.2.event.#]"),
    ]
    assert all(c.after is None and c.before is not None for c in plan.changes)
    assert plan.summary.destroy == 4


def test_out_of_scope_objects_are_ignored_even_when_they_differ() -> None:
    actual = plus(
        DESIRED,
        Exchange("amq.topic"),
        Exchange("team.events", type="fanout"),
        Queue("mine", arguments={"x-message-ttl": 1}),
        Binding("amq.topic", Q, "#"),  # source not owned
        Binding("team.events", "store", ""),
    )
    plan = compute_plan(DESIRED, actual, SCOPE)
    assert plan.changes == ()
    assert plan.unchanged == 17


def test_deleting_a_queue_with_messages_is_refused_without_allow_data_loss() -> None:
    actual = plus(DESIRED, Queue(OLD_Q))
    stats = {OLD_Q: QueueStats(messages=3, consumers=0)}
    plan = compute_plan(DESIRED, actual, SCOPE, stats)
    assert plan.errors == (
        f"queue {OLD_Q} holds 3 messages: deleting it loses them; rerun with --allow-data-loss to accept losing them",
    )
    assert plan.warnings == ()
    [change] = plan.changes
    assert (change.messages, change.consumers) == (3, 0)
    allowed = compute_plan(DESIRED, actual, SCOPE, stats, allow_data_loss=True)
    assert allowed.errors == ()
    assert allowed.warnings == (
        f"queue {OLD_Q} holds 3 messages: deleting it loses them (allowed by --allow-data-loss)",
    )
    assert allowed.allow_data_loss


def test_replacing_a_queue_with_one_message_is_refused_too() -> None:
    actual = with_queue(DESIRED, Q, arguments={})
    plan = compute_plan(DESIRED, actual, SCOPE, {Q: QueueStats(messages=1)})
    assert plan.errors == (
        f"queue {Q} holds 1 message: replacing it loses them; rerun with --move-messages to keep them, or with --allow-data-loss to accept losing them",
    )


def test_empty_queues_are_deleted_without_complaint() -> None:
    plan = compute_plan(DESIRED, plus(DESIRED, Queue(OLD_Q)), SCOPE, {OLD_Q: QueueStats(messages=0, consumers=0)})
    assert (plan.errors, plan.warnings) == ((), ())


def test_consumers_are_a_warning() -> None:
    actual = plus(DESIRED, Queue(OLD_Q))
    plan = compute_plan(DESIRED, actual, SCOPE, {OLD_Q: QueueStats(messages=0, consumers=2)})
    assert plan.errors == ()
    assert plan.warnings == (f"queue {OLD_Q} has 2 consumers: deleting it disconnects them",)


def test_stats_of_kept_queues_do_not_matter() -> None:
    plan = compute_plan(DESIRED, DESIRED, SCOPE, {Q: QueueStats(messages=1000, consumers=5)})
    assert (plan.changes, plan.errors, plan.warnings) == ((), (), ())


def definitions_with_queue_type(queue_type: str | None) -> dict[str, object]:
    definitions = to_definitions(DESIRED)
    for item in definitions["queues"]:
        if queue_type is not None:
            item["arguments"] = {**item["arguments"], "x-queue-type": queue_type}
    return definitions


def test_x_queue_type_classic_and_missing_are_the_same() -> None:
    for queue_type in (None, "classic"):
        actual = from_definitions(definitions_with_queue_type(queue_type), "/")
        assert compute_plan(DESIRED, actual, SCOPE).changes == (), queue_type


def test_quorum_on_the_broker_against_a_classic_spec_is_a_replace() -> None:
    actual = from_definitions(definitions_with_queue_type("quorum"), "/")
    changes = [c for c in compute_plan(DESIRED, actual, SCOPE).changes if c.kind == "queue"]
    assert len(changes) == 6
    assert {c.reason for c in changes} == {'arguments.x-queue-type: "quorum" -> (absent)'}


def test_missing_type_means_the_vhost_default() -> None:
    actual = from_definitions(definitions_with_queue_type(None), "/", default_queue_type="quorum")
    assert all(q.arguments["x-queue-type"] == "quorum" for q in actual.queues)


def test_system_exchanges_and_default_exchange_bindings_are_ignored() -> None:
    definitions = to_definitions(DESIRED)
    for name in ("", "amq.direct", "amq.topic", "amq.fanout", "amq.headers", "amq.match", "amq.rabbitmq.trace"):
        definitions["exchanges"].append({"name": name, "vhost": "/", "type": "topic", "durable": True})
    for queue in ("store", Q, "unrelated"):
        definitions["bindings"].append(
            {"source": "", "vhost": "/", "destination": queue, "destination_type": "queue", "routing_key": queue}
        )
    actual = from_definitions(definitions, "/")
    assert {e.name for e in actual.exchanges} == {e.name for e in DESIRED.exchanges}
    assert actual.bindings == DESIRED.bindings
    assert compute_plan(DESIRED, actual, SCOPE).changes == ()


def test_diff_alone_returns_sorted_changes_and_the_unchanged_count() -> None:
    changes, unchanged = diff(DESIRED, Topology(vhost="/"))
    assert unchanged == 0
    assert [c.kind for c in changes] == ["exchange"] * 3 + ["queue"] * 6 + ["binding"] * 8
    names = [c.name for c in changes if c.kind == "queue"]
    assert names == sorted(names)


def test_plan_json_round_trip() -> None:
    plan = compute_plan(DESIRED, plus(DESIRED, Queue(OLD_Q)), SCOPE, {OLD_Q: QueueStats(1, 1)}, allow_data_loss=True)
    data = plan_data(plan)
    assert data["format_version"] == 1
    assert plan_data(SavedPlan.model_validate(data).to_plan()) == data


def test_fingerprint_depends_on_the_owned_state_only() -> None:
    base = compute_plan(DESIRED, DESIRED, SCOPE).fingerprint
    assert base == compute_plan(DESIRED, plus(DESIRED, Queue("unrelated")), SCOPE).fingerprint
    assert base != compute_plan(DESIRED, plus(DESIRED, Queue(OLD_Q)), SCOPE).fingerprint
    assert base != compute_plan(DESIRED, None, SCOPE).fingerprint


def test_foreign_bindings_that_go_with_a_replaced_or_deleted_owned_object_are_warned_about() -> None:
    foreign = Queue("billing.audit")
    to_foreign = Binding("alice.petisco", "billing.audit", "alice.petisco.1.event.#")
    from_foreign = Binding("billing.events", Q, "billing.#")
    unrelated = Binding("billing.events", "billing.audit", "#")
    exchanges = [replace(e, type="direct") if e.name == "alice.petisco" else e for e in DESIRED.exchanges]
    actual = plus(Topology.of("/", exchanges, DESIRED.queues, DESIRED.bindings), foreign, to_foreign, unrelated)
    plan = compute_plan(DESIRED, with_queue(plus(actual, from_foreign), Q, arguments={}), SCOPE)
    assert plan.warnings == (
        f"binding {to_foreign.label} is not managed by this spec and is lost when exchange alice.petisco "
        "is replaced: recreate it after apply",
        f"binding {from_foreign.label} is not managed by this spec and is lost when queue {Q} "
        "is replaced: recreate it after apply",
    )
    assert all(c.name != to_foreign.label for c in plan.changes)  # never touched by the plan itself


def test_no_warning_when_owned_objects_stay() -> None:
    actual = plus(DESIRED, Binding("alice.petisco", "billing.audit", "#"))
    assert compute_plan(DESIRED, actual, SCOPE).warnings == ()
