"""The circuit breaker of one subscriber, as a pure state machine over a clock the caller gives.

`failures` failures within `window_s` open it: the consumer stops taking the subscriber's
deliveries (the ones it holds go back unhandled, not counted as attempts) for `pause_s`; then
it is half-open and lets one delivery through: success closes it, failure opens it again.
The RabbitMQ consumer and the in-memory broker drive the same machine, on wall-clock and
virtual time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from bus_runtime.retry import DEAD_LETTER_REASON, REASON_RETRIES_EXHAUSTED, Decision

State = Literal["closed", "half_open", "open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}  # the state gauge's values


@dataclass(frozen=True)
class BreakerSettings:
    """The spec's `circuit_breaker`, as plain data (the runtime does not load the spec models)."""

    failures: int
    window_s: float
    pause_s: float

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_s <= 0 or self.pause_s <= 0:
            raise ValueError("circuit_breaker needs failures >= 1, window_s > 0 and pause_s > 0")


@dataclass
class CircuitBreaker:
    """One subscriber's breaker. Times are seconds on any monotonic clock."""

    settings: BreakerSettings
    state: State = "closed"
    opened_at: float | None = None
    probing: bool = False  # half-open: the one delivery let through is out
    _failures: deque[float] = field(default_factory=deque)

    def admits(self) -> bool:
        """Whether a delivery may run now (half-open: only the first one, the probe)."""
        if self.state == "closed":
            return True
        if self.state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def record(self, ok: bool, now: float) -> State | None:
        """A handled delivery's outcome; returns the state it moved to, if it moved.

        Outcomes that arrive while open (deliveries in flight when it opened) change nothing.
        """
        if self.state == "half_open":
            return self._to("closed", now) if ok else self._to("open", now)
        if self.state == "open" or ok:
            return None
        window = self._failures
        window.append(now)
        while window and window[0] <= now - self.settings.window_s:
            window.popleft()
        return self._to("open", now) if len(window) >= self.settings.failures else None

    def pause_over(self, now: float) -> State | None:
        """The pause ran out: half-open, ready to let one delivery through."""
        if self.state != "open" or self.opened_at is None or now < self.opened_at + self.settings.pause_s:
            return None
        return self._to("half_open", now)

    def reopen_at(self) -> float | None:
        """When the pause of an open breaker runs out."""
        return None if self.opened_at is None or self.state != "open" else self.opened_at + self.settings.pause_s

    def _to(self, state: State, now: float) -> State:
        self.state = state
        self.probing = False
        if state == "open":
            self.opened_at = now
        if state == "closed":
            self._failures.clear()
            self.opened_at = None
        return state


def counts_as_success(decision: Decision) -> bool:
    """What a breaker hears of a handled delivery: a failure that could be retried (or ran out of
    retries) is the dependency's failure; a success, a poison body or a non-retryable error is
    not (the handler ran and gave an answer)."""
    if decision.action == "retry":
        return False
    if decision.action == "dead_letter":
        return decision.headers.get(DEAD_LETTER_REASON) != REASON_RETRIES_EXHAUSTED
    return True
