"""The naming convention: message names, exchanges, queues, routing keys, store names, patterns."""

from __future__ import annotations

import pytest

from topology import naming


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("UserCreated", "user.created"),
        ("HTTPRequestFailed", "http.request.failed"),
        # "OAuth" is O + Auth to any rule without a dictionary; petisco splits it the same way.
        ("OAuth2TokenIssued", "o.auth2.token.issued"),
        ("UserV2Created", "user.v2.created"),
        ("Created", "created"),
        ("A", "a"),
        ("HTTP", "http"),
        ("UserID", "user.id"),
        ("S3BucketCreated", "s3.bucket.created"),
        ("HTTP2RequestSent", "http2.request.sent"),
        ("Order66Executed", "order66.executed"),
        ("PersistUser", "persist.user"),
        ("XMLHTTPRequest", "xmlhttp.request"),
    ],
)
def test_message_name(class_name: str, expected: str) -> None:
    assert naming.message_name(class_name) == expected


@pytest.mark.parametrize(
    "class_name",
    [
        "",
        "userCreated",
        "user_created",
        "User_Created",
        "User.Created",
        "2User",
        "User Created",
        "UserCreated!",
        "É",
        "UserCreated\n",
    ],
)
def test_message_name_rejects_what_is_not_a_camel_case_class_name(class_name: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        naming.message_name(class_name)


def test_routing_keys_for_events_and_commands() -> None:
    assert naming.routing_key("alice", "petisco", 1, "event", "user.created") == "alice.petisco.1.event.user.created"
    assert (
        naming.routing_key("alice", "petisco", 2, "command", "persist.user") == "alice.petisco.2.command.persist.user"
    )


def test_exchanges() -> None:
    assert naming.exchange("alice", "petisco") == "alice.petisco"
    assert naming.retry_exchange("alice", "petisco") == "retry.alice.petisco"
    assert naming.dead_letter_exchange("alice", "petisco") == "dead_letter.alice.petisco"
    assert naming.service_exchanges("alice", "petisco") == (
        "alice.petisco",
        "retry.alice.petisco",
        "dead_letter.alice.petisco",
    )


def test_subscriber_queue_and_its_retry_and_dead_letter_queues() -> None:
    queue = naming.subscriber_queue("alice", "petisco", 1, "event", "user.created", "send_mail_handler")
    assert queue == "alice.petisco.1.event.user.created.send_mail_handler"
    assert naming.retry_queue(queue) == "retry.alice.petisco.1.event.user.created.send_mail_handler"
    assert naming.dead_letter_queue(queue) == "dead_letter.alice.petisco.1.event.user.created.send_mail_handler"


def test_command_queue() -> None:
    assert (
        naming.subscriber_queue("alice", "petisco", 1, "command", "persist.user", "persist_user_handler")
        == "alice.petisco.1.command.persist.user.persist_user_handler"
    )


def test_store_names() -> None:
    assert naming.DEFAULT_STORE_QUEUE == "store"
    assert naming.store_queues("store") == ("store", "retry.store", "dead_letter.store")
    assert naming.store_queues("audit") == ("audit", "retry.audit", "dead_letter.audit")


def test_service_patterns_match_every_event_and_command_of_the_service() -> None:
    assert naming.service_patterns("alice", "petisco") == ["alice.petisco.*.event.#", "alice.petisco.*.command.#"]


def test_owned_queue_prefixes() -> None:
    assert naming.owned_queue_prefixes("alice", "petisco") == (
        "alice.petisco.",
        "retry.alice.petisco.",
        "dead_letter.alice.petisco.",
    )


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (
            naming.ORGANIZATION_PATTERN,
            ["alice", "a", "acme-corp", "team_2"],
            ["Alice", "alice.x", "2alice", "", "-a", "alice\n"],
        ),
        (naming.SERVICE_PATTERN, ["petisco", "user-api", "svc_1"], ["Petisco", "pet.isco", "_svc", "pet isco"]),
        (
            naming.SUBSCRIBER_PATTERN,
            ["send_mail_handler", "h", "h2"],
            ["Send", "send-mail", "send.mail", "_h", "", "h\n"],
        ),
        (naming.MESSAGE_CLASS_PATTERN, ["UserCreated", "A", "OAuth2"], ["userCreated", "User_Created", "", "1A"]),
        (
            naming.QUEUE_NAME_PATTERN,
            ["store", "event-store", "store_2"],
            ["Store", "store.x", "", "retry.store", "store\n"],
        ),
    ],
)
def test_identifier_rules(pattern: object, good: list[str], bad: list[str]) -> None:
    import re

    assert isinstance(pattern, re.Pattern)
    for name in good:
        assert pattern.match(name), name
    for name in bad:
        assert not pattern.match(name), name


def test_no_two_seed_names_collide() -> None:
    """The store cannot share a name with a subscriber's queues: store names have no dots."""
    queue = naming.subscriber_queue("alice", "petisco", 1, "event", "user.created", "send_mail_handler")
    names = {queue, naming.retry_queue(queue), naming.dead_letter_queue(queue), *naming.store_queues("store")}
    assert len(names) == 6
