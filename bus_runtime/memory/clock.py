"""A virtual clock: TTLs elapse when the broker says so, never by sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class VirtualClock:
    """Milliseconds since `start`; only moves forward."""

    start: datetime = field(default_factory=_utc_now)
    elapsed_ms: int = 0

    def now(self) -> datetime:
        return self.start + timedelta(milliseconds=self.elapsed_ms)

    def advance_to(self, at_ms: int) -> None:
        if at_ms < self.elapsed_ms:
            raise ValueError(f"the virtual clock cannot go back from {self.elapsed_ms} ms to {at_ms} ms")
        self.elapsed_ms = at_ms
