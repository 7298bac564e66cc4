"""Wire compatibility with petisco 2.2.3 (a test-only dependency): both can share a bus."""

from __future__ import annotations

import json
from datetime import timezone

from petisco import DomainEvent

from bus_runtime.message import Event, InfoId
from bus_runtime.wire import decode, encode


class UserCreated(Event):
    user_id: str


class PetiscoUserCreated(DomainEvent):
    user_id: str


def petisco_event(user_id: str) -> PetiscoUserCreated:
    event = PetiscoUserCreated(user_id=user_id)
    event._message_name = "user.created"  # petisco names it after its class; ours is UserCreated
    return event


def test_petisco_format_json_parses_into_our_event() -> None:
    theirs = petisco_event("42")
    theirs.update_meta({"info_id": {"user_id": "42"}})
    ours = decode(theirs.format_json().encode(), UserCreated)
    assert isinstance(ours, UserCreated)
    assert ours.user_id == "42"
    assert ours.id == theirs._message_id.value
    assert ours.meta == {"info_id": {"user_id": "42"}}
    assert ours.info_id() == InfoId(user_id="42")
    expected = theirs._message_occurred_on.replace(tzinfo=timezone.utc)
    assert abs((ours.occurred_on - expected).total_seconds()) < 1e-3


def test_petisco_from_format_parses_our_body() -> None:
    ours = UserCreated(user_id="7").add_info_id(InfoId(correlation_id="c-1"))
    body = encode(ours, "alice", "petisco").body
    theirs = DomainEvent.from_format(body, target_type=PetiscoUserCreated)
    assert theirs.user_id == "7"
    assert theirs._message_id.value == ours.id
    assert theirs._message_name == "user.created"
    assert theirs._message_version == 1
    assert theirs._message_type == "domain_event"
    assert theirs._message_meta == {"info_id": {"correlation_id": "c-1"}}
    assert abs((theirs._message_occurred_on - ours.occurred_on).total_seconds()) < 1e-3
    generic = DomainEvent.from_format(body)
    assert generic.get_message_attributes() == {"user_id": "7"}


def test_our_body_shape() -> None:
    event = UserCreated(user_id="1")
    data = json.loads(encode(event, "alice", "petisco").body)["data"]
    assert set(data) == {"id", "type", "type_message", "version", "occurred_on", "attributes", "meta"}
    assert (data["type"], data["type_message"], data["version"]) == ("user.created", "domain_event", 1)
