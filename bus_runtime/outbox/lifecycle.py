"""The relay's lifecycle as explicit states: pure, driven by what the I/O reports.

```
STARTING -> CLAIMING -> PUBLISHING -> MARKING -> CLAIMING ...   (work was found)
            CLAIMING -> IDLE (poll interval) -> CLAIMING        (nothing due)
   any failure (database or broker) -> BACKING_OFF (doubling, capped) -> CLAIMING
   stop -> STOPPED (from anywhere; the open claim is released, never marked)
```
The shell (`relay.OutboxRelay`) does what the state says and reports the outcome back;
`RelayMachine` decides what comes next and how long to wait. Only confirmed messages are
marked sent, and within a stream only up to the first unconfirmed one (`sent_prefix`): what
follows it is published again, after it, in insertion order.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bus_runtime.outbox.outbox import StoredMessage


class RelayState(enum.Enum):
    STARTING = "starting"
    CLAIMING = "claiming"
    PUBLISHING = "publishing"
    MARKING = "marking"
    IDLE = "idle"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"


@dataclass
class RelayMachine:
    """What the relay does next. `delay` is how long the shell waits in IDLE or BACKING_OFF."""

    poll_interval: float = 0.5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    state: RelayState = RelayState.STARTING
    failures: int = 0  # failed steps in a row
    delay: float = 0.0
    last_error: str = ""

    def started(self) -> RelayState:
        return self._go(RelayState.CLAIMING)

    def claimed(self, count: int) -> RelayState:
        self._expect(RelayState.CLAIMING)
        if count == 0:
            self.failures = 0
            self.delay = self.poll_interval
            return self._go(RelayState.IDLE)
        return self._go(RelayState.PUBLISHING)

    def published(self) -> RelayState:
        """The broker answered for every message of the claim (confirmed or not)."""
        self._expect(RelayState.PUBLISHING)
        return self._go(RelayState.MARKING)

    def marked(self, unconfirmed: int) -> RelayState:
        """Sent messages marked; `unconfirmed` were not confirmed and stay due."""
        self._expect(RelayState.MARKING)
        if unconfirmed:
            return self.failed(f"{unconfirmed} message(s) not confirmed by the broker")
        self.failures = 0
        return self._go(RelayState.CLAIMING)

    def waited(self) -> RelayState:
        if self.state not in (RelayState.IDLE, RelayState.BACKING_OFF):
            raise InvalidTransition(f"waited in state {self.state.value}")
        return self._go(RelayState.CLAIMING)

    def failed(self, error: str) -> RelayState:
        """A database or broker failure at any step: back off, doubling up to `backoff_max`."""
        if self.state is RelayState.STOPPED:
            return self.state
        self.failures += 1
        self.last_error = error
        self.delay = min(self.backoff_max, self.backoff_initial * 2 ** (self.failures - 1))
        return self._go(RelayState.BACKING_OFF)

    def stop(self) -> RelayState:
        return self._go(RelayState.STOPPED)

    def _expect(self, state: RelayState) -> None:
        if self.state is not state:
            raise InvalidTransition(f"expected state {state.value}, in {self.state.value}")

    def _go(self, state: RelayState) -> RelayState:
        if self.state is RelayState.STOPPED:
            return self.state
        self.state = state
        return state


class InvalidTransition(RuntimeError):
    """The shell reported an outcome the current state cannot have: a bug in the shell."""


def sent_prefix(rows: Sequence[StoredMessage], confirmed: Iterable[int]) -> list[int]:
    """The ids to mark sent: per stream, the confirmed rows up to its first unconfirmed one."""
    ok = set(confirmed)
    blocked: set[tuple[str, str]] = set()
    result: list[int] = []
    for row in rows:
        if row.stream in blocked:
            continue
        if row.id in ok:
            result.append(row.id)
        else:
            blocked.add(row.stream)
    return result
