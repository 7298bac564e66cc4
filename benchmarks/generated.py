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


def generated_spec_data(
    subscribers: int, vhost: str, organization: str = "bench", first_service: int = 0, without_first: bool = False
) -> dict[str, Any]:
    """The spec document (as YAML would hold it) with `subscribers` subscribers in services of
    100 events (300 subscribers); with `first_service`, the first service (`service0`) holds
    that many subscribers (rounded up to whole events) and the others follow. `without_first`
    leaves `service0` out: the spec of a team that removed that service (a plan deletes it
    whole, exchanges too, through the ownership record)."""
    big_events = -(-first_service // SUBSCRIBERS_PER_EVENT)
    services: dict[str, Any] = {}
    for n in range(subscribers):
        event_index, handler = divmod(n, SUBSCRIBERS_PER_EVENT)
        if event_index < big_events:
            service, event = 0, event_index
        else:
            service, event = divmod(event_index - big_events, EVENTS_PER_SERVICE)
            service += 1 if big_events else 0
        if without_first and service == 0:
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
    subscribers: int, vhost: str, organization: str = "bench", first_service: int = 0, without_first: bool = False
) -> Spec:
    """A spec of `subscribers` subscribers (7 broker objects each) and a store; see
    `generated_spec_data` for `first_service` and `without_first`."""
    return Spec.model_validate(generated_spec_data(subscribers, vhost, organization, first_service, without_first))
