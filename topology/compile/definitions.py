"""RabbitMQ definitions JSON: write a topology as definitions, read definitions as a topology.

Reading normalises what brokers add or omit (see docs: "Normalisation"), so a topology read
back from any supported RabbitMQ version compares equal to the one compiled from the spec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from topology.compile.objects import (
    ApplyTo,
    Binding,
    Exchange,
    Permission,
    Policy,
    Queue,
    TopicPermissions,
    Topology,
    User,
)
from topology.compile.passwords import SHA256

CLASSIC = "classic"


def to_definitions(topology: Topology, include_vhost: bool = True) -> dict[str, Any]:
    """Definitions for `POST /api/definitions` / `rabbitmqctl import_definitions`, in stable order."""
    vhost = topology.vhost
    definitions: dict[str, Any] = {}
    if include_vhost:
        definitions["vhosts"] = [{"name": vhost}]
    definitions["exchanges"] = [exchange_definition(e, vhost) for e in topology.exchanges]
    definitions["queues"] = [queue_definition(q, vhost) for q in topology.queues]
    definitions["bindings"] = [binding_definition(b, vhost) for b in topology.bindings]
    if topology.policies:  # absent rather than empty: `arguments` exports stay as they were
        definitions["policies"] = [policy_definition(p, vhost) for p in topology.policies]
    return definitions


def dumps(definitions: Mapping[str, Any]) -> str:
    """Byte-stable JSON: the same topology always gives the same text."""
    return json.dumps(definitions, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _in_vhost(item: dict[str, Any], vhost: str | None) -> dict[str, Any]:
    """Definitions items carry their vhost in a whole export, not in a vhost's own."""
    if vhost is not None:
        item["vhost"] = vhost
    return item


def exchange_definition(exchange: Exchange, vhost: str | None = None) -> dict[str, Any]:
    return _in_vhost(
        {
            "name": exchange.name,
            "type": exchange.type,
            "durable": exchange.durable,
            "auto_delete": exchange.auto_delete,
            "internal": exchange.internal,
            "arguments": dict(exchange.arguments),
        },
        vhost,
    )


def queue_definition(queue: Queue, vhost: str | None = None) -> dict[str, Any]:
    return _in_vhost(
        {
            "name": queue.name,
            "durable": queue.durable,
            "auto_delete": queue.auto_delete,
            "arguments": dict(queue.arguments),
        },
        vhost,
    )


def binding_definition(binding: Binding, vhost: str | None = None) -> dict[str, Any]:
    return _in_vhost(
        {
            "source": binding.source,
            "destination": binding.destination,
            "destination_type": binding.destination_type,
            "routing_key": binding.routing_key,
            "arguments": dict(binding.arguments),
        },
        vhost,
    )


def policy_definition(policy: Policy, vhost: str | None = None) -> dict[str, Any]:
    """As RabbitMQ exports it (and `PUT /api/policies/{vhost}/{name}` takes it, without name and vhost)."""
    return _in_vhost(
        {
            "name": policy.name,
            "pattern": policy.pattern,
            "apply-to": policy.apply_to,
            "priority": policy.priority,
            "definition": dict(policy.definition),
        },
        vhost,
    )


def user_definition(user: User, with_hash: bool = True) -> dict[str, Any]:
    """As `PUT /api/users/{name}` takes it (plus the name). With the salted hash only for
    what apply sends; the password itself is never part of a definition."""
    item: dict[str, Any] = {"name": user.name, "tags": user.tags}
    if with_hash:
        item["password_hash"] = user.password_hash
        item["hashing_algorithm"] = user.hashing_algorithm
    return item


def permission_definition(permission: Permission) -> dict[str, Any]:
    return {
        "user": permission.user,
        "configure": permission.configure,
        "write": permission.write,
        "read": permission.read,
    }


def topic_permissions_definition(topics: TopicPermissions) -> dict[str, Any]:
    return {
        "user": topics.user,
        "exchanges": [{"exchange": e, "write": w, "read": r} for e, w, r in topics.exchanges],
    }


def user_from_definition(item: Mapping[str, Any]) -> User:
    """From a plan's definition or `GET /api/users/{name}` (whose tags are a list since 3.9)."""
    tags = item.get("tags") or ""
    if isinstance(tags, list):
        tags = ",".join(sorted(str(tag) for tag in tags))
    return User(
        name=item["name"],
        tags=str(tags),
        password_hash=str(item.get("password_hash") or ""),
        hashing_algorithm=str(item.get("hashing_algorithm") or SHA256),
    )


def permission_from_definition(item: Mapping[str, Any]) -> Permission:
    return Permission(user=item["user"], configure=item["configure"], write=item["write"], read=item["read"])


def topic_permissions_from_definition(item: Mapping[str, Any]) -> TopicPermissions:
    exchanges = [(e["exchange"], e["write"], e["read"]) for e in item.get("exchanges", [])]
    return TopicPermissions(user=item["user"], exchanges=tuple(sorted(exchanges)))


def access_definitions(topology: Topology) -> dict[str, Any]:
    """The access objects as plain data (for fingerprints); hashes included, never a password."""
    return {
        "users": [user_definition(u) for u in topology.users],
        "permissions": [permission_definition(p) for p in topology.permissions],
        "topic_permissions": [topic_permissions_definition(t) for t in topology.topic_permissions],
    }


AnyObject = Exchange | Queue | Binding | Policy | User | Permission | TopicPermissions


