"""The circuit breaker's state machine (pure, on a clock the test gives)."""

from __future__ import annotations

import pytest

from bus_runtime.breaker import BreakerSettings, CircuitBreaker


def breaker(failures: int = 3, window_s: float = 10, pause_s: float = 5) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(failures, window_s, pause_s))


def test_failures_within_the_window_open_it() -> None:
    b = breaker()
    assert [b.record(False, t) for t in (0, 1, 2)] == [None, None, "open"]
    assert not b.admits()


def test_failures_spread_wider_than_the_window_do_not() -> None:
    b = breaker()
    assert [b.record(False, t) for t in (0, 6, 11, 17)] == [None, None, None, None]
    assert b.state == "closed" and b.admits()


def test_after_the_pause_one_delivery_goes_through_and_success_closes_it() -> None:
    b = breaker()
    for t in (0, 1, 2):
        b.record(False, t)
    assert b.pause_over(6.9) is None
    assert b.pause_over(7) == "half_open"
    assert b.admits() and not b.admits()  # one probe only
    assert b.record(True, 7.5) == "closed"
    assert b.admits()
    assert b.record(False, 8) is None  # the old failures are forgotten


def test_a_failed_probe_opens_it_again_for_another_pause() -> None:
    b = breaker(failures=1)
    b.record(False, 0)
    b.pause_over(5)
    assert b.admits()
    assert b.record(False, 5.2) == "open"
    assert b.reopen_at() == pytest.approx(10.2)


def test_outcomes_of_deliveries_in_flight_when_it_opened_change_nothing() -> None:
    b = breaker(failures=1)
    b.record(False, 0)
    assert b.record(True, 0.1) is None and b.record(False, 0.2) is None
    assert b.state == "open" and b.reopen_at() == 5


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        BreakerSettings(0, 1, 1)
