"""The declarative spec: what a team writes in YAML, validated with pydantic.

Models only; reading files, templating and error reporting live in `topology.spec.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    field_validator,
    model_validator,
)

from topology import ladder as retry_ladder
from topology import naming
from topology.naming import Layout, MessageKind

QueueType = Literal["classic", "quorum"]
QueueSettings = Literal["arguments", "policies"]


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


OrganizationName = Annotated[
    str, _matching(naming.ORGANIZATION_PATTERN, "name: use lower case letters, digits, '_' or '-', no dots")
]
ServiceName = Annotated[
    str,
    _matching(naming.SERVICE_PATTERN, "service name: use lower case letters, digits, '_' or '-', no dots"),
]
MessageClassName = Annotated[
    str, _matching(naming.MESSAGE_CLASS_PATTERN, "message class name: use CamelCase, e.g. UserCreated")
]
SubscriberName = Annotated[
    str, _matching(naming.SUBSCRIBER_PATTERN, "subscriber name: use lower case letters, digits and '_'")
]
StoreQueueName = Annotated[
    str, _matching(naming.QUEUE_NAME_PATTERN, "queue name: use lower case letters, digits, '_' or '-'")
]
ImportPath = Annotated[
    str,
    # dotted identifiers on both sides: `package.module:function` or `module:Class.method`
    Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"),
]
VhostName = Annotated[str, Field(min_length=1)]
UserName = Annotated[
    str,
    _matching(re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*\Z"), "user name: use letters, digits, '_', '.', '@' or '-'"),
]


EnvName = Annotated[
    str, _matching(re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z"), "environment variable name: letters, digits and '_'")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


DEFAULT_DELIVERY_LIMIT = 20  # what RabbitMQ 4.x gives quorum queues; 3.x has none


ErrorRule = Annotated[
    str,
    # a class name (`PaymentDeclined`) or its import path (`billing.errors:InvalidCard`)
    Field(pattern=r"^([A-Za-z_]\w*(\.[A-Za-z_]\w*)*:)?[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", strict=True),
]
MAX_LADDER_STEPS = 1000  # a ladder is generated up to max_retries steps: keep it bounded
DelayMs = Annotated[int, Field(ge=1, strict=True)]
# YAML gives lists; strict models take tuples only: lists are accepted here, items stay strict
DelayLadder = Annotated[tuple[DelayMs, ...], Field(strict=False, min_length=1, max_length=MAX_LADDER_STEPS)]
ErrorRules = Annotated[tuple[ErrorRule, ...], Field(strict=False)]


class RetryPolicy(_Strict):
    """How long a failed message waits before each retry, how many retries it gets, and which
    failures get none.

    The delays form a ladder (`ladder()`): `delays_ms` lists it; `delay_ms` with
    `backoff_multiplier` (and `max_delay_ms`) generates it; `delay_ms` alone is a one-step
    ladder. Attempt k waits the k-th delay, the last one repeating until `max_retries`.
    `delivery_limit` caps the broker's redeliveries of one copy on a quorum queue (a crash or
    requeue loop): past it the broker dead-letters the message. Retries are new copies, so
    they do not count toward it.
    """

    delay_ms: int = Field(default=5000, ge=1)
    max_retries: int = Field(default=5, ge=0)
    delivery_limit: int = Field(default=DEFAULT_DELIVERY_LIMIT, ge=1)
    delays_ms: DelayLadder | None = None
    backoff_multiplier: float | None = Field(default=None, gt=1, le=1000)
    max_delay_ms: int | None = Field(default=None, ge=1)
    dead_letter_on: ErrorRules = ()

    @model_validator(mode="after")
    def _one_way_to_say_delays(self) -> RetryPolicy:
        explicit = self.delay_ms if "delay_ms" in self.model_fields_set else None
        problem = _delay_shape_problem(self.delays_ms, self.backoff_multiplier, self.max_delay_ms, explicit)
        if problem:
            raise ValueError(problem)
        return self

    def attempt_delays(self) -> tuple[int, ...]:
        """The delay before each retry 1..n (n = max_retries, at least 1: the queue exists)."""
        if self.delays_ms is not None:
            ladder = self.delays_ms
        elif self.backoff_multiplier is not None:
            steps = max(1, self.max_retries)
            ladder = _backoff(self.delay_ms, self.backoff_multiplier, self.max_delay_ms, steps)
        else:
            ladder = (self.delay_ms,)
        return retry_ladder.attempt_delays(ladder, self.max_retries)

    def ladder(self) -> tuple[int, ...]:
        """The distinct delays, in the order attempts first reach them: one retry queue (tier) each."""
        return retry_ladder.tiers(self.attempt_delays())

    def attempt_tiers(self) -> tuple[int, ...]:
        """The tier (1-based) of each retry 1..n; past n the last one repeats."""
        return retry_ladder.attempt_tiers(self.attempt_delays())


def _backoff(first: int, multiplier: float, cap: int | None, steps: int) -> tuple[int, ...]:
    """`first`, `first*m`, ... rounded to ms and capped, stopping at the cap: the cap repeats."""
    ladder: list[int] = []
    delay = float(first)
    for _ in range(min(steps, MAX_LADDER_STEPS)):
        step = round(delay) if cap is None else min(round(delay), cap)
        ladder.append(step)
        if cap is not None and step >= cap:
            break
        delay *= multiplier
    return tuple(ladder)


def _delay_shape_problem(
    delays_ms: tuple[int, ...] | None, multiplier: float | None, max_delay_ms: int | None, delay_ms: int | None
) -> str | None:
    if delays_ms is not None and (multiplier is not None or max_delay_ms is not None or delay_ms is not None):
        return "delays_ms lists the whole ladder: leave out delay_ms, backoff_multiplier and max_delay_ms"
    if max_delay_ms is not None and multiplier is None:
        return "max_delay_ms caps a backoff: give backoff_multiplier too (or list the ladder in delays_ms)"
    return None


class RetryOverride(_Strict):
    """A per-subscriber override; missing fields fall back to `defaults.retry`.

    The delays are one setting: an override that says anything about them (`delay_ms`,
    `delays_ms`, `backoff_multiplier`, `max_delay_ms`) replaces the default ladder whole.
    """

    delay_ms: int | None = Field(default=None, ge=1)
    max_retries: int | None = Field(default=None, ge=0)
    delivery_limit: int | None = Field(default=None, ge=1)
    delays_ms: DelayLadder | None = None
    backoff_multiplier: float | None = Field(default=None, gt=1, le=1000)
    max_delay_ms: int | None = Field(default=None, ge=1)
    dead_letter_on: ErrorRules | None = None

    @model_validator(mode="after")
    def _one_way_to_say_delays(self) -> RetryOverride:
        problem = _delay_shape_problem(self.delays_ms, self.backoff_multiplier, self.max_delay_ms, self.delay_ms)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def sets_delays(self) -> bool:
        return any(v is not None for v in (self.delay_ms, self.delays_ms, self.backoff_multiplier, self.max_delay_ms))

    def over(self, base: RetryPolicy) -> RetryPolicy:
        delays: dict[str, Any] = {
            "delay_ms": base.delay_ms,
            "delays_ms": base.delays_ms,
            "backoff_multiplier": base.backoff_multiplier,
            "max_delay_ms": base.max_delay_ms,
        }
        if self.sets_delays:
            delays = {
                "delay_ms": base.delay_ms if self.delay_ms is None else self.delay_ms,
                "delays_ms": self.delays_ms,
                "backoff_multiplier": self.backoff_multiplier,
                "max_delay_ms": self.max_delay_ms,
            }
        if delays["delays_ms"] is not None:
            del delays["delay_ms"]  # the ladder says it all (and delay_ms beside it is refused)
        return RetryPolicy(
            max_retries=base.max_retries if self.max_retries is None else self.max_retries,
            delivery_limit=base.delivery_limit if self.delivery_limit is None else self.delivery_limit,
            dead_letter_on=base.dead_letter_on if self.dead_letter_on is None else self.dead_letter_on,
            **delays,
        )


class CircuitBreaker(_Strict):
    """Pause a subscriber while its dependency is down: `failures` failures within `window_s`
    open the breaker; the consumer stops taking the subscriber's deliveries for `pause_s`
    (the ones it holds go back unhandled, not counted as attempts), then lets one through:
    success closes the breaker, failure opens it again."""

    failures: int = Field(ge=1)
    window_s: float = Field(gt=0)
    pause_s: float = Field(gt=0)


NO_TTL: Literal["none"] = "none"


def _check_main_queue_ttl(value: object) -> object:
    """An integer >= 1 (ms), `none` (no TTL) or absent. `none` is a word, not YAML's null: null
    means absent everywhere in a spec (the default applies), and a spec dumped with its Nones
    must read back the same."""
    if value is None or value == NO_TTL:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"must be an integer >= 1, or {NO_TTL} for no TTL")


# `x-message-ttl` of a main queue, layout petisco only (petisco's `QueueConfig` main_ttl);
# None: the default (defaults.main_queue_ttl_ms, else petisco's 5000).
MainQueueTtl = Annotated[int | Literal["none"] | None, PlainValidator(_check_main_queue_ttl)]

MAIN_QUEUE_TTL = "main_queue_ttl_ms"


class Defaults(_Strict):
    queue_type: QueueType = "classic"
    retry: RetryPolicy = RetryPolicy()
    main_queue_ttl_ms: MainQueueTtl = None
    circuit_breaker: CircuitBreaker | None = None


class Subscriber(_Strict):
    handler: ImportPath | None = None
    retry: RetryOverride | None = None
    queue_type: QueueType | None = None
    main_queue_ttl_ms: MainQueueTtl = None
    circuit_breaker: CircuitBreaker | None = None


class Message(_Strict):
    version: int = Field(default=1, ge=1)
    subscribers: dict[SubscriberName, Subscriber] = Field(default_factory=dict)


class Service(_Strict):
    events: dict[MessageClassName, Message] = Field(default_factory=dict)
    commands: dict[MessageClassName, Message] = Field(default_factory=dict)

    @field_validator("events", "commands", mode="after")
    @classmethod
    def _message_names_are_unique(cls, messages: dict[str, Message]) -> dict[str, Message]:
        """Two class names that map to one message name would share queues: refuse."""
        seen: dict[tuple[str, int], str] = {}
        for class_name, message in messages.items():
            key = (naming.message_name(class_name), message.version)
            if key in seen:
                raise ValueError(f"{seen[key]} and {class_name} both map to message name {key[0]!r} version {key[1]}")
            seen[key] = class_name
        return messages


class Store(_Strict):
    queue: StoreQueueName = naming.DEFAULT_STORE_QUEUE
    handler: ImportPath | None = None
    retry: RetryOverride | None = None
    queue_type: QueueType | None = None
    main_queue_ttl_ms: MainQueueTtl = None
    circuit_breaker: CircuitBreaker | None = None


class Access(_Strict):
    """A RabbitMQ user for one service, with least-privilege permissions derived from the naming
    convention (see `topology.compile.access`). The password comes from the template, e.g.
    `{{ env.BILLING_AMQP_PASSWORD }}`; it is never printed, logged or saved in a plan."""

    service: ServiceName | None = None
    store: bool = False  # also consume the store (the store's own service)
    # One of the two: `password` (templated, e.g. `{{ env.X }}`), or `password_env`, the name of an
    # environment variable whose value is the password verbatim (no YAML or template quoting).
    password: SecretStr | None = None
    password_env: EnvName | None = None
    # An existing user with tags or other permissions is refused unless the spec adopts it.
    adopt: bool = False


@dataclass(frozen=True)
class ResolvedSubscriber:
    """One subscriber with its names computed and its defaults applied."""

    service: str
    kind: MessageKind
    message_class: str
    message_name: str
    version: int
    name: str
    queue: str
    routing_key: str
    handler: str | None
    retry: RetryPolicy
    queue_type: QueueType
    main_queue_ttl_ms: int | None  # the main queue's `x-message-ttl`; None: no TTL
    circuit_breaker: CircuitBreaker | None = None


@dataclass(frozen=True)
class ResolvedStore:
    queue: str
    handler: str | None
    retry: RetryPolicy
    queue_type: QueueType
    main_queue_ttl_ms: int | None  # the store queue's `x-message-ttl`; None: no TTL
    circuit_breaker: CircuitBreaker | None = None


class Spec(_Strict):
    organization: OrganizationName
    # Who owns the objects in the broker: several specs of one organization on one vhost need
    # distinct names (see docs/lifecycle.md); the organization when absent.
    name: OrganizationName | None = None
    vhost: VhostName = "/"
    layout: Layout = naming.DEFAULT_LAYOUT
    # `arguments`: TTL and dead-lettering as queue arguments (what petisco services redeclare);
    # `policies`: as policies, which can change in place (see docs/queue-settings.md).
    queue_settings: QueueSettings = "arguments"
    defaults: Defaults = Defaults()
    services: dict[ServiceName, Service] = Field(default_factory=dict)
    store: Store | None = None
    access: dict[UserName, Access] = Field(default_factory=dict)

    @property
    def owner(self) -> str:
        """The name the broker records this spec's ownership and lock under."""
        return self.name or self.organization

    def subscribers(self) -> Iterator[ResolvedSubscriber]:
        """Every subscriber of every service, in a stable order."""
        for service_name in sorted(self.services):
            service = self.services[service_name]
            kinds: tuple[tuple[MessageKind, dict[str, Message]], ...] = (
                ("event", service.events),
                ("command", service.commands),
            )
            for kind, messages in kinds:
                for class_name in sorted(messages):
                    message = messages[class_name]
                    name = naming.message_name(class_name)
                    queue_name = naming.routing_name(class_name, self.layout)
                    for sub_name in sorted(message.subscribers):
                        sub = message.subscribers[sub_name]
                        yield ResolvedSubscriber(
                            service=service_name,
                            kind=kind,
                            message_class=class_name,
                            message_name=name,
                            version=message.version,
                            name=sub_name,
                            queue=naming.subscriber_queue(
                                self.organization, service_name, message.version, kind, queue_name, sub_name
                            ),
                            routing_key=naming.routing_key(
                                self.organization, service_name, message.version, kind, queue_name
                            ),
                            handler=sub.handler,
                            retry=sub.retry.over(self.defaults.retry) if sub.retry else self.defaults.retry,
                            queue_type=sub.queue_type or self.defaults.queue_type,
                            main_queue_ttl_ms=self._main_queue_ttl(sub.main_queue_ttl_ms),
                            circuit_breaker=sub.circuit_breaker or self.defaults.circuit_breaker,
                        )

    def access_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """(field path, message) for every `access` entry that names nothing it could use."""
        problems: list[tuple[tuple[str, ...], str]] = []
        for user, entry in self.access.items():
            path = ("access", user)
            if entry.service is None and not entry.store:
                problems.append((path, "give the user a service (service: NAME) or the store (store: true)"))
            if entry.service is not None and entry.service not in self.services:
                known = ", ".join(sorted(self.services)) or "none"
                problems.append(((*path, "service"), f"unknown service {entry.service!r} (services: {known})"))
            if entry.store and self.store is None:
                problems.append(((*path, "store"), "the spec has no store"))
            if entry.password is None:  # `password_env` is read (and checked) by the loader
                problems.append((path, "give the user a password (password_env: NAME reads it from the environment)"))
            elif not entry.password.get_secret_value():
                field = "password_env" if entry.password_env is not None else "password"
                problems.append(((*path, field), "the password is empty (is its environment variable set?)"))
        return problems

    def layout_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """(field path, message) for what the layout cannot declare. petisco 2.2.3 declares
        classic queues only and names its store `store`; its services redeclare these queues on
        start, so anything else would fail there (PRECONDITION_FAILED). A main-queue TTL is
        petisco's alone: the rabbitform layout keeps work in main queues through any outage."""
        if self.layout != "petisco":
            message = (
                f"only layout petisco puts a TTL on main queues; layout {self.layout} has none "
                "(remove this, or set layout: petisco)"
            )
            return [((*path, MAIN_QUEUE_TTL), message) for path in self._main_queue_ttl_settings()]
        problems: list[tuple[tuple[str, ...], str]] = []
        if self.queue_settings != "arguments":
            problems.append((("queue_settings",), "layout petisco keeps TTL and dead-lettering in queue arguments"))
        if self.store is not None and self.store.queue != naming.PETISCO_STORE_QUEUE:
            problems.append((("store", "queue"), f"layout petisco names its store {naming.PETISCO_STORE_QUEUE!r}"))
        quorum = "quorum queues are not part of layout petisco (petisco 2.2.3 declares classic queues)"
        if self.defaults.queue_type == "quorum":
            problems.append((("defaults", "queue_type"), quorum))
        for sub in self.subscribers():
            if sub.queue_type == "quorum":
                path = ("services", sub.service, f"{sub.kind}s", sub.message_class, "subscribers", sub.name)
                problems.append(((*path, "queue_type"), quorum))
        if self.store is not None and self.store.queue_type == "quorum":
            problems.append((("store", "queue_type"), quorum))
        problems.extend(self._ladder_problems())
        return problems

    def _ladder_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """petisco declares one retry queue per subscriber: a ladder of several delays needs more."""
        message = (
            "layout petisco has one retry queue per subscriber, so one delay: a ladder of {n} delays "
            "needs layout rabbitform (or give one delay_ms)"
        )
        problems: dict[tuple[str, ...], str] = {}
        entries: list[tuple[tuple[str, ...], RetryOverride | None, RetryPolicy]] = []
        for sub in self.subscribers():
            path: tuple[str, ...] = (
                "services",
                sub.service,
                f"{sub.kind}s",
                sub.message_class,
                "subscribers",
                sub.name,
            )
            raw = self.services[sub.service].events if sub.kind == "event" else self.services[sub.service].commands
            entries.append((path, raw[sub.message_class].subscribers[sub.name].retry, sub.retry))
        store = self.resolved_store()
        if self.store is not None and store is not None:
            entries.append((("store",), self.store.retry, store.retry))
        for where_set, override, resolved in entries:
            tiers = len(resolved.ladder())
            if tiers > 1:
                where = (
                    (*where_set, "retry") if override is not None and override.sets_delays else ("defaults", "retry")
                )
                problems.setdefault(where, message.format(n=tiers))
        return sorted(problems.items())

    def _main_queue_ttl_settings(self) -> Iterator[tuple[str, ...]]:
        """The paths of every entry that sets `main_queue_ttl_ms`."""
        if self.defaults.main_queue_ttl_ms is not None:
            yield ("defaults",)
        for service_name, service in self.services.items():
            for section, messages in (("events", service.events), ("commands", service.commands)):
                for class_name, message in messages.items():
                    for sub_name, sub in message.subscribers.items():
                        if sub.main_queue_ttl_ms is not None:
                            yield ("services", service_name, section, class_name, "subscribers", sub_name)
        if self.store is not None and self.store.main_queue_ttl_ms is not None:
            yield ("store",)

    def resolved_store(self) -> ResolvedStore | None:
        if self.store is None:
            return None
        store = self.store
        return ResolvedStore(
            queue=store.queue,
            handler=store.handler,
            retry=store.retry.over(self.defaults.retry) if store.retry else self.defaults.retry,
            queue_type=store.queue_type or self.defaults.queue_type,
            main_queue_ttl_ms=self._main_queue_ttl(store.main_queue_ttl_ms),
            circuit_breaker=store.circuit_breaker or self.defaults.circuit_breaker,
        )

    def _main_queue_ttl(self, override: int | str | None) -> int | None:
        """The layout's main-queue TTL: none in layout rabbitform; in layout petisco the
        override, else `defaults`, else petisco's own default (`QueueConfig.default()`)."""
        if self.layout != "petisco":
            return None
        for value in (override, self.defaults.main_queue_ttl_ms):
            if isinstance(value, int):
                return value
            if value == NO_TTL:
                return None
        return naming.PETISCO_MAIN_TTL_MS
