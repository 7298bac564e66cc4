"""Objects -> spec: the pure part of `rabbitform import`.

Names are parsed with the layout's rules (topology.naming); retry delays, queue types and
(layout petisco) main-queue TTLs are read from queue arguments. The spec found is then
compiled and compared with the objects it would own, so whatever does not fit the layout is
reported, never silently dropped: each difference is a warning saying what `rabbitform plan`
would do with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from topology import naming
from topology.compile.compiler import compile_spec
from topology.compile.objects import Queue, Topology
from topology.compile.policies import effective_arguments
from topology.naming import Layout, MessageKind
from topology.plan.diff import diff
from topology.plan.scope import Scope
from topology.spec.model import MAX_LADDER_STEPS, NO_TTL, Spec

DEFAULT_DELAY_MS = 5000
DEFAULT_MAX_RETRIES = 5

# A main queue's TTL as a spec writes it: milliseconds or `none`; None when it has none the
# spec can write (plan then reports the queue).
MainTtl = int | str | None


@dataclass(frozen=True)
class FoundSubscriber:
    service: str
    kind: MessageKind
    class_name: str
    version: int
    name: str
    delay_ms: int | None
    queue_type: str
    main_ttl: MainTtl = None
    ladder: tuple[int, ...] = ()  # the delays of a retry ladder of two tiers or more


@dataclass(frozen=True)
class KeptName:
    """A message whose class name cannot be rebuilt from the broker's name."""

    service: str
    kind: MessageKind
    broker_name: str
    version: int
    queues: tuple[str, ...]


@dataclass(frozen=True)
class Imported:
    """What `rabbitform import` writes: the spec as plain data, plus what did not fit."""

    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    kept_names: list[KeptName] = field(default_factory=list)
    subscribers: int = 0


def import_spec(topology: Topology, organization: str, layout: Layout = naming.DEFAULT_LAYOUT) -> Imported:
    """The spec that owns `organization`'s objects in `topology` (one vhost), built by `layout`."""
    if not naming.ORGANIZATION_PATTERN.match(organization):
        raise ValueError(f"{organization!r} is not an organization name (lower case letters, digits, '_', '-')")
    queues = {q.name: q for q in topology.queues}
    warnings: list[str] = []
    services = _services(topology, organization)
    found: list[FoundSubscriber] = []
    unparsed: dict[str, str] = {}
    kept: dict[tuple[str, MessageKind, str, int], list[str]] = {}
    prefix = organization + "."
    for queue in topology.queues:
        if not queue.name.startswith(prefix):
            continue
        parsed = _parse_queue(queue.name[len(prefix) :], layout)
        if isinstance(parsed, str):
            unparsed[queue.name] = parsed
            continue
        service, version, kind, message, subscriber = parsed
        services.add(service)
        class_name = naming.class_name_from_routing_name(message, layout)
        if class_name is None:
            kept.setdefault((service, kind, message, version), []).append(queue.name)
            continue
        delay, ladder = _delays(queues, queue.name, topology)
        main_ttl = _main_ttl(queue, topology) if layout == "petisco" else None
        found.append(
            FoundSubscriber(service, kind, class_name, version, subscriber, delay, queue.queue_type, main_ttl, ladder)
        )
    store = _store(topology, organization, sorted(services), layout)
    document = _document(organization, topology.vhost, layout, sorted(services), found, store, queues, warnings)
    heads = tuple(f"{head}{organization}." for head in ("", naming.RETRY_PREFIX, naming.DEAD_LETTER_PREFIX))
    if any(policy.name.startswith(heads) for policy in topology.policies):
        document = _with_queue_settings(document, "policies")
    kept_names = [KeptName(s, k, n, v, tuple(q)) for (s, k, n, v), q in sorted(kept.items())]
    for name in kept_names:
        warnings.append(
            f"{name.kind} {name.broker_name!r} v{name.version} of service {name.service!r}: no CamelCase class name "
            f"gives back this name under layout {layout}; kept out of the spec (queues: {', '.join(name.queues)})"
        )
    warnings.extend(_differences(document, topology, unparsed, layout))
    warnings.extend(_unowned_names(document, topology, organization, layout))
    return Imported(document, warnings, kept_names, len(found))


def _services(topology: Topology, organization: str) -> set[str]:
    """Services named by main exchanges `<org>.<service>` (subscriber queues name more). A lone
    `retry.`/`dead_letter.` exchange names none: petisco's `retry.<org>.store` is not a service."""
    prefix = organization + "."
    return {
        e.name[len(prefix) :]
        for e in topology.exchanges
        if e.name.startswith(prefix) and naming.SERVICE_PATTERN.match(e.name[len(prefix) :])
    }


