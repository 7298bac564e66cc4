"""Compile: the seed's topology exactly as the issue lists it, and the overrides."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from topology.compile.compiler import compile_spec
from topology.compile.objects import Binding, Exchange, Queue, Topology
from topology.spec.loader import load_spec, parse_spec

SEED = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"

Q = "alice.petisco.1.event.user.created.send_mail_handler"
RETRY_Q = f"retry.{Q}"
DEAD_Q = f"dead_letter.{Q}"


def compiled(text: str) -> Topology:
    return compile_spec(parse_spec(text))


def bindings(items: Iterable[Binding]) -> set[tuple[str, str, str]]:
    """Bindings as (source, destination, routing key); every one here goes to a queue without arguments."""
    items = list(items)
    assert all(b.destination_type == "queue" and not b.arguments for b in items)
    return {(b.source, b.destination, b.routing_key) for b in items}


def queue(topology: Topology, name: str) -> Queue:
    [found] = [q for q in topology.queues if q.name == name]
    return found


def test_seed_topology_exactly() -> None:
    topology = compile_spec(load_spec(SEED))
    assert topology.vhost == "/"
    assert topology.exchanges == (
        Exchange("alice.petisco"),
        Exchange("dead_letter.alice.petisco"),
        Exchange("retry.alice.petisco"),
    )
    for exchange in topology.exchanges:
        assert (exchange.type, exchange.durable, exchange.auto_delete, exchange.internal) == (
            "topic",
            True,
            False,
            False,
        )
        assert dict(exchange.arguments) == {}
    assert {q.name: dict(q.arguments) for q in topology.queues} == {
        # No TTL on the subscriber's queue: an outage must never dead-letter real work.
        Q: {
            "x-dead-letter-exchange": "dead_letter.alice.petisco",
            "x-dead-letter-routing-key": DEAD_Q,
        },
        RETRY_Q: {
            "x-message-ttl": 5000,
            "x-dead-letter-exchange": "alice.petisco",
            "x-dead-letter-routing-key": RETRY_Q,
        },
        DEAD_Q: {},
        "store": {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dead_letter.store",
        },
        "retry.store": {
            "x-message-ttl": 5000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "store",
        },
        "dead_letter.store": {},
    }
    for q in topology.queues:
        assert (q.durable, q.auto_delete) == (True, False)
    assert bindings(topology.bindings) == {
        ("alice.petisco", Q, "alice.petisco.1.event.user.created"),
        ("alice.petisco", Q, RETRY_Q),
        ("retry.alice.petisco", RETRY_Q, RETRY_Q),
        ("dead_letter.alice.petisco", DEAD_Q, DEAD_Q),
        ("alice.petisco", "store", "alice.petisco.*.event.#"),
        ("alice.petisco", "store", "alice.petisco.*.command.#"),
        ("retry.alice.petisco", "retry.store", "retry.store"),
        ("dead_letter.alice.petisco", "dead_letter.store", "dead_letter.store"),
    }
    assert len(topology.bindings) == 8
    for binding in topology.bindings:
        assert binding.destination_type == "queue"
        assert dict(binding.arguments) == {}


def test_argument_types_are_exact() -> None:
    topology = compile_spec(load_spec(SEED))
    ttl = queue(topology, RETRY_Q).arguments["x-message-ttl"]
    assert type(ttl) is int  # not "5000", not True
    for q in topology.queues:
        for key, value in q.arguments.items():
            assert type(value) is (int if key == "x-message-ttl" else str), (q.name, key)


def test_topology_is_sorted() -> None:
    topology = compile_spec(load_spec(SEED))
    assert [e.name for e in topology.exchanges] == sorted(e.name for e in topology.exchanges)
    assert [q.name for q in topology.queues] == sorted(q.name for q in topology.queues)
    keys = [(b.source, b.destination, b.routing_key) for b in topology.bindings]
    assert keys == sorted(keys)


SERVICE = """\
organization: alice
defaults:
  retry: {delay_ms: 5000, max_retries: 5}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler:
