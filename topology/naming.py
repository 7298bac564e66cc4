"""The naming convention of the event bus, in one place.

`<organization>.<service>.<version>.<event|command>.<event_name>.<handler>` names every queue
and routing key; the planner (`topology`) and the runtime (`bus_runtime`) both call these
functions so that what `apply` creates is exactly what services publish to and consume from.
"""

from __future__ import annotations

import re
from typing import Literal

MessageKind = Literal["event", "command"]
MESSAGE_KINDS: tuple[MessageKind, ...] = ("event", "command")

RETRY_PREFIX = "retry."
DEAD_LETTER_PREFIX = "dead_letter."
DEFAULT_STORE_QUEUE = "store"

# Identifier rules, shared by the spec validator and the runtime. `\Z`, not `$`: `$` also
# matches before a final newline, and a YAML block scalar would smuggle one into a name.
ORGANIZATION_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*\Z")
SERVICE_PATTERN = ORGANIZATION_PATTERN
SUBSCRIBER_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\Z")
MESSAGE_CLASS_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")
QUEUE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*\Z")

_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")


def message_name(class_name: str) -> str:
    """`UserCreated` -> `user.created`; acronyms stay one word: `HTTPRequestFailed` -> `http.request.failed`."""
    if not MESSAGE_CLASS_PATTERN.match(class_name):
        raise ValueError(f"{class_name!r} is not a CamelCase message class name")
    split = _WORD_BOUNDARY.sub(r"\1.\2", _ACRONYM_BOUNDARY.sub(r"\1.\2", class_name))
    return split.lower()


def exchange(organization: str, service: str) -> str:
    """The service's main topic exchange: `alice.petisco`."""
    return f"{organization}.{service}"


def retry_exchange(organization: str, service: str) -> str:
    return RETRY_PREFIX + exchange(organization, service)


def dead_letter_exchange(organization: str, service: str) -> str:
    return DEAD_LETTER_PREFIX + exchange(organization, service)


def routing_key(organization: str, service: str, version: int, kind: MessageKind, name: str) -> str:
    """`alice.petisco.1.event.user.created`; `name` is the dotted message name."""
    return f"{organization}.{service}.{version}.{kind}.{name}"


def subscriber_queue(organization: str, service: str, version: int, kind: MessageKind, name: str, handler: str) -> str:
    """`alice.petisco.1.event.user.created.send_mail_handler`."""
    return f"{routing_key(organization, service, version, kind, name)}.{handler}"


def retry_queue(queue: str) -> str:
    """Where a failed message waits its TTL: `retry.<queue>` (also its routing key)."""
    return RETRY_PREFIX + queue


def retry_tier_queue(queue: str, tier: int) -> str:
    """The retry queue of one step of a retry ladder: tier 1 is `retry.<queue>`, tier k > 1
    `retry.<queue>.<k>` (also its routing key on the retry exchange). Named by position, not
    delay, so changing a delay keeps the queue; a subscriber queue ends in a handler name, which
    starts with a letter, so `<queue>.<k>` never names another subscriber's queue."""
    if tier < 1:
        raise ValueError(f"retry tiers count from 1, not {tier}")
    return retry_queue(queue) if tier == 1 else f"{retry_queue(queue)}.{tier}"


def retry_tier_queues(queue: str, tiers: int) -> list[str]:
    """The retry queues of a ladder of `tiers` delays, tier 1 first."""
    return [retry_tier_queue(queue, tier) for tier in range(1, max(1, tiers) + 1)]


_TIER_SUFFIX = re.compile(r"\.([1-9][0-9]*)\Z")


def retry_tier_of(name: str) -> tuple[str, int] | None:
    """(queue, tier) of a retry queue name (`retry.Q` -> (Q, 1), `retry.Q.3` -> (Q, 3)), or None
    when `name` is not a retry queue. The inverse of `retry_tier_queue`."""
    if not name.startswith(RETRY_PREFIX):
        return None
    rest = name[len(RETRY_PREFIX) :]
    suffix = _TIER_SUFFIX.search(rest)
    if suffix is not None and int(suffix.group(1)) > 1:
        return rest[: suffix.start()], int(suffix.group(1))
    return rest, 1