def _parse_queue(rest: str, layout: Layout) -> tuple[str, int, MessageKind, str, str] | str:
    """`<service>.<version>.<kind>.<message>.<subscriber>` -> its parts, or why it does not fit."""
    parts = rest.split(".")
    if len(parts) < 5 or (layout == "petisco" and len(parts) != 5):
        shape = "<service>.<version>.<event|command>.<message>.<subscriber>"
        return f"its name is not <organization>.{shape} of layout {layout}"
    service, version, kind, subscriber = parts[0], parts[1], parts[2], parts[-1]
    message = ".".join(parts[3:-1])
    if not naming.SERVICE_PATTERN.match(service):
        return f"{service!r} is not a service name"
    if not (version.isascii() and version.isdigit()) or str(int(version)) != version or int(version) < 1:
        return f"{version!r} is not a version (an integer >= 1)"
    if kind not in naming.MESSAGE_KINDS:
        return f"{kind!r} is neither 'event' nor 'command'"
    if not naming.SUBSCRIBER_PATTERN.match(subscriber):
        return f"{subscriber!r} is not a subscriber name"
    return service, int(version), kind, message, subscriber


def _with_queue_settings(document: dict[str, Any], settings: str) -> dict[str, Any]:
    """The document with `queue_settings` before `defaults` (key order is the written order)."""
    result: dict[str, Any] = {}
    for key, value in document.items():
        if key == "defaults":
            result["queue_settings"] = settings
        result[key] = value
    return result


def _ttl(queue: Queue | None, topology: Topology) -> int | None:
    """A retry queue's delay: its `x-message-ttl`, from its arguments or its effective policy."""
    value = effective_arguments(queue, topology.policies).get("x-message-ttl") if queue is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _delays(queues: dict[str, Queue], queue: str, topology: Topology) -> tuple[int | None, tuple[int, ...]]:
    """(delay, ladder) of a queue's retry tiers: `retry.Q`, `retry.Q.2`, ... while they exist.
    One tier: its delay and no ladder; several: no single delay (it does not count toward the
    spec's default) and the ladder."""
    delays: list[int | None] = []
    for tier in range(1, MAX_LADDER_STEPS + 1):
        retry = queues.get(naming.retry_tier_queue(queue, tier))
        if retry is None:
            break
        delays.append(_ttl(retry, topology))
    if len(delays) <= 1:
        return (delays[0] if delays else None), ()
    if any(d is None for d in delays):
        return delays[0], ()  # a tier without a TTL: the plan's differences will say so
    return None, tuple(d for d in delays if d is not None)


def _main_ttl(queue: Queue, topology: Topology) -> MainTtl:
    """A petisco main queue's TTL: petisco declares none when its main_ttl is None."""
    if "x-message-ttl" not in effective_arguments(queue, topology.policies):
        return NO_TTL
    return _ttl(queue, topology)


@dataclass(frozen=True)
class FoundStore:
    queue: str
    delay_ms: int | None
    queue_type: str
    main_ttl: MainTtl = None
    ladder: tuple[int, ...] = ()


def _store(topology: Topology, organization: str, services: list[str], layout: Layout) -> FoundStore | None:
    """The store: the queue bound to the organization's exchanges with the layout's store patterns."""
    queues = {q.name: q for q in topology.queues}
    candidates: set[str] = set()
    for binding in topology.bindings:
        if binding.destination_type != "queue":
            continue
        for service in services:
            if binding.source != naming.exchange(organization, service):
                continue
            patterns = (
                naming.petisco_store_patterns()
                if layout == "petisco"
                else naming.service_patterns(organization, service)
            )
            if binding.routing_key in patterns:
                candidates.add(binding.destination)
    if layout == "petisco":
        has_exchanges = set(naming.petisco_store_exchanges(organization)) <= {e.name for e in topology.exchanges}
        if has_exchanges and naming.PETISCO_STORE_QUEUE in queues:
            candidates.add(naming.PETISCO_STORE_QUEUE)
        candidates &= {naming.PETISCO_STORE_QUEUE}
    candidates = {c for c in candidates if c in queues and naming.QUEUE_NAME_PATTERN.match(c)}
    if not candidates:
        return None
    name = sorted(candidates)[0]
    main = queues[name]
    delay, ladder = _delays(queues, name, topology)
    main_ttl = _main_ttl(main, topology) if layout == "petisco" else None
    return FoundStore(name, delay, main.queue_type, main_ttl, ladder)


def _most_common(values: Iterable[Any], fallback: Any) -> Any:
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return fallback
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[0][0]


