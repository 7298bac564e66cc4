"""The seed's handlers: `send_mail_handler` on `UserCreated`, and `event_store` on every event.

specs/alice.yaml names them by import path (`examples.rabbitmq.handlers:send_mail_handler`),
so `rabbitform consume specs/alice.yaml` runs them too.
"""

from __future__ import annotations

from meiga import BoolResult, isSuccess

from bus_runtime import Event, EventSubscriber

ORGANIZATION = "alice"
SERVICE = "petisco"


class UserCreated(Event):
    user_id: str


def send_mail_handler(event: UserCreated) -> BoolResult:
    # Do your stuff here; return isFailure (or raise) to have the event retried.
    info = event.info_id()
    say(f"send_mail_handler: welcome mail to user {event.user_id} ({event.id}, info_id {info})")
    return isSuccess


def event_store(event: Event) -> BoolResult:
    """The store hears every event and command of the organization's services."""
    say(f"event_store: stored {event.message_type} {event.id} {event.attributes}")
    return isSuccess


def say(line: str) -> None:
    print(line + "\n", end="", flush=True)  # one write: handlers run on several threads


SUBSCRIBERS = [EventSubscriber(UserCreated, [send_mail_handler])]