"""


def test_quorum_subscriber_override_types_its_three_queues() -> None:
    topology = compiled(SERVICE + "            queue_type: quorum\n          audit_handler: {}\n")
    for name in (Q, RETRY_Q, DEAD_Q):
        assert queue(topology, name).arguments["x-queue-type"] == "quorum"
    audit = "alice.petisco.1.event.user.created.audit_handler"
    for name in (audit, f"retry.{audit}", f"dead_letter.{audit}"):
        assert "x-queue-type" not in queue(topology, name).arguments


def test_quorum_default_types_every_queue_including_the_store() -> None:
    text = SERVICE.replace("defaults:\n", "defaults:\n  queue_type: quorum\n") + "store: {}\n"
    topology = compiled(text)
    assert len(topology.queues) == 6
    for q in topology.queues:
        assert q.arguments["x-queue-type"] == "quorum"
        assert q.queue_type == "quorum"


def test_quorum_queues_dead_letter_at_least_once_with_a_delivery_limit() -> None:
    topology = compiled(SERVICE + "            queue_type: quorum\n            retry: {delivery_limit: 7}\n")
    at_least_once = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    main, retry, dead = (dict(queue(topology, name).arguments) for name in (Q, RETRY_Q, DEAD_Q))
    assert at_least_once.items() <= main.items() and main["x-delivery-limit"] == 7
    assert at_least_once.items() <= retry.items() and retry["x-delivery-limit"] == 7  # every tier too
    # the dead-letter queue dead-letters nowhere: no strategy, and no limit that would drop
    assert dead == {"x-queue-type": "quorum"}


def test_quorum_delivery_limit_defaults_to_twenty_and_classic_queues_get_none() -> None:
    text = SERVICE.replace("defaults:\n", "defaults:\n  queue_type: quorum\n") + "store: {}\n"
    topology = compiled(text)
    assert queue(topology, Q).arguments["x-delivery-limit"] == 20
    assert queue(topology, "store").arguments["x-delivery-limit"] == 20
    for q in compiled(SERVICE).queues:
        assert not {"x-delivery-limit", "x-overflow", "x-dead-letter-strategy"} & set(q.arguments)


def test_quorum_settings_as_a_policy_definition() -> None:
    from topology.compile.quorum import as_policy_definition, quorum_arguments

    arguments = quorum_arguments("quorum", dead_letters=True, delivery_limit=5)
    assert as_policy_definition(arguments) == {
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
        "delivery-limit": 5,
    }


def test_quorum_settings_move_into_policies_with_queue_settings_policies() -> None:
    from topology.compile.policies import effective_policy

    text = "queue_settings: policies\n" + SERVICE.replace("defaults:\n", "defaults:\n  queue_type: quorum\n")
    topology = compiled(text)
    assert dict(queue(topology, Q).arguments) == {"x-queue-type": "quorum"}
    main_policy = effective_policy(Q, topology.policies)
    assert main_policy is not None
    assert main_policy.definition["delivery-limit"] == 20
    assert main_policy.definition["dead-letter-strategy"] == "at-least-once"
    retry_policy = effective_policy(RETRY_Q, topology.policies)
    assert retry_policy is not None and retry_policy.definition["overflow"] == "reject-publish"
    assert retry_policy.definition["delivery-limit"] == 20  # every retry tier, like the main queue


def test_classic_override_of_a_quorum_default() -> None:
    text = SERVICE.replace("defaults:\n", "defaults:\n  queue_type: quorum\n") + "            queue_type: classic\n"
    for q in compiled(text).queues:
        assert "x-queue-type" not in q.arguments


def test_retry_override_merges_over_the_defaults() -> None:
    spec = parse_spec(SERVICE + "            retry: {delay_ms: 1000}\n          other: {retry: {max_retries: 1}}\n")
    retries = {s.name: (s.retry.delay_ms, s.retry.max_retries) for s in spec.subscribers()}
    assert retries == {"send_mail_handler": (1000, 5), "other": (5000, 1)}
    topology = compile_spec(spec)
    assert queue(topology, RETRY_Q).arguments["x-message-ttl"] == 1000
    other = "retry.alice.petisco.1.event.user.created.other"
    assert queue(topology, other).arguments["x-message-ttl"] == 5000


def test_store_retry_override_and_custom_queue_name() -> None:
    spec = parse_spec(SERVICE + "store:\n  queue: audit\n  retry: {delay_ms: 250}\n  queue_type: quorum\n")
    store = spec.resolved_store()
    assert store is not None
    assert (store.queue, store.retry.delay_ms, store.retry.max_retries, store.queue_type) == ("audit", 250, 5, "quorum")
    topology = compile_spec(spec)
    assert dict(queue(topology, "retry.audit").arguments) == {
        "x-message-ttl": 250,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "audit",
        "x-queue-type": "quorum",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": 20,
    }
    assert queue(topology, "audit").arguments["x-dead-letter-routing-key"] == "dead_letter.audit"
    assert "x-queue-type" not in queue(topology, Q).arguments


def test_store_is_bound_to_every_service() -> None:
    text = """\
