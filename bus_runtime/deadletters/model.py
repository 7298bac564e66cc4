"""Dead letters as plain data: what one holds, which ones a filter selects, what a queue of them
adds up to, and the headers a replayed copy carries.

Pure: no broker here. The AMQP and in-memory transports hand raw messages in; the operations
in `ops.py` decide with these functions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bus_runtime import retry

REPLAYED_AT = "rabbitform-replayed-at"
REPLAY_COUNT = "rabbitform-replay-count"
REASONS = (
    retry.REASON_RETRIES_EXHAUSTED,
    retry.REASON_NON_RETRYABLE,
    retry.REASON_POISON,
    retry.REASON_DELIVERY_LIMIT,
)
# What a replayed copy must not carry: the spent retry budget, the last verdict, and the
# broker's own dead-letter history (republishing `x-death` made some brokers drop messages).
_DROPPED_ON_REPLAY = (retry.RETRY_COUNT, retry.DEAD_LETTER_REASON, retry.TRACEBACK, "x-death")
_BROKER_PREFIXES = ("x-first-death-", "x-last-death-")


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue; `position` is its place in the queue (0 = next out)."""

    position: int
    message_id: str
    message_type: str
    routing_key: str
    headers: Mapping[str, Any]
    attributes: Mapping[str, Any] | None = None
    body_size: int = 0
    body: bytes = field(default=b"", repr=False, compare=False)  # as read: the console shows it as text

    def _header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    @property
    def error_type(self) -> str | None:
        return self._header(retry.ERROR_TYPE)

    @property
    def error_message(self) -> str | None:
        return self._header(retry.ERROR_MESSAGE)

    @property
    def reason(self) -> str | None:
        """Ours, or the broker's: a quorum queue past its delivery limit says `delivery_limit`."""
        return retry.dead_letter_reason(self.headers)

    @property
    def handler(self) -> str | None:
        return self._header(retry.HANDLER)

    @property
    def retry_count(self) -> int:
        return retry.retry_count(self.headers)

    @property
    def traceback(self) -> str | None:
        """The end (last 4 KB) of the last failure's traceback, when the handler raised."""
        return self._header(retry.TRACEBACK)

    @property
    def host(self) -> str | None:
        return self._header(retry.HOST)

    @property
    def pid(self) -> str | None:
        return self._header(retry.PID)

    @property
    def first_failed_at(self) -> datetime | None:
        return parse_time(self.headers.get(retry.FIRST_FAILURE_AT))

    @property
    def replay_count(self) -> int:
        try:
            return max(0, int(self.headers.get(REPLAY_COUNT, 0)))
        except (TypeError, ValueError):
            return 0

    @property
    def dead_lettered_at(self) -> datetime | None:
        """When it last failed (the consumer stamps `rabbitform-last-failure-at` as it dead-letters)."""
        return parse_time(self.headers.get(retry.LAST_FAILURE_AT))

    def rabbitform_headers(self) -> dict[str, Any]:
        return {k: v for k, v in sorted(self.headers.items()) if k.startswith(retry.HEADER_PREFIX)}

    def to_dict(self) -> dict[str, Any]:
        at = self.dead_lettered_at
        return {
            "position": self.position,
            "id": self.message_id,
            "type": self.message_type,
            "routing_key": self.routing_key,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "reason": self.reason,
            "dead_lettered_at": at.isoformat() if at else None,
            "retry_count": self.retry_count,
            "replay_count": self.replay_count,
            "handler": self.handler,
            "host": self.host,
            "pid": self.pid,
            "first_failed_at": first.isoformat() if (first := self.first_failed_at) else None,
            "traceback": self.traceback,
            "attributes": dict(self.attributes) if self.attributes is not None else None,
            "headers": {k: _jsonable(v) for k, v in self.rabbitform_headers().items()},
            "body_size": self.body_size,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, (str, bytes)):
        return None
    text = value.decode() if isinstance(value, bytes) else value
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def dead_letter_from(
    position: int,
    body: bytes,
    headers: Mapping[str, Any] | None,
    message_id: str | None,
    message_type: str | None,
    routing_key: str,
) -> DeadLetter:
    """Read what a dead letter says about itself. A body that is not our JSON (a poison
    message) still lists: its attributes are None and its id and type come from properties."""
    data: Mapping[str, Any] = {}
    try:
        document = json.loads(body)
        if isinstance(document, dict) and isinstance(document.get("data"), dict):
            data = document["data"]
    except (UnicodeDecodeError, ValueError):
        pass
    attributes = data.get("attributes")
    own = dict(headers or {})
    return DeadLetter(
        position=position,
        message_id=str(message_id or data.get("id") or ""),
        message_type=str(message_type or data.get("type") or ""),
        routing_key=str(own.get(retry.ORIGINAL_ROUTING_KEY) or routing_key),
        headers=own,
        attributes=attributes if isinstance(attributes, dict) else None,
        body_size=len(body),
        body=body,
    )


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operation touches; every given criterion must hold. `limit` caps
    how many are taken (the first matches in queue order)."""

    error_types: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    @classmethod
    def of(
        cls,
        error_types: Iterable[str] = (),
        reasons: Iterable[str] = (),
        ids: Iterable[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Selection:
        unknown = sorted(set(reasons) - set(REASONS))
        if unknown:
            raise ValueError(f"unknown reason {unknown[0]!r}; choose from {', '.join(REASONS)}")
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        return cls(frozenset(error_types), frozenset(reasons), frozenset(ids), since, until, limit)

    def matches(self, letter: DeadLetter) -> bool:
        if self.error_types and letter.error_type not in self.error_types:
            return False
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.ids and letter.message_id not in self.ids:
            return False
        if self.since is not None or self.until is not None:
            at = letter.dead_lettered_at
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at > self.until:
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.error_types:
            parts.append("error type " + "|".join(sorted(self.error_types)))
        if self.reasons:
            parts.append("reason " + "|".join(sorted(self.reasons)))
        if self.ids:
            parts.append(f"{len(self.ids)} id(s)")
        if self.since:
            parts.append(f"since {self.since.isoformat()}")
        if self.until:
            parts.append(f"until {self.until.isoformat()}")
        if self.limit is not None:
            parts.append(f"first {self.limit}")
        return ", ".join(parts) or "all"


@dataclass(frozen=True)
class Summary:
    """What a dead-letter queue holds, in numbers."""

    subscriber: str
    queue: str
    dead_letter_queue: str
    count: int
    oldest: datetime | None = None
    newest: datetime | None = None
    by_error_type: Mapping[str, int] = field(default_factory=dict)
    by_reason: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscriber": self.subscriber,
            "queue": self.queue,
            "dead_letter_queue": self.dead_letter_queue,
            "count": self.count,
            "oldest": self.oldest.isoformat() if self.oldest else None,
            "newest": self.newest.isoformat() if self.newest else None,
            "by_error_type": dict(self.by_error_type),
            "by_reason": dict(self.by_reason),
        }


def summarize(subscriber: str, queue: str, dead_letter_queue: str, letters: Iterable[DeadLetter]) -> Summary:
    items = list(letters)
    times = [t for t in (letter.dead_lettered_at for letter in items) if t is not None]
    errors = Counter(letter.error_type or "unknown" for letter in items)
    reasons = Counter(letter.reason or "unknown" for letter in items)
    return Summary(
        subscriber,
        queue,
        dead_letter_queue,
        len(items),
        min(times) if times else None,
        max(times) if times else None,
        dict(sorted(errors.items())),
        dict(sorted(reasons.items())),
    )


def replay_headers(headers: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The headers of a replayed copy: a fresh retry budget, the failure history kept
    (error type and message, first and last failure), and when and how often it was replayed."""
    result = {
        key: value
        for key, value in (headers or {}).items()
        if key not in _DROPPED_ON_REPLAY and not key.startswith(_BROKER_PREFIXES)
    }
    previous = DeadLetter(0, "", "", "", dict(headers or {})).replay_count
    result[REPLAYED_AT] = now.isoformat()
    result[REPLAY_COUNT] = previous + 1
    return result
