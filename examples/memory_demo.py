"""The seed's story on the in-memory broker, from specs/alice.yaml, with no broker installed.

`UserCreated` is published; the store hears it; `send_mail_handler` fails once, the message
waits in `retry.<queue>` for the queue's TTL (virtual time), comes back to that queue alone and
succeeds. A second event whose mail always bounces ends in `dead_letter.<queue>` with its reason.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Event, EventSubscriber, retry
from bus_runtime.memory import InMemoryBroker

SPEC = Path(__file__).resolve().parents[1] / "specs" / "alice.yaml"


class UserCreated(Event):
    user_id: str
    email: str


class MailError(Error):
    def __init__(self, message: str) -> None:
        self.message = message


attempts: Counter[str] = Counter()


def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
    """The SMTP server is busy the first time; a bouncing address never works."""
    attempts[event.id] += 1
    if event.email.startswith("bounce"):
        return Failure(MailError(f"mailbox {event.email} does not exist"))
    if attempts[event.id] == 1:
        return Failure(MailError("SMTP server busy, try later"))
    return isSuccess


def event_store(event: Any) -> Result[bool, Error]:
    return isSuccess


def main() -> None:
    broker = InMemoryBroker.from_spec(SPEC)
    spec = broker.spec
    assert spec is not None
    [subscriber] = [s for s in spec.subscribers() if s.name == "send_mail_handler"]
    consumer = broker.consumer(
        "petisco", [EventSubscriber(UserCreated, [send_mail_handler])], subscriber.retry.max_retries
    )
    consumer.consume_store(event_store)
    bus = broker.event_bus("petisco")
    print(
        f"\n$ python examples/memory_demo.py    # the seed's story on the in-memory broker, no RabbitMQ\n"
        f"built from {SPEC.name}: {len(broker.exchange_names)} exchanges, {len(broker.queue_names)} queues"
    )
    print(
        f"send_mail_handler: retry delay {subscriber.retry.delay_ms} ms, at most {subscriber.retry.max_retries} retries"
    )

    print("\n# 1. UserCreated; the mail server is busy once (times are virtual)")
    bus.publish(UserCreated(user_id="1", email="alice@example.com"))
    broker.run_until_idle()
    print(broker.format_trace())

    print("\n# 2. UserCreated for an address that always bounces")
    mark = len(broker.trace)
    bus.publish(UserCreated(user_id="2", email="bounce@example.com"))
    broker.run_until_idle()
    print(broker.format_trace(broker.trace[mark:]))

    [dead] = broker.messages(f"dead_letter.{subscriber.queue}")
    print(f"\n{dead.routing_key} holds user {dead.decode(UserCreated).attributes['user_id']}:")
    for header in (retry.DEAD_LETTER_REASON, retry.RETRY_COUNT, retry.ERROR_TYPE, retry.ERROR_MESSAGE):
        print(f"  {header}: {dead.headers[header]}")
    print(f"handler calls: {dict(sorted((h, n) for (_, h), n in broker.handler_calls().items()))}")
    print(f"queues holding messages: {broker.depths()}")


if __name__ == "__main__":
    main()
