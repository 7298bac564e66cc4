"""Subscribers in code -> a `topology.spec.Spec`, so code and YAML share one compiler.

Pure. The configurer applies the result; tests use it to build their topology.
"""

from __future__ import annotations

from collections.abc import Iterable

from bus_runtime.subscriber import EventSubscriber, handler_name
from topology import naming
from topology.spec.model import (
    NO_TTL,
    CircuitBreaker,
    Defaults,
    Message,
    RetryOverride,
    RetryPolicy,
    Service,
    Spec,
    Store,
    Subscriber,
)


def spec_for_subscribers(
    organization: str,
    service: str,
    subscribers: Iterable[EventSubscriber],
    retry_ttl: int = 5000,
    max_retries: int = 5,
    store: bool = False,
    store_queue: str = "store",
    vhost: str = "/",
    layout: naming.Layout = naming.DEFAULT_LAYOUT,
    main_ttl: int | None = naming.PETISCO_MAIN_TTL_MS,
) -> Spec:
    """The spec that `subscribers` need: the service's exchanges, one queue (plus retry and
    dead-letter queues) per handler, and the store if asked for.

    `main_ttl` is layout petisco's main-queue TTL (ms; None: no TTL), petisco's
    `QueueConfig.default_main_ttl`; the rabbitform layout's main queues have none.
    """
    if layout != "petisco" and main_ttl != naming.PETISCO_MAIN_TTL_MS:
        raise ValueError("main_ttl applies to layout petisco only: layout rabbitform puts no TTL on main queues")
    if main_ttl is not None and main_ttl < 1:
        raise ValueError("main_ttl must be >= 1 ms, or None for no TTL")
    services: dict[str, dict[str, dict[str, dict[str, dict[str, Subscriber]]]]] = {service: {}}
    versions: dict[tuple[str, str, str], int] = {}
    for subscriber in subscribers:
        cls = subscriber.message_class
        owner = subscriber.service or service
        section = "commands" if cls.message_kind == "command" else "events"
        messages = services.setdefault(owner, {}).setdefault(section, {})
        key = (owner, section, cls.__name__)
        if key in versions and versions[key] != cls.version:
            raise ValueError(f"{cls.__name__} is subscribed with two versions ({versions[key]} and {cls.version})")
        versions[key] = cls.version
        entry = messages.setdefault(cls.__name__, {"subscribers": {}})
        for handler in subscriber.handlers:
            entry["subscribers"][handler_name(handler)] = _subscriber(subscriber)
    return Spec(
        organization=organization,
        vhost=vhost,
        layout=layout,
        defaults=Defaults(
            retry=RetryPolicy(delay_ms=retry_ttl, max_retries=max_retries),
            main_queue_ttl_ms=(main_ttl if main_ttl is not None else NO_TTL) if layout == "petisco" else None,
        ),
        services={
            name: Service(
                events={
                    cls_name: Message(version=versions[(name, "events", cls_name)], subscribers=entry["subscribers"])
                    for cls_name, entry in sections.get("events", {}).items()
                },
                commands={
                    cls_name: Message(version=versions[(name, "commands", cls_name)], subscribers=entry["subscribers"])
                    for cls_name, entry in sections.get("commands", {}).items()
                },
            )
            for name, sections in services.items()
        },
        store=Store(queue=store_queue) if store else None,
    )


def _subscriber(subscriber: EventSubscriber) -> Subscriber:
    """A handler's spec entry: its ladder and errors that skip retries (`Retries`) and its
    circuit breaker, when the code gives them; otherwise the defaults, as before."""
    policy, breaker = subscriber.retry, subscriber.circuit_breaker
    override = None
    if policy is not None:
        override = RetryOverride(
            delays_ms=policy.delays_ms or None,
            max_retries=policy.max_retries,
            dead_letter_on=policy.rules() or None,
        )
    return Subscriber(
        retry=override,
        circuit_breaker=CircuitBreaker(failures=breaker.failures, window_s=breaker.window_s, pause_s=breaker.pause_s)
        if breaker is not None
        else None,
    )
