"""What long-running work tells its caller as it goes: one small interface, no I/O.

The library (snapshot reads, apply phases, verification) reports through it; the CLI's
`ProgressReporter` prints it on stderr. `NO_PROGRESS` is the silent default.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def phase(self, name: str, total: int = 0) -> None:
        """A phase starts (e.g. "Reading vhost 'x'", "Deleting queues"); `total` steps, 0 if unknown."""

    def advance(self, done: int) -> None:
        """`done` steps of the current phase are finished (a running count, not an increment)."""

    def waiting(self, what: str, seconds: float) -> None:
        """A request has waited `seconds` on a broker that is slow but alive."""

    def finish(self, summary: str = "") -> None:
        """The current phase is over; `summary` says what it did."""


class Silent:
    """Reports nothing."""

    def phase(self, name: str, total: int = 0) -> None:
        pass

    def advance(self, done: int) -> None:
        pass

    def waiting(self, what: str, seconds: float) -> None:
        pass

    def finish(self, summary: str = "") -> None:
        pass


NO_PROGRESS = Silent()
