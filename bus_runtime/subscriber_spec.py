"""Subscribers in code -> a `topology.spec.Spec`, so code and YAML share one compiler.

Pure. The configurer applies the result; tests use it to build their topology.
"""

from __future__ import annotations

from collections.abc import Iterable

from bus_runtime.subscriber import EventSubscriber, handler_name
from topology import naming
from topology.spec.model import Defaults, Message, RetryPolicy, Service, Spec, Store, Subscriber


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
) -> Spec:
    """The spec that `subscribers` need: the service's exchanges, one queue (plus retry and
    dead-letter queues) per handler, and the store if asked for."""
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
            entry["subscribers"][handler_name(handler)] = Subscriber()
    return Spec(
        organization=organization,
        vhost=vhost,
        layout=layout,
        defaults=Defaults(retry=RetryPolicy(delay_ms=retry_ttl, max_retries=max_retries)),
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
