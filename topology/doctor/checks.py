"""What RabbitMQ 4.x refuses, drops or changes, found in a snapshot of a broker's vhost.

Pure: plain data in (the management API's listings, and the spec's subscribers when given),
findings out, each naming the object and the fix. The reads live in `topology.doctor.read`,
the output in `topology.doctor.render`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from topology.compile.definitions import policy_from_definition
from topology.compile.objects import Policy
from topology.compile.policies import effective_policy, matches
from topology.compile.quorum import QUORUM
from topology.spec.model import Spec

CLASSIC = "classic"
DEFAULT_DELIVERY_LIMIT = 20  # 4.0+: a quorum queue without `x-delivery-limit` gets this one

# The checks, in the order they are reported; the code is each finding's `check`.
CHECKS = (
    "classic-mirroring",
    "transient-queue",
    "queue-mode",
    "queue-version-1",
    "global-qos",
    "quorum-without-dead-letter",
    "delayed-message-exchange",
    "classic-queue",
)


@dataclass(frozen=True)
class Finding:
    vhost: str
    check: str  # one of CHECKS
    kind: str  # policy, queue, exchange, connection
    name: str
    problem: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {
            "vhost": self.vhost,
            "check": self.check,
            "kind": self.kind,
            "name": self.name,
            "problem": self.problem,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class SpecQueue:
    """A queue a spec declares, with the type the spec gives it and where to change that."""

    name: str
    queue_type: str
    where: str  # e.g. "services.billing.events.UserCreated.subscribers.send_mail_handler"


@dataclass(frozen=True)
class VhostState:
    """One vhost as the management API lists it (plain dicts, as the API returns them)."""

    name: str
    queues: tuple[Mapping[str, Any], ...] = ()
    exchanges: tuple[Mapping[str, Any], ...] = ()
    policies: tuple[Mapping[str, Any], ...] = ()
    channels: tuple[Mapping[str, Any], ...] = ()
    # Connection name -> the connection's listing (client properties, user), for the channels
    # that use global QoS.
    connections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def diagnose(state: VhostState, spec_queues: Iterable[SpecQueue] = (), spec_path: str = "SPEC") -> list[Finding]:
    """Every finding for the vhost, in the order of CHECKS, then by object name."""
    findings = [
        *classic_mirroring(state),
        *transient_queues(state),
        *queue_mode_and_version(state),
        *global_qos(state),
        *quorum_without_dead_letter(state),
        *delayed_message_exchanges(state),
        *movable_classic_queues(state, spec_queues, spec_path),
    ]
    order = {check: index for index, check in enumerate(CHECKS)}
    return sorted(findings, key=lambda f: (order[f.check], f.kind, f.name))


def classic_mirroring(state: VhostState) -> Iterator[Finding]:
    for policy in state.policies:
        keys = sorted(key for key in _definition(policy) if key.startswith("ha-"))
        if not keys:
            continue
        shaped = _policy(policy)
        governed = [q for q in state.queues if shaped is not None and matches(shaped, str(q.get("name")))]
        yield Finding(
            state.name,
            "classic-mirroring",
            "policy",
            str(policy.get("name")),
            f"classic mirroring ({', '.join(keys)}; {_count(governed, 'queue')} {'matches' if len(governed) == 1 else 'match'} it): 4.x removed mirrored "
            "classic queues, so these queues are no longer replicated",
            "replicate with quorum queues instead (in a spec: `queue_type: quorum`, then "
            f"`rabbitform apply SPEC --move-messages`), and remove {', '.join(keys)} from the policy",
        )


def transient_queues(state: VhostState) -> Iterator[Finding]:
    for queue in state.queues:
        if queue.get("durable") is False and not queue.get("exclusive"):
            yield Finding(
                state.name,
                "transient-queue",
                "queue",
                str(queue.get("name")),
                "transient (non-durable) and not exclusive: 4.3 refuses to declare it (deprecated feature "
                "transient_nonexcl_queues) and earlier 4.x releases warn",
                "declare it durable (durability is immutable: delete and re-create it, after draining), or "
                "exclusive if it belongs to one connection",
            )


def queue_mode_and_version(state: VhostState) -> Iterator[Finding]:
    """`x-queue-mode` (any value) and `x-queue-version: 1`, as queue arguments or policy keys."""
    for queue in state.queues:
        arguments = _mapping(queue.get("arguments"))
        name = str(queue.get("name"))
        recreate = (
            "arguments are immutable: re-create the queue without it "
            "(a spec's `rabbitform apply --move-messages` keeps its messages)"
        )
        if "x-queue-mode" in arguments:
            yield Finding(
                state.name,
                "queue-mode",
                "queue",
                name,
                f"argument x-queue-mode={arguments['x-queue-mode']!r}: 4.3 refuses it at declare, so clients "
                "that redeclare the queue fail",
                f"drop x-queue-mode (classic queues v2 keep messages on disk anyway); {recreate}",
            )
        if _is_one(arguments.get("x-queue-version")):
            yield Finding(
                state.name,
                "queue-version-1",
                "queue",
                name,
                "argument x-queue-version=1: 4.3 refuses classic queue version 1 at declare",
                f"drop x-queue-version (version 2 is the only one in 4.x); {recreate}",
            )
    for policy in state.policies:
        definition = _definition(policy)
        name = str(policy.get("name"))
        if "queue-mode" in definition:
            yield Finding(
                state.name,
                "queue-mode",
                "policy",
                name,
                f"policy key queue-mode={definition['queue-mode']!r}: 4.3 refuses it",
                "remove queue-mode from the policy (PUT it again without the key)",
            )
        if _is_one(definition.get("queue-version")):
            yield Finding(
                state.name,
                "queue-version-1",
                "policy",
                name,
                "policy key queue-version=1: 4.3 refuses classic queue version 1",
                "remove queue-version from the policy, or set it to 2",
            )


def global_qos(state: VhostState) -> Iterator[Finding]:
    """Channels whose prefetch is global (basic.qos global=true), one finding per connection."""
    by_connection: dict[str, list[Mapping[str, Any]]] = {}
    for channel in state.channels:
        if uses_global_qos(channel):
            by_connection.setdefault(connection_of(channel), []).append(channel)
    for connection, channels in sorted(by_connection.items()):
        listing = _mapping(state.connections.get(connection))
        properties = _mapping(listing.get("client_properties"))
        named = properties.get("connection_name")
        who = [f"client-provided name {named!r}"] if named else []
        product = properties.get("product")
        if product:
            who.append(f"client {product} {properties.get('version') or ''}".rstrip())
        user = listing.get("user") or channels[0].get("user")
        if user:
            who.append(f"user {user}")
        prefetch = sorted({int(c.get("global_prefetch_count") or 0) for c in channels})
        yield Finding(
            state.name,
            "global-qos",
            "connection",
            connection + (f" ({', '.join(who)})" if who else ""),
            f"{_count(channels, 'channel')} with global QoS (prefetch {', '.join(map(str, prefetch))} per channel): "
            "4.3 denies global QoS by default and quorum queues refuse consumers on such a channel",
            "set the prefetch per consumer (basic.qos with global=false); petisco 2.2.3's RabbitMqConnector "
            "sets global_qos=True on every channel: consume with `rabbitform consume` (bus_runtime) instead",
        )


def uses_global_qos(channel: Mapping[str, Any]) -> bool:
    return _positive(channel.get("global_prefetch_count"))


def connection_of(channel: Mapping[str, Any]) -> str:
    details = _mapping(channel.get("connection_details"))
    return str(details.get("name") or str(channel.get("name", "")).rsplit(" (", 1)[0])


def quorum_without_dead_letter(state: VhostState) -> Iterator[Finding]:
    policies = [policy for policy in map(_policy, state.policies) if policy is not None]
    for queue in state.queues:
        if queue_type(queue) != QUORUM:
            continue
        arguments = _mapping(queue.get("arguments"))
        name = str(queue.get("name"))
        policy = effective_policy(name, policies)
        if "x-dead-letter-exchange" in arguments or (policy and "dead-letter-exchange" in policy.definition):
            continue
        limit = arguments.get("x-delivery-limit")
        if limit is None and policy is not None:
            limit = policy.definition.get("delivery-limit")
        if isinstance(limit, int) and limit < 0:
            continue  # redelivered for ever, by choice: nothing is dropped
        at = limit if isinstance(limit, int) and limit > 0 else DEFAULT_DELIVERY_LIMIT
        yield Finding(
            state.name,
            "quorum-without-dead-letter",
            "queue",
            name,
            f"quorum queue without a dead-letter target: 4.x drops a message at delivery {at}"
            + ("" if "x-delivery-limit" in arguments else " (its default delivery limit)")
            + " and nothing keeps it",
            "give it a dead-letter exchange (argument x-dead-letter-exchange, or a policy with "
            "dead-letter-exchange), or, once on 4.x, x-delivery-limit -1 to redeliver without limit",
        )


def delayed_message_exchanges(state: VhostState) -> Iterator[Finding]:
    for exchange in state.exchanges:
        if exchange.get("type") == "x-delayed-message":
            yield Finding(
                state.name,
                "delayed-message-exchange",
                "exchange",
                str(exchange.get("name")),
                "type x-delayed-message: the delayed-message-exchange plugin cannot run on 4.3, so this exchange "
                "and the messages it holds back are lost on upgrade",
                "delay with TTL retry queues instead (rabbitform's retry tiers) or 4.3's native delayed retry "
                "of quorum queues; drain the exchange and delete it before upgrading",
            )


def movable_classic_queues(state: VhostState, spec_queues: Iterable[SpecQueue], spec_path: str) -> Iterator[Finding]:
    """The spec's classic queues that exist on the broker: a spec moves them to quorum (which 4.x
    replicates) with `queue_type: quorum` and `apply --move-messages`, keeping their messages."""
    present = {str(q.get("name")): q for q in state.queues}
    for wanted in spec_queues:
        queue = present.get(wanted.name)
        if queue is None or queue_type(queue) != CLASSIC or not queue.get("durable", True):
            continue
        if wanted.queue_type == QUORUM:
            fix = f"the spec already says quorum: `rabbitform apply {spec_path} --move-messages` moves it"
        else:
            fix = (
                f"set `queue_type: quorum` at {wanted.where} in {spec_path} (or defaults.queue_type), then "
                f"`rabbitform apply {spec_path} --move-messages` moves its messages into a quorum queue"
            )
        yield Finding(
            state.name,
            "classic-queue",
            "queue",
            wanted.name,
            "classic queue: not replicated in 4.x (mirroring is gone); quorum is the replicated type",
            fix,
        )


def spec_queues(spec: Spec) -> list[SpecQueue]:
    """The main queues of a spec's subscribers and its store, with their type and where the
    spec sets it (their retry and dead-letter queues follow the same setting)."""
    found = []
    for sub in spec.subscribers():
        section = "events" if sub.kind == "event" else "commands"
        where = f"services.{sub.service}.{section}.{sub.message_class}.subscribers.{sub.name}"
        found.append(SpecQueue(sub.queue, sub.queue_type, where))
    store = spec.resolved_store()
    if store is not None:
        found.append(SpecQueue(store.queue, store.queue_type, "store"))
    return found


def queue_type(queue: Mapping[str, Any]) -> str:
    """The listing's `type`, else the argument (a listing without either is classic)."""
    value = queue.get("type") or (_mapping(queue.get("arguments"))).get("x-queue-type") or CLASSIC
    return str(value)


def _definition(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(policy.get("definition"))


def _mapping(value: Any) -> Mapping[str, Any]:
    """A listing's object field, or {} when the broker (or a file) gives something else."""
    return value if isinstance(value, Mapping) else {}


def _policy(listing: Mapping[str, Any]) -> Policy | None:
    """The listing as a Policy; None for one too malformed to match anything."""
    if not (isinstance(listing.get("name"), str) and isinstance(listing.get("pattern"), str)):
        return None
    if not isinstance(listing.get("priority", 0), int) or not isinstance(listing.get("definition") or {}, Mapping):
        return None
    return policy_from_definition(listing)


def _is_one(value: Any) -> bool:
    return (value == 1 and not isinstance(value, bool)) or value == "1"


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _count(items: Iterable[Any], noun: str) -> str:
    n = len(list(items))
    return f"{n} {noun}{'' if n == 1 else 's'}"
