"""The dead-letter operations, over any transport (RabbitMQ or the in-memory broker).

Every operation reads the dead-letter queue front to back holding each message unacked, and
gives back what it did not take: the broker puts requeued messages back in their places, so
what stays keeps its order. A replayed copy is confirmed by the broker before its dead letter
is acked: an interruption loses nothing and at most duplicates the copies in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bus_runtime.deadletters.model import DeadLetter, Selection, Summary, dead_letter_from, replay_headers, summarize
from bus_runtime.deadletters.targets import Target

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class Raw:
    """A message a transport holds unacked: `tag` settles it, `handle` is the transport's own."""

    tag: int
    body: bytes
    headers: Mapping[str, Any]
    message_id: str | None
    message_type: str | None
    routing_key: str
    handle: Any = None


class Transport(Protocol):
    """What the operations need from a broker."""

    def depth(self, queue: str) -> int:
        """Ready messages in `queue`; raises RabbitformError when it does not exist."""
        ...

    def hold(self, queue: str, count: int) -> Iterator[Raw]:
        """The first `count` messages of `queue` (fewer if it runs dry), held unacked, in order."""
        ...

    def republish(self, queue: str, items: list[tuple[Raw, dict[str, Any]]]) -> None:
        """Publish copies to `queue` alone with new headers; return once the broker confirmed all."""
        ...

    def ack(self, items: list[Raw]) -> None: ...

    def release(self) -> None:
        """Give back every message still held, into its place in the queue."""
        ...

    def pause(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What a replay or purge did (or, in a dry run, would do)."""

    target: Target
    selected: tuple[DeadLetter, ...]
    left: int  # dead letters left in the queue, as read
    dry_run: bool

    @property
    def count(self) -> int:
        return len(self.selected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscriber": self.target.label,
            "queue": self.target.queue,
            "dead_letter_queue": self.target.dead_letter_queue,
            "dry_run": self.dry_run,
            "count": self.count,
            "left": self.left,
            "messages": [letter.to_dict() for letter in self.selected],
        }


class Pacer:
    """At most `rate` messages per second, on average since the start."""

    def __init__(self, rate: float | None, pause: Callable[[float], None], clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self._pause = pause
        self._clock = clock
        self._start = clock()
        self._sent = 0

    def allowance(self, wanted: int) -> int:
        """How many may go now (at least 1), waiting first if we are ahead of the rate."""
        if not self.rate:
            return wanted
        due = self._start + self._sent / self.rate
        wait = due - self._clock()
        if wait > 0:
            self._pause(wait)
        return max(1, min(wanted, int(self.rate // 10) or 1))  # about ten batches a second

    def sent(self, count: int) -> None:
        self._sent += count


def _read(transport: Transport, target: Target) -> Iterator[tuple[Raw, DeadLetter]]:
    count = transport.depth(target.dead_letter_queue)
    for position, raw in enumerate(transport.hold(target.dead_letter_queue, count)):
        letter = dead_letter_from(position, raw.body, raw.headers, raw.message_id, raw.message_type, raw.routing_key)
        yield raw, letter


def scan(transport: Transport, target: Target, selection: Selection | None = None) -> list[DeadLetter]:
    """The dead letters that match, without taking any: the queue is left exactly as it was."""
    chosen = selection or Selection()
    found: list[DeadLetter] = []
    try:
        for _raw, letter in _read(transport, target):
            if chosen.limit is not None and len(found) >= chosen.limit:
                break
            if chosen.matches(letter):
                found.append(letter)
    finally:
        transport.release()
    return found


def summary(transport: Transport, target: Target) -> Summary:
    return summarize(target.label, target.queue, target.dead_letter_queue, scan(transport, target))


def replay(
    transport: Transport,
    target: Target,
    selection: Selection,
    now: Callable[[], datetime],
    *,
    dry_run: bool = False,
    rate: float | None = None,
    batch: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Move the matching dead letters back to the subscriber's queue alone, with a fresh retry
    budget; the others stay where they are."""
    return _take(transport, target, selection, now, dry_run, rate, batch, on_progress, republish=True)


def purge(
    transport: Transport,
    target: Target,
    selection: Selection,
    *,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Delete the matching dead letters; the others stay where they are."""
    return _take(transport, target, selection, datetime.now, dry_run, None, DEFAULT_BATCH, on_progress, republish=False)


def _take(
    transport: Transport,
    target: Target,
    selection: Selection,
    now: Callable[[], datetime],
    dry_run: bool,
    rate: float | None,
    batch: int,
    on_progress: Callable[[int], None] | None,
    *,
    republish: bool,
) -> Outcome:
    if republish and not dry_run:
        transport.depth(target.queue)  # the subscriber's queue must exist: fail before taking anything
    pacer = Pacer(rate, transport.pause)
    taken: list[DeadLetter] = []
    pending: list[tuple[Raw, DeadLetter]] = []

    def flush() -> None:
        if not pending:
            return
        if republish:
            stamp = now()
            transport.republish(target.queue, [(raw, replay_headers(raw.headers, stamp)) for raw, _ in pending])
        transport.ack([raw for raw, _ in pending])
        pacer.sent(len(pending))
        taken.extend(letter for _, letter in pending)
        pending.clear()
        if on_progress is not None:
            on_progress(len(taken))

    try:
        size = pacer.allowance(batch)
        for raw, letter in _read(transport, target):
            if selection.limit is not None and len(taken) + len(pending) >= selection.limit:
                break
            if not selection.matches(letter):
                continue
            if dry_run:
                taken.append(letter)
                continue
            pending.append((raw, letter))
            if len(pending) >= size:
                flush()
                size = pacer.allowance(batch)
        flush()
    finally:
        transport.release()
    return Outcome(target, tuple(taken), transport.depth(target.dead_letter_queue), dry_run)