organization: alice
services:
  petisco:
    events:
      UserCreated: {}
  billing:
    commands:
      ChargeCard:
        subscribers:
          charge_card_handler:
store: {}
"""
    topology = compiled(text)
    assert {e.name for e in topology.exchanges} == {
        "alice.petisco",
        "retry.alice.petisco",
        "dead_letter.alice.petisco",
        "alice.billing",
        "retry.alice.billing",
        "dead_letter.alice.billing",
    }
    store_bindings = [b for b in topology.bindings if b.destination in ("store", "retry.store", "dead_letter.store")]
    assert bindings(store_bindings) == {
        ("alice.billing", "store", "alice.billing.*.event.#"),
        ("alice.billing", "store", "alice.billing.*.command.#"),
        ("retry.alice.billing", "retry.store", "retry.store"),
        ("dead_letter.alice.billing", "dead_letter.store", "dead_letter.store"),
        ("alice.petisco", "store", "alice.petisco.*.event.#"),
        ("alice.petisco", "store", "alice.petisco.*.command.#"),
        ("retry.alice.petisco", "retry.store", "retry.store"),
        ("dead_letter.alice.petisco", "dead_letter.store", "dead_letter.store"),
    }
    # A service's exchanges exist even when no one subscribes to its events (the store still does).
    assert not [q for q in topology.queues if q.name.startswith("alice.petisco.")]


def test_commands_use_command_in_their_names() -> None:
    text = """\
organization: alice
services:
  petisco:
    commands:
      PersistUser:
        version: 2
        subscribers:
          persist_user_handler: {}
"""
    topology = compiled(text)
    q = "alice.petisco.2.command.persist.user.persist_user_handler"
    assert {x.name for x in topology.queues} == {q, f"retry.{q}", f"dead_letter.{q}"}
    assert bindings(topology.bindings) == {
        ("alice.petisco", q, "alice.petisco.2.command.persist.user"),
        ("alice.petisco", q, f"retry.{q}"),
        ("retry.alice.petisco", f"retry.{q}", f"retry.{q}"),
        ("dead_letter.alice.petisco", f"dead_letter.{q}", f"dead_letter.{q}"),
    }


def test_no_store_means_no_store_queues() -> None:
    topology = compiled(SERVICE)
    assert {q.name for q in topology.queues} == {Q, RETRY_Q, DEAD_Q}
    assert len(topology.bindings) == 4


def test_vhost_comes_from_the_spec() -> None:
    assert compiled("organization: alice\nvhost: staging\n").vhost == "staging"
