"""`PublishError` carries every message not confirmed, each with its reason (no broker)."""

from __future__ import annotations

from bus_runtime.errors import PublishError


def test_each_unconfirmed_message_has_its_reason_and_its_message() -> None:
    error = PublishError(
        "1 nacked by the broker; 1 no broker confirm within 3s (not sent)",
        ["user.created a", "user.created b"],
        items=["A", "B"],
        reasons=["nacked by the broker", "no broker confirm within 3s (not sent)"],
    )
    assert error.failures == [
        ("user.created a", "nacked by the broker"),
        ("user.created b", "no broker confirm within 3s (not sent)"),
    ]
    assert error.messages == ["A", "B"]
    assert str(error).endswith("2 message(s) not confirmed: user.created a, user.created b")


def test_without_reasons_every_message_has_the_error_s_reason() -> None:
    error = PublishError("the publisher is closed", ["x", "y"])
    assert error.failures == [("x", "the publisher is closed"), ("y", "the publisher is closed")]
    assert error.messages == []
