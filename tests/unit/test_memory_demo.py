"""`make demo`'s in-memory story tells what the README promises."""

from __future__ import annotations

import pytest

from examples.memory_demo import main

QUEUE = "alice.petisco.1.event.user.created.send_mail_handler"


def test_the_story_shows_a_retry_after_the_ttl_and_a_dead_letter(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    out = capsys.readouterr().out
    assert f"-> queue retry.{QUEUE} (waits 5000 ms)" in out
    assert f"5000 ms  expired in retry.{QUEUE}: back through alice.petisco [retry.{QUEUE}]" in out
    assert "send_mail_handler succeeded: ack" in out
    assert f"dead-lettered (retries_exhausted): to dead_letter.alice.petisco [dead_letter.{QUEUE}]" in out
    assert "rabbitform-error-message: mailbox bounce@example.com does not exist" in out
    assert f"queues holding messages: {{'dead_letter.{QUEUE}': 1}}" in out