def dead_letter_queue(queue: str) -> str:
    """Where a message ends after its last retry: `dead_letter.<queue>` (also its routing key)."""
    return DEAD_LETTER_PREFIX + queue


def service_patterns(organization: str, service: str) -> list[str]:
    """Topic patterns that match every event and command of a service (names contain dots: `#`)."""
    return [f"{organization}.{service}.*.{kind}.#" for kind in MESSAGE_KINDS]


def owned_queue_prefixes(organization: str, service: str) -> tuple[str, ...]:
    """Queue-name prefixes that a spec owns for one of its services."""
    base = exchange(organization, service) + "."
    return (base, RETRY_PREFIX + base, DEAD_LETTER_PREFIX + base)


def service_exchanges(organization: str, service: str) -> tuple[str, str, str]:
    return (
        exchange(organization, service),
        retry_exchange(organization, service),
        dead_letter_exchange(organization, service),
    )


def store_queues(queue: str) -> tuple[str, str, str]:
    return (queue, retry_queue(queue), dead_letter_queue(queue))


# --- Layouts -------------------------------------------------------------------------------
# A layout is the set of objects a bus is built from. `rabbitform` is the one above; `petisco`
# is exactly what petisco 2.2.3's RabbitMqMessageConfigurer creates (tests/fixtures/petisco_layout.json),
# so services of both can share one bus. The names they share (exchanges, `retry.`/`dead_letter.`
# queues and routing keys) are the functions above; what differs is below.

Layout = Literal["rabbitform", "petisco"]
LAYOUTS: tuple[Layout, ...] = ("rabbitform", "petisco")
DEFAULT_LAYOUT: Layout = "rabbitform"

# petisco's default (QueueConfig.default()): its main queues expire messages after 5 s too;
# a spec changes it with `main_queue_ttl_ms`, as a petisco service does with its QueueConfig.
PETISCO_MAIN_TTL_MS = 5000
# petisco hard-codes its store queue names: one store per vhost, whatever the organization.
PETISCO_STORE_QUEUE = "store"
_PETISCO_CAPITAL = re.compile(r"(?<!^)(?=[A-Z])")
_PETISCO_SEGMENT = re.compile(r"^[a-z][a-z0-9]*(_[a-z][a-z0-9]*)*\Z")
_RABBITFORM_NAME = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*\Z")


def petisco_message_name(class_name: str) -> str:
    """petisco 2.2.3's rule: an underscore before every capital, then lower case.

    `UserCreated` -> `user_created`; `HTTPRequestFailed` -> `h_t_t_p_request_failed` (petisco
    splits every capital, acronyms included)."""
    if not MESSAGE_CLASS_PATTERN.match(class_name):
        raise ValueError(f"{class_name!r} is not a CamelCase message class name")
    return _PETISCO_CAPITAL.sub("_", class_name).lower()


def routing_name(class_name: str, layout: Layout = DEFAULT_LAYOUT) -> str:
    """The message part of routing keys and queue names: `user.created` (rabbitform) or
    `user_created` (petisco)."""
    return petisco_message_name(class_name) if layout == "petisco" else message_name(class_name)


def routing_name_of_wire_name(wire_name: str, layout: Layout = DEFAULT_LAYOUT) -> str:
    """The same for a message known only by its dotted wire name (a message read off the wire)."""
    return wire_name.replace(".", "_") if layout == "petisco" else wire_name


def wire_name(class_name: str, layout: Layout = DEFAULT_LAYOUT) -> str:
    """`data.type` in the body: petisco writes its underscored name with dots (`user.created`,
    `h.t.t.p.request.failed`)."""
    return petisco_message_name(class_name).replace("_", ".") if layout == "petisco" else message_name(class_name)


def class_name_from_routing_name(name: str, layout: Layout = DEFAULT_LAYOUT) -> str | None:
    """Rebuild a message class name from the name in a queue or routing key, or None when no
    class name gives back exactly `name` (then the broker's name must be kept as it is).

    `user.created` or `user_created` -> `UserCreated`; petisco's `h_t_t_p_request_failed` ->
    `HTTPRequestFailed`. rabbitform's `http.request.failed` gives `HttpRequestFailed`, which
    names the same queues as `HTTPRequestFailed`."""
    pattern, separator = (_PETISCO_SEGMENT, "_") if layout == "petisco" else (_RABBITFORM_NAME, ".")
    if not pattern.match(name):
        return None
    candidate = "".join(word[:1].upper() + word[1:] for word in name.split(separator))
    if not MESSAGE_CLASS_PATTERN.match(candidate) or routing_name(candidate, layout) != name:
        return None
    return candidate


