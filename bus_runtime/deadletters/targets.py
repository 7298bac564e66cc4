"""Which dead-letter queue belongs to which subscriber, by the spec's naming (never by hand)."""

from __future__ import annotations

from dataclasses import dataclass

from topology import naming
from topology.errors import RabbitformError
from topology.spec.model import Spec

STORE = "store"


@dataclass(frozen=True)
class Target:
    """A subscriber (or the store) with its queue and its dead-letter queue."""

    name: str  # the subscriber name, or the store queue's name
    service: str | None  # None for the store
    queue: str

    @property
    def dead_letter_queue(self) -> str:
        return naming.dead_letter_queue(self.queue)

    @property
    def label(self) -> str:
        return self.name if self.service is None else f"{self.service}/{self.name}"


def targets_of(spec: Spec) -> list[Target]:
    """Every subscriber of the spec, then the store."""
    found = [Target(sub.name, sub.service, sub.queue) for sub in spec.subscribers()]
    store = spec.resolved_store()
    if store is not None:
        found.append(Target(store.queue, None, store.queue))
    return found


def resolve(spec: Spec, subscriber: str, service: str | None = None) -> Target:
    """A subscriber by name (`send_mail_handler`, `petisco/send_mail_handler`), by queue name,
    or the store (`store`, or its queue's name). Ambiguous names ask for more."""
    if "/" in subscriber and service is None:
        service, subscriber = subscriber.split("/", 1)
    candidates = targets_of(spec)
    by_queue = [t for t in candidates if subscriber in (t.queue, t.dead_letter_queue)]
    if by_queue:
        return by_queue[0]
    matches = [t for t in candidates if t.name == subscriber and (service is None or t.service == service)]
    if subscriber == STORE and not matches:
        matches = [t for t in candidates if t.service is None]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(t.label for t in candidates) or "none"
        raise RabbitformError(f"no subscriber {subscriber!r} in the spec (subscribers: {known})")
    queues = ", ".join(t.queue for t in matches)
    raise RabbitformError(f"subscriber {subscriber!r} is ambiguous ({queues}): give its queue name or SERVICE/NAME")
