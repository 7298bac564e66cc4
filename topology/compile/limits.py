"""What the broker would refuse in what a spec compiles to, found at `validate` time.

Checked on the compiled topology, not on the spec's fields, so every name a layout or a future
queue kind produces is covered by construction: exchanges, queues, policies, users, and the
names apply derives from them (the lock queue `rabbitform-lock:<owner>`, the holding queue
`rabbitform-moving.<queue>` a `--move-messages` uses). Values too: TTLs and delivery limits in
queue arguments and policy definitions must be in the broker's ranges. Each problem is located
at the spec field it comes from (the subscriber, the store, the service, the name).

Pure: a `Spec` in, (field path, message) pairs out.
"""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.compile.compiler import compile_spec
from topology.compile.layouts import strategy
from topology.compile.objects import Queue
from topology.spec.model import Spec

MAX_NAME_BYTES = 255
# RabbitMQ refuses a TTL over ten years (measured on 3.10.8: 315,360,000,000 ms is accepted, one more is not).
MAX_TTL_MS = 315_360_000_000
# AMQP's signed 64-bit integer: the largest a queue argument can carry to the broker.
MAX_AMQP_INTEGER = 2**63 - 1
TTL_KEYS = ("x-message-ttl", "x-expires", "message-ttl", "expires")
LIMIT_KEYS = ("x-delivery-limit", "delivery-limit", "x-max-length", "max-length")
LOCK_PREFIX = "rabbitform-lock:"  # topology.state.lock.LOCK_PREFIX (state sits above compile)

FieldPath = tuple[str, ...]


def limit_problems(spec: Spec) -> list[tuple[FieldPath, str]]:
    """Every name over 255 bytes and every value out of the broker's range, at its spec field.

    Walks what the compiler builds, unit by unit (each subscriber's and the store's objects from
    the spec's layout, the layout's exchanges, the policies): each object is attributed to the
    unit that made it, in one pass."""
    layout = strategy(spec.layout)
    org = spec.organization
    problems: list[tuple[FieldPath, str]] = []
    owner_path: FieldPath = ("name",) if spec.name else ("organization",)
    problems.extend((owner_path, m) for m in _too_long(LOCK_PREFIX + spec.owner, "lock queue", "apply takes a lock"))
    units: list[tuple[FieldPath, list[Queue]]] = []
    for sub in spec.subscribers():
        where: FieldPath = ("services", sub.service, f"{sub.kind}s", sub.message_class, "subscribers", sub.name)
        units.append((where, layout.subscriber_objects(org, sub)[0]))
    store = spec.resolved_store()
    if store is not None:
        units.append((("store", "queue"), layout.store_objects(org, sorted(spec.services), store)[0]))
    for path, queues in units:
        for queue in queues:
            problems.extend((path, m) for m in _too_long(queue.name, "queue"))
            holding = naming.holding_queue(queue.name)
            problems.extend((path, m) for m in _too_long(holding, "holding queue", "--move-messages"))
            for key, value in queue.arguments.items():
                field = _setting_field(spec, path, queue.name, key)
                problems.extend((field, m) for m in _out_of_range(queue.name, key, value))
    for service in sorted(spec.services):
        for name in naming.layout_exchanges(org, [service], False, spec.layout):
            problems.extend((("services", service), m) for m in _too_long(name, "exchange"))
    if store is not None:
        for name in naming.layout_exchanges(org, [], True, spec.layout):
            problems.extend((("store", "queue"), m) for m in _too_long(name, "exchange"))
    if spec.queue_settings == "policies":
        for policy in compile_spec(spec).policies:
            of = _service_of(spec, policy.name)
            problems.extend((of, m) for m in _too_long(policy.name, "policy"))
            for key, value in policy.definition.items():
                field = _setting_field(spec, of, policy.name, key)
                problems.extend((field, m) for m in _out_of_range(policy.name, key, value))
    for user in spec.access:
        problems.extend((("access", user), m) for m in _too_long(user, "user"))
    return _first_per_path(problems)


def _service_of(spec: Spec, name: str) -> FieldPath:
    """The service whose exchange name a policy's name holds (the longest that fits), else the organization."""
    found = [s for s in spec.services if naming.exchange(spec.organization, s) + "." in name + "."]
    return ("services", max(found, key=len)) if found else ("organization",)


def _setting_field(spec: Spec, path: FieldPath, owner: str, key: str) -> FieldPath:
    """The spec field a queue argument or policy key comes from: the subscriber's (or store's)
    own setting when it has one, else the one in `defaults`."""
    settings: tuple[FieldPath, ...]
    if key in TTL_KEYS and owner.startswith(naming.RETRY_PREFIX):
        # a ladder's tiers come from `delays_ms` (or `delay_ms` and its backoff)
        settings = (("retry", "delays_ms"), ("retry", "delay_ms"))
    elif key in TTL_KEYS:
        settings = (("main_queue_ttl_ms",),)
    elif key in ("x-delivery-limit", "delivery-limit"):
        settings = (("retry", "delivery_limit"),)
    else:
        return path
    entry: Any = None
    if path[:1] == ("store",):
        entry = spec.store
    elif len(path) == 6:  # services.S.events|commands.C.subscribers.N
        service = spec.services[path[1]]
        entry = getattr(service, path[2])[path[3]].subscribers[path[5]]
    for setting in settings:
        if _setting_of(entry, setting) is not None:
            return (*(path[:1] if path[:1] == ("store",) else path), *setting)
    for setting in settings:
        if _setting_of(spec.defaults, setting) is not None and setting[-1] != "delay_ms":
            return ("defaults", *setting)
    return ("defaults", *settings[-1])


def _setting_of(holder: Any, setting: FieldPath) -> Any:
    for part in setting:
        holder = getattr(holder, part, None) if holder is not None else None
    return holder


def _too_long(name: str, what: str, why: str = "") -> list[str]:
    size = len(name.encode("utf-8"))
    if size <= MAX_NAME_BYTES:
        return []
    because = f" ({why})" if why else ""
    return [
        f"{what} name {name!r}{because} is {size} bytes; RabbitMQ allows at most {MAX_NAME_BYTES}: use shorter names"
    ]


def _out_of_range(owner: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool):
        return []
    if key in TTL_KEYS and not 0 <= value <= MAX_TTL_MS:
        return [f"{key} {value} of {owner!r} is out of RabbitMQ's range 0..{MAX_TTL_MS} ms (ten years)"]
    if key in LIMIT_KEYS and not 0 <= value <= MAX_AMQP_INTEGER:
        return [f"{key} {value} of {owner!r} is out of RabbitMQ's range 0..{MAX_AMQP_INTEGER}"]
    return []


def _first_per_path(problems: list[tuple[FieldPath, str]]) -> list[tuple[FieldPath, str]]:
    """One problem per field, in the order found: the first value problem, else the longest name
    (the one to shorten the field for)."""
    kept: dict[FieldPath, str] = {}
    for path, message in problems:
        if path not in kept or _size(message) > _size(kept[path]):
            kept[path] = message
    return list(kept.items())


def _size(message: str) -> int:
    """The byte count a name problem states (0 for a value problem: the first one stays)."""
    head, found, _tail = message.partition(" bytes; RabbitMQ allows")
    return int(head.rsplit(" ", 1)[-1]) if found else 0
