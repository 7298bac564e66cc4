"""Apply progress on stderr: silent for small applies, a counter on a terminal, periodic lines otherwise."""

from __future__ import annotations

import io

from topology.cli.progress import ProgressReporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_small_applies_print_nothing() -> None:
    stream = io.StringIO()
    report = ProgressReporter(stream, threshold=200)
    for done in range(1, 100):
        report(done, 99)
    assert stream.getvalue() == ""


def test_a_terminal_gets_one_counter_rewritten_in_place() -> None:
    stream = Terminal()
    report = ProgressReporter(stream, threshold=10)
    report(500, 1000)
    report(1000, 1000)
    assert stream.getvalue() == "\rApplying: 500/1000 objects (50%)\rApplying: 1000/1000 objects (100%)\n"


def test_a_log_gets_a_line_now_and_then_and_the_last_one() -> None:
    stream = io.StringIO()
    report = ProgressReporter(stream, threshold=10, interval=3600)
    for done in (100, 200, 300, 400):
        report(done, 400)
    assert stream.getvalue().splitlines() == ["Applying: 100/400 objects (25%)", "Applying: 400/400 objects (100%)"]
