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


def generated_spec(subscribers: int, vhost: str, organization: str = "bench") -> Spec:
    """A spec with exactly `subscribers` subscribers (7 broker objects each) and a store."""
    services: dict[str, Any] = {}
    for n in range(subscribers):
        event, handler = divmod(n, SUBSCRIBERS_PER_EVENT)
        service, event = divmod(event, EVENTS_PER_SERVICE)
        events = services.setdefault(f"service{service}", {"events": {}})["events"]
        events.setdefault(event_class(event), {"version": 1, "subscribers": {}})["subscribers"][
            subscriber_name(handler)
        ] = {}
    return Spec.model_validate(
        {
            "organization": organization,
            "vhost": vhost,
            "defaults": {"queue_type": "classic", "retry": {"delay_ms": 5000, "max_retries": 5}},
            "services": services,
            "store": {"queue": "store"},
        }
    )