def petisco_store_exchanges(organization: str) -> tuple[str, str]:
    """petisco's store retries and dead letters travel through these two exchanges."""
    return (f"{RETRY_PREFIX}{organization}.store", f"{DEAD_LETTER_PREFIX}{organization}.store")


def petisco_store_patterns() -> list[str]:
    """petisco binds the store with one word per part: its message names have no dots."""
    return [f"*.*.*.{kind}.*" for kind in MESSAGE_KINDS]


def store_retry_exchange(organization: str, service: str, layout: Layout = DEFAULT_LAYOUT) -> str:
    """Where the store's failed messages are republished with routing key `retry.<store>`."""
    if layout == "petisco":
        return petisco_store_exchanges(organization)[0]
    return retry_exchange(organization, service)


def layout_exchanges(organization: str, services: list[str], store: bool, layout: Layout = DEFAULT_LAYOUT) -> list[str]:
    """Every exchange a spec owns: its services' three, plus petisco's two store exchanges."""
    names = [name for service in services for name in service_exchanges(organization, service)]
    if store and layout == "petisco":
        names.extend(petisco_store_exchanges(organization))
    return names


POLICY_TIER_MARKER = "ttl-"
HOLDING_PREFIX = "rabbitform-moving."


def retry_policy(
    organization: str,
    service: str,
    delay_ms: int | None = None,
    queue_type: str | None = None,
    delivery_limit: int | None = None,
) -> str:
    """The policy of one tier of a service's retry queues, named after how it differs from the
    spec's defaults (None: the default), so that changing a default delay updates it in place:
    `retry.alice.petisco.defaults`, `retry.alice.petisco.defaults-quorum`,
    `retry.alice.petisco.ttl-1000ms`, `retry.alice.petisco.defaults-quorum-limit-3` (a quorum
    subscriber whose `delivery_limit` is not the defaults'). Its name starts with the service's
    retry-queue prefix, so the spec owns it like its queues."""
    delay = "defaults" if delay_ms is None else f"{POLICY_TIER_MARKER}{delay_ms}ms"
    suffix = "" if queue_type is None else f"-{queue_type}"
    limit = "" if delivery_limit is None else f"-limit-{delivery_limit}"
    return f"{RETRY_PREFIX}{exchange(organization, service)}.{delay}{suffix}{limit}"


def queue_policy(queue: str) -> str:
    """The policy that holds one queue's own settings (its dead-letter routing key): the queue's name."""
    return queue


PAUSED_PREFIX = "rabbitform-paused."
_MAX_NAME_BYTES = 255


def paused_marker(queue: str) -> str:
    """The exclusive queue a consumer holds while a circuit breaker pauses `queue`:
    `rabbitform-paused.<queue>` (a digest of the name when that would pass 255 bytes). It lives
    and dies with the consumer's connection, holds no messages, and is outside every owned
    prefix, so no plan touches it; `status` reads it as "paused"."""
    name = PAUSED_PREFIX + queue
    if len(name.encode("utf-8")) <= _MAX_NAME_BYTES:
        return name
    import hashlib

    return PAUSED_PREFIX + hashlib.sha256(queue.encode("utf-8")).hexdigest()


def holding_queue(queue: str) -> str:
    """Where publishes wait while `queue` is replaced with its messages moved: `rabbitform-moving.<queue>`.

    Outside every owned prefix and every policy pattern of a spec, so no plan deletes it and no
    TTL or dead-lettering applies to it; its presence marks an unfinished move.
    """
    return HOLDING_PREFIX + queue


def moved_queue(holding: str) -> str | None:
    """The queue a holding queue belongs to, or None when `holding` is not a holding queue."""
    return holding[len(HOLDING_PREFIX) :] if holding.startswith(HOLDING_PREFIX) else None
