"""Handle one delivery: parse it, run the handler, decide what happens next.

Transport-independent: the RabbitMQ consumer and the in-memory broker feed deliveries in and
carry the returned `Decision` out (republish, then ack), so both behave the same.
"""

from __future__ import annotations

import inspect
import os
import socket
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from meiga import Result

from bus_runtime.async_handlers import resolve
from bus_runtime.errors import NonRetryableError
from bus_runtime.message import Message
from bus_runtime.retry import DEAD_LETTER_REASON, Decision, Delivery, Failure, class_paths, decide
from bus_runtime.subscriber import Handler, Subscription
from bus_runtime.telemetry import hooks
from bus_runtime.wire import PoisonMessage, decode
from topology import naming


def run_handler(handler: Handler, message: Message) -> Failure | None:
    """None on success. A failure Result, an exception, or a return that is not a Result all fail.

    An `async def` handler's coroutine runs to completion on its event loop (`bus_runtime.async_handlers`).
    """
    try:
        result = resolve(handler(message))
    except Exception as exc:  # a handler's bug must not kill the consumer
        return _raised(exc)
    return failure_of(result)


async def run_handler_async(handler: Handler, message: Message) -> Failure | None:
    """`run_handler` on the event loop: awaits an async handler's coroutine where it runs."""
    try:
        result = handler(message)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # a handler's bug must not kill the consumer
        return _raised(exc)
    return failure_of(result)


def failure_of(result: object) -> Failure | None:
    """What a handler's return value means: a success Result is None, anything else a Failure."""
    if not isinstance(result, Result):
        return Failure("InvalidHandlerResult", f"handler returned {type(result).__name__}, not a meiga Result")
    if result.is_success:
        return None
    error = result.value
    message_text = getattr(error, "message", None) or str(error)
    return Failure(
        type(error).__name__,
        str(message_text),
        non_retryable=isinstance(error, NonRetryableError),
        classes=class_paths(error),
        # an error returned, never raised, has no traceback to tell
        traceback=_traceback_of(error) if isinstance(error, BaseException) and error.__traceback__ else "",
    )


def _raised(exc: BaseException) -> Failure:
    return Failure(
        type(exc).__name__,
        str(exc) or repr(exc),
        non_retryable=isinstance(exc, NonRetryableError),
        classes=class_paths(exc),
        traceback=_traceback_of(exc),
    )


def _traceback_of(exc: BaseException) -> str:
    """The exception's traceback as Python prints it, without the source lines: reading source
    files on a handler thread would slow every failing delivery (bounded where it becomes a header)."""
    frames = traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__), lookup_lines=False)
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n' for frame in frames)
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def failure_of_exception(exc: BaseException) -> Failure:
    """A failure outside the handler (a bug in the runtime, or SystemExit in a handler)."""
    return _raised(exc)


def handle_delivery(
    subscription: Subscription,
    body: bytes,
    routing_key: str,
    headers: Mapping[str, Any] | None,
    now: datetime | None = None,
) -> tuple[Decision, Message | None]:
    """Parse and handle one delivery; returns the decision and the parsed message (if any)."""
    delivery = delivery_of(subscription, routing_key, headers)
    with hooks.handler_call(subscription.handler_name, delivery.headers) as call:
        message, poison = _parse(subscription, body, call)
        failure = poison or run_handler(subscription.handler, message)  # type: ignore[arg-type]
        return _decided(delivery, failure, subscription.max_retries, now, call), message


async def handle_delivery_async(
    subscription: Subscription,
    body: bytes,
    routing_key: str,
    headers: Mapping[str, Any] | None,
    now: datetime | None = None,
) -> tuple[Decision, Message | None]:
    """`handle_delivery` for an `async def` handler, run on its event loop (no thread hop)."""
    delivery = delivery_of(subscription, routing_key, headers)
    with hooks.handler_call(subscription.handler_name, delivery.headers) as call:
        message, poison = _parse(subscription, body, call)
        failure = poison or await run_handler_async(subscription.handler, message)  # type: ignore[arg-type]
        return _decided(delivery, failure, subscription.max_retries, now, call), message


def _decided(
    delivery: Delivery, failure: Failure | None, max_retries: int, now: datetime | None, call: hooks.HandlerCall
) -> Decision:
    """The decision, recorded as the handler call's outcome (for telemetry)."""
    decision = decide(delivery, failure, max_retries, now or _now())
    call.outcome = decision.action
    if decision.action == "retry" and hooks.active():
        tier = naming.retry_tier_of(decision.routing_key)
        hooks.retried(delivery.handler, tier[1] if tier else 1)
    elif decision.action == "dead_letter" and hooks.active():
        hooks.dead_lettered(delivery.handler, str(decision.headers.get(DEAD_LETTER_REASON, "")))
    return decision


def _parse(subscription: Subscription, body: bytes, call: hooks.HandlerCall) -> tuple[Message | None, Failure | None]:
    """The message, or the poison failure that sends it to the dead-letter queue at once."""
    try:
        message = decode(body, subscription.message_class)
    except PoisonMessage as exc:
        return None, Failure("PoisonMessage", str(exc), poison=True)
    call.event = message.message_type
    return message, None


def delivery_of(subscription: Subscription, routing_key: str, headers: Mapping[str, Any] | None) -> Delivery:
    """What the retry decision needs to know about a delivery on this subscription's queue."""
    return Delivery(
        organization=subscription.organization,
        service=subscription.service,
        queue=subscription.queue,
        handler=subscription.handler_name,
        routing_key=routing_key,
        headers=dict(headers or {}),
        layout=subscription.layout,
        store=subscription.message_class is None,
        attempt_tiers=subscription.attempt_tiers,
        dead_letter_on=subscription.dead_letter_on,
        host=_HOST,
        pid=os.getpid(),
    )


_HOST = socket.gethostname()


def _now() -> datetime:
    return datetime.now(timezone.utc)