def _document(
    organization: str,
    vhost: str,
    layout: Layout,
    services: list[str],
    found: list[FoundSubscriber],
    store: FoundStore | None,
    queues: dict[str, Queue],
    warnings: list[str],
) -> dict[str, Any]:
    everyone: list[FoundSubscriber | FoundStore] = [*found, *([store] if store else [])]
    default_delay = _most_common((s.delay_ms for s in everyone), DEFAULT_DELAY_MS)
    default_type = _most_common((s.queue_type for s in everyone), "classic")
    document: dict[str, Any] = {"organization": organization, "vhost": vhost}
    if layout != naming.DEFAULT_LAYOUT:
        document["layout"] = layout
    document["defaults"] = {"queue_type": default_type}
    default_main_ttl: MainTtl = None  # the rabbitform layout has no main-queue TTL to write
    if layout == "petisco":
        default_main_ttl = _most_common((s.main_ttl for s in everyone), naming.PETISCO_MAIN_TTL_MS)
        document["defaults"]["main_queue_ttl_ms"] = default_main_ttl
    document["defaults"]["retry"] = {"delay_ms": default_delay, "max_retries": DEFAULT_MAX_RETRIES}
    tree: dict[str, Any] = {service: {} for service in services}
    for sub in sorted(found, key=lambda s: (s.service, s.kind, s.class_name, s.version, s.name)):
        messages = tree[sub.service].setdefault(f"{sub.kind}s", {})
        message = messages.setdefault(sub.class_name, {"version": sub.version, "subscribers": {}})
        if message["version"] != sub.version:
            warnings.append(
                f"{sub.kind} {sub.class_name} of service {sub.service!r} has subscribers of versions "
                f"{message['version']} and {sub.version}; a spec holds one version per class: "
                f"subscriber {sub.name!r} of v{sub.version} left out"
            )
            continue
        message["subscribers"][sub.name] = _overrides(sub, default_main_ttl, default_delay, default_type)
    document["services"] = tree
    if store is not None:
        document["store"] = {"queue": store.queue, **_overrides(store, default_main_ttl, default_delay, default_type)}
    return document


def _overrides(
    found: FoundSubscriber | FoundStore, main_ttl: MainTtl, delay_ms: int, queue_type: str
) -> dict[str, Any]:
    """What a subscriber (or the store) sets apart from the spec's defaults."""
    entry: dict[str, Any] = {}
    if found.main_ttl is not None and found.main_ttl != main_ttl:
        entry["main_queue_ttl_ms"] = found.main_ttl
    if found.ladder:
        entry["retry"] = {"delays_ms": list(found.ladder)}
        if len(found.ladder) > DEFAULT_MAX_RETRIES:  # every tier must be reachable, or plan deletes it
            entry["retry"]["max_retries"] = len(found.ladder)
    elif found.delay_ms is not None and found.delay_ms != delay_ms:
        entry["retry"] = {"delay_ms": found.delay_ms}
    if found.queue_type != queue_type and found.queue_type in ("classic", "quorum"):
        entry["queue_type"] = found.queue_type
    return entry


def _differences(document: dict[str, Any], topology: Topology, unparsed: dict[str, str], layout: Layout) -> list[str]:
    """What `rabbitform plan` would still change after import: objects that do not fit the layout."""
    spec = Spec.model_validate(document)
    scope = Scope.of_spec(spec)
    changes, _ = diff(compile_spec(spec), scope.filter(topology))
    warnings = []
    verbs = {
        "create": "is missing from the broker",
        "delete": "is not in the spec",
        "replace": "differs",
        "update": "differs",
    }
    consequence = {"create": "create it", "delete": "delete it", "replace": "replace it", "update": "update it"}
    for change in changes:
        why = unparsed.get(change.name) if change.kind == "queue" else None
        detail = f" ({why})" if why else (f" ({change.reason})" if change.reason else "")
        warnings.append(
            f"{change.kind} {change.name} {verbs[change.action]}{detail}: it does not fit layout {layout}; "
            f"`rabbitform plan` would {consequence[change.action]}"
        )
    return warnings


def _unowned_names(document: dict[str, Any], topology: Topology, organization: str, layout: Layout) -> list[str]:
    """Objects named after the organization that the spec does not own: plan leaves them alone."""
    scope = Scope.of_spec(Spec.model_validate(document))
    heads = tuple(f"{head}{organization}." for head in ("", naming.RETRY_PREFIX, naming.DEAD_LETTER_PREFIX))
    warnings = []
    for exchange in topology.exchanges:
        if exchange.name.startswith(heads) and not scope.owns_exchange(exchange.name):
            warnings.append(
                f"exchange {exchange.name} does not fit layout {layout}: left out, and plan leaves it alone"
            )
    for queue in topology.queues:
        if queue.name.startswith(heads) and not scope.owns_queue(queue.name):
            warnings.append(f"queue {queue.name} does not fit layout {layout}: left out, and plan leaves it alone")
    return warnings
