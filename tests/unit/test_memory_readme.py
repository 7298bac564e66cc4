"""The README's in-memory example, kept true (with the demo's handler and message)."""

from __future__ import annotations

from bus_runtime import EventSubscriber, retry
from bus_runtime.pytest_plugin import MakeMemoryBroker
from examples.memory_demo import UserCreated, send_mail_handler


def test_a_bounce_ends_in_the_dead_letter_queue(make_memory_broker: MakeMemoryBroker) -> None:
    broker = make_memory_broker("specs/alice.yaml", consume=False)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])], max_retries=5)
    broker.event_bus("petisco").publish(UserCreated(user_id="42", email="bounce@example.com"))
    broker.run_until_idle()  # five retries, 5000 ms apart, in no real time
    assert broker.calls("send_mail_handler") == 6
    assert broker.now_ms == 25_000
    [dead] = broker.messages("dead_letter.alice.petisco.1.event.user.created.send_mail_handler")
    assert dead.headers[retry.DEAD_LETTER_REASON] == "retries_exhausted"
    assert dead.headers[retry.ERROR_MESSAGE] == "mailbox bounce@example.com does not exist"
