"""Which queues hold messages just before a deletion: ready ones (AMQP) and unacknowledged ones
(the management API), combined without I/O."""

from __future__ import annotations

from topology.apply.emptiness import busy, not_empty_error


def test_ready_and_unacknowledged_messages_both_count() -> None:
    ready = {"a": 0, "b": 2, "c": 0, "gone": None}
    unacked = {"a": 1, "b": 0, "c": 0}
    assert busy(ready, unacked) == [("a", 0, 1), ("b", 2, 0)]


def test_without_unacknowledged_counts_only_ready_messages_count() -> None:
    assert busy({"a": 0, "b": 1, "gone": None}) == [("b", 1, 0)]


def test_a_missing_queue_is_empty_whatever_the_lagging_statistics_say() -> None:
    assert busy({"gone": None}, {"gone": 3}) == []


def test_the_error_names_what_each_queue_holds() -> None:
    message = str(not_empty_error("v", [("a", 0, 1), ("b", 2, 3)], started=False))
    assert message.startswith(
        "queue a (1 unacknowledged by a consumer), b (2 messages, 3 unacknowledged by a consumer) on vhost 'v' "
        "now holds messages"
    )
    assert "nothing was changed" in message
    assert "the apply stopped before deleting it" in str(not_empty_error("v", [("a", 1, 0)], started=True))
