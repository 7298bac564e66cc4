"""Progress on stderr: quick phases print nothing, long ones a status and a closing line."""

from __future__ import annotations

import io

from topology.cli.progress import ProgressReporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter(stream: io.StringIO, clock: Clock) -> ProgressReporter:
    return ProgressReporter(stream, delay=2.0, clock=clock, ticker=False)


def test_quick_phases_print_nothing() -> None:
    stream, clock = io.StringIO(), Clock()
    report = reporter(stream, clock)
    report.phase("Reading vhost 'v'", 3)
    clock.now = 1.0
    report.tick()
    report.advance(3)
    report.finish("read 7 objects")
    assert stream.getvalue() == ""


def test_a_long_phase_in_a_log_gets_status_lines_and_a_closing_line() -> None:
    stream, clock = io.StringIO(), Clock()
    report = reporter(stream, clock)
    report.phase("Deleting queues", 400)
    report.advance(100)
    clock.now = 2.0
    report.tick()
    report.advance(400)
    clock.now = 3.0
    report.finish("400 done")
    assert stream.getvalue().splitlines() == [
        "Deleting queues: 100/400 (25%), 2 s",
        "Deleting queues: 400 done, 3.0 s",
    ]


def test_a_terminal_gets_one_status_rewritten_in_place() -> None:
    stream, clock = Terminal(), Clock()
    report = reporter(stream, clock)
    report.phase("Creating objects", 1000)
    clock.now = 2.0
    report.tick()
    report.advance(500)
    clock.now = 4.0
    report.finish()
    assert stream.getvalue() == (
        "\rCreating objects: 0/1000 (0%), 2 s\x1b[K\rCreating objects: 500/1000 (50%), 2 s\x1b[K"
        "\rCreating objects: 4.0 s\x1b[K\n"
    )


def test_a_phase_without_a_total_shows_its_time_and_a_new_phase_closes_the_last() -> None:
    stream, clock = io.StringIO(), Clock()
    report = reporter(stream, clock)
    report.phase("Planning")
    clock.now = 5.0
    report.tick()
    report.phase("Verifying")
    assert stream.getvalue().splitlines() == ["Planning: 5 s", "Planning: 5.0 s"]


def test_waiting_on_a_slow_broker_says_it_is_busy_not_down() -> None:
    stream = io.StringIO()
    ProgressReporter(stream, ticker=False).waiting("GET /api/definitions/v", 20.4)
    assert stream.getvalue() == (
        "  still waiting for GET /api/definitions/v after 20 s; the broker answers, so it is busy, not down\n"
    )
