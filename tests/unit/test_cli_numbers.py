"""Numbers from the command line are finite and bounded: one line, exit 1, before any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from topology.cli.main import main

ALICE = str(Path(__file__).resolve().parents[2] / "specs" / "alice.yaml")
PUBLISH = ["publish", ALICE, "--service", "petisco", "--event", "UserCreated", "--url", "amqp://127.0.0.1:1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*PUBLISH, "--connect-timeout", "nan"], "--connect-timeout must be a number of seconds > 0"),
        ([*PUBLISH, "--connect-timeout", "inf"], "--connect-timeout must be a number of seconds > 0"),
        (["consume", ALICE, "--prefetch", "70000"], "--prefetch must be from 1 to 65535"),
        (["consume", ALICE, "--workers", "0"], "--workers from 1 to 1024"),
        (["status", ALICE, "--watch", "nan"], "--watch nan: give a number of seconds from 0.5 to 86400"),
    ],
)
def test_unbounded_numbers_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
