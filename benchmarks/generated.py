"""Generated specs of any size, for benchmarks: services of events with three subscribers each."""

from __future__ import annotations

from typing import Any

from topology.spec.model import Spec

SUBSCRIBERS_PER_EVENT = 3
EVENTS_PER_SERVICE = 100


def event_class(index: int) -> str:
    return f"Thing{index}Happened"


def subscriber_name(index: int) -> str:
    return f"handler_{index}"


SUBSCRIBERS_PER_SERVICE = SUBSCRIBERS_PER_EVENT * EVENTS_PER_SERVICE


def services_of(subscribers: int) -> int:
    """How many services a generated spec of `subscribers` subscribers has."""
    return -(-subscribers // SUBSCRIBERS_PER_SERVICE)


def generated_spec_data(
    subscribers: int, vhost: str, organization: str = "bench", drop: int = 0, drop_services: int = 0
) -> dict[str, Any]:
    """The spec document (as YAML would hold it) with `subscribers` subscribers, less `drop`
    of them (the last events lose all their subscribers but the first, so every service stays
    and a plan deletes exactly `drop` subscribers' queues), less the first `drop_services`
    services, 300 subscribers each (a plan deletes them whole, exchanges too, through the
    ownership record)."""
    events_total = -(-subscribers // SUBSCRIBERS_PER_EVENT)
    dropped_from = events_total - -(-drop // (SUBSCRIBERS_PER_EVENT - 1))
    dropped = 0
    services: dict[str, Any] = {}
    for n in range(subscribers):
        event_index, handler = divmod(n, SUBSCRIBERS_PER_EVENT)
        if handler and event_index >= dropped_from and dropped < drop:
            dropped += 1
            continue
        service, event = divmod(event_index, EVENTS_PER_SERVICE)
        if service < drop_services:
            continue
        events = services.setdefault(f"service{service}", {"events": {}})["events"]
        events.setdefault(event_class(event), {"version": 1, "subscribers": {}})["subscribers"][
            subscriber_name(handler)
        ] = {}
    return {
        "organization": organization,
        "vhost": vhost,
        "defaults": {"queue_type": "classic", "retry": {"delay_ms": 5000, "max_retries": 5}},
        "services": services,
        "store": {"queue": "store"},
    }


def generated_spec(
    subscribers: int, vhost: str, organization: str = "bench", drop: int = 0, drop_services: int = 0
) -> Spec:
    """A spec with `subscribers - drop` subscribers (7 broker objects each), less the first
    `drop_services` services, and a store."""
    return Spec.model_validate(generated_spec_data(subscribers, vhost, organization, drop, drop_services))