def object_definition(obj: AnyObject) -> dict[str, Any]:
    if isinstance(obj, User):
        return user_definition(obj)
    if isinstance(obj, Permission):
        return permission_definition(obj)
    if isinstance(obj, TopicPermissions):
        return topic_permissions_definition(obj)
    if isinstance(obj, Exchange):
        return exchange_definition(obj)
    if isinstance(obj, Queue):
        return queue_definition(obj)
    if isinstance(obj, Policy):
        return policy_definition(obj)
    return binding_definition(obj)


_REQUIRED_KEYS = {
    "vhosts": ("name",),
    "exchanges": ("name",),
    "queues": ("name",),
    "bindings": ("source", "destination"),
    "policies": ("name", "pattern"),
}


def definitions_problem(definitions: Mapping[str, Any]) -> str | None:
    """Why a document is not definitions we can read (None when it is), so a hand-edited
    state file gives one clear error rather than a traceback deep in the diff."""
    for section, required in _REQUIRED_KEYS.items():
        items = definitions.get(section, [])
        if not isinstance(items, list):
            return f"{section!r} must be a list"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{section}[{index}] must be an object"
            for key in required:
                if not isinstance(item.get(key), str):
                    return f"{section}[{index}] needs a string {key!r}"
            if not isinstance(item.get("arguments") or {}, dict):
                return f"{section}[{index}].arguments must be an object"
            if not isinstance(item.get("definition") or {}, dict):
                return f"{section}[{index}].definition must be an object"
    return None


def is_system_exchange(name: str) -> bool:
    """The default exchange and `amq.*` belong to the broker, never to a spec."""
    return name == "" or name.startswith("amq.")


def from_definitions(definitions: Mapping[str, Any], vhost: str, default_queue_type: str = CLASSIC) -> Topology:
    """The objects of one vhost in a definitions document, normalised for comparison.

    Items without a `vhost` key (a per-vhost export) are taken to belong to `vhost`.
    """

    def ours(item: Mapping[str, Any]) -> bool:
        return item.get("vhost", vhost) == vhost

    exchanges = [
        exchange_from_definition(item)
        for item in definitions.get("exchanges", [])
        if ours(item) and not is_system_exchange(item.get("name", ""))
    ]
    queues = [queue_from_definition(item, default_queue_type) for item in definitions.get("queues", []) if ours(item)]
    bindings = [
        binding_from_definition(item)
        for item in definitions.get("bindings", [])
        if ours(item) and item.get("source", "") != ""
    ]
    policies = [policy_from_definition(item) for item in definitions.get("policies", []) if ours(item)]
    return Topology.of(vhost, exchanges, queues, bindings, policies)


def policy_from_definition(item: Mapping[str, Any]) -> Policy:
    given = str(item.get("apply-to", "all"))
    # 3.12+ also has classic_queues, quorum_queues and streams: all of them apply to queues.
    apply_to: ApplyTo = "exchanges" if given == "exchanges" else "all" if given == "all" else "queues"
    return Policy(
        name=item["name"],
        pattern=item["pattern"],
        definition=dict(item.get("definition") or {}),
        priority=int(item.get("priority", 0)),
        apply_to=apply_to if apply_to in ("queues", "exchanges") else "all",
    )


def exchange_from_definition(item: Mapping[str, Any]) -> Exchange:
    return Exchange(
        name=item["name"],
        type=item.get("type", "topic"),
        durable=bool(item.get("durable", True)),
        auto_delete=bool(item.get("auto_delete", False)),
        # 4.2.9+/4.3.3+ exports drop `internal`: missing means not internal.
        internal=bool(item.get("internal", False)),
        arguments=dict(item.get("arguments") or {}),
    )


def queue_from_definition(item: Mapping[str, Any], default_queue_type: str = CLASSIC) -> Queue:
    arguments = dict(item.get("arguments") or {})
    return Queue(
        name=item["name"],
        durable=bool(item.get("durable", True)),
        auto_delete=bool(item.get("auto_delete", False)),
        arguments=normalise_queue_arguments(arguments, default_queue_type),
    )


def default_queue_type(vhost_info: dict[str, Any] | None) -> str:
    """The vhost's default queue type: 3.10 reports "undefined" when none is set; 4.x also
    keeps it in the vhost metadata."""
    if not vhost_info:
        return CLASSIC
    metadata = vhost_info.get("metadata") or {}
    value = vhost_info.get("default_queue_type") or metadata.get("default_queue_type")
    return str(value) if value and value != "undefined" else CLASSIC


def normalise_queue_arguments(arguments: Mapping[str, Any], default_queue_type: str = CLASSIC) -> dict[str, Any]:
    """Make `x-queue-type` explicit only when it is not classic.

    4.0+ stores `x-queue-type` on every queue; 3.x only when a vhost default is set. A missing
    type means the vhost's default queue type; a classic type is written as no key at all,
    which is how the spec compiles classic queues.
    """
    result = dict(arguments)
    queue_type = result.pop("x-queue-type", None) or default_queue_type or CLASSIC
    if queue_type != CLASSIC:
        result["x-queue-type"] = queue_type
    return result


def binding_from_definition(item: Mapping[str, Any]) -> Binding:
    return Binding(
        source=item["source"],
        destination=item["destination"],
        destination_type="exchange" if item.get("destination_type") == "exchange" else "queue",
        routing_key=item.get("routing_key", ""),
        arguments=dict(item.get("arguments") or {}),
    )
