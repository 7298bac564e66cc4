"""Runtime errors. Each says what happened and names what it concerns (events, queues)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from topology.amqp import FailureKind, root_cause
from topology.errors import RabbitformError


class BusError(RabbitformError):
    """A runtime failure the service can act on."""


class BrokerUnavailable(BusError):
    """The broker could not be reached (or refused the credentials). `kind` says what failed,
    from the failure's type (`topology.amqp.classify_failure`): "login" and "access" are refusals."""

    def __init__(self, message: str, kind: FailureKind | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class BrokerRefused(BusError):
    """The broker refused an operation by closing the channel: `reply_code` is its AMQP code
    (403 ACCESS_REFUSED: the user lacks the permission)."""

    def __init__(self, message: str, reply_code: int) -> None:
        super().__init__(message)
        self.reply_code = reply_code


class PublishError(BusError):
    """Some messages were not confirmed by the broker: they may not have been published.

    `unconfirmed` labels every message of the call that was not confirmed, `reasons` gives each
    one's reason (same order), `messages` the messages themselves (same order) so a caller can
    publish them again (at-least-once: one that timed out after it was sent may arrive twice).
    """

    def __init__(
        self,
        reason: str,
        unconfirmed: Sequence[str],
        items: Sequence[Any] = (),
        reasons: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.unconfirmed = list(unconfirmed)
        self.messages: list[Any] = list(items)
        self.reasons = list(reasons) or [reason] * len(self.unconfirmed)
        shown = ", ".join(self.unconfirmed[:10])
        more = f" and {len(self.unconfirmed) - 10} more" if len(self.unconfirmed) > 10 else ""
        super().__init__(f"{reason}: {len(self.unconfirmed)} message(s) not confirmed: {shown}{more}")

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(label, reason) for every message not confirmed."""
        return list(zip(self.unconfirmed, self.reasons, strict=True))


class UnroutableError(BusError):
    """The broker returned messages that no queue is bound for (they were not delivered)."""

    def __init__(self, unroutable: Sequence[str]) -> None:
        self.unroutable = list(unroutable)
        shown = ", ".join(self.unroutable[:10])
        more = f" and {len(self.unroutable) - 10} more" if len(self.unroutable) > 10 else ""
        super().__init__(
            f"{len(self.unroutable)} message(s) unroutable (no queue bound for their routing key): {shown}{more}; "
            "check the topology with `rabbitform plan`"
        )


class TopologyMissing(BusError):
    """The queues a consumer needs do not exist on the broker."""

    def __init__(self, vhost: str, queues: Sequence[str]) -> None:
        self.queues = list(queues)
        super().__init__(
            f"{len(self.queues)} queue(s) missing in vhost {vhost!r}: {', '.join(self.queues)}; "
            "create the topology first (`rabbitform plan SPEC` then `rabbitform apply SPEC`, "
            "or RabbitMqEventConfigurer.configure_subscribers)"
        )


def describe_error(error: BaseException | str) -> str:
    """The root cause of a pika connection error, in a few words.

    pika nests causes (`AMQPConnectionError(AMQPConnectionWorkflowFailed(...
    ConnectionRefusedError(111, ...)))`) and some of the wrappers print as nothing; a close by
    the broker reads `ConnectionClosedByBroker: 320 CONNECTION_FORCED - ...`.
    """
    if isinstance(error, str):
        return error
    current = root_cause(error)
    code, reply = getattr(current, "reply_code", None), getattr(current, "reply_text", None)
    text = f"{code} {reply}" if code is not None and reply is not None else str(current).strip()
    return f"{type(current).__name__}: {text}" if text else type(current).__name__


class NonRetryableError(Exception):
    """Raise it from a handler (or return it in a failure Result) to say that no retry can help:
    the message goes straight to its dead-letter queue, reason `non_retryable`. Subclass it for
    business errors of your own, or list their classes in the spec's `retry.dead_letter_on`."""
