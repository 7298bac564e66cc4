"""`RabbitMqEventBus` and `RabbitMqCommandBus`: the seed's `bus.publish(event)`, confirmed.

`publish` returns once the broker confirmed every message (persistent, `mandatory`); a list
is one batch with many messages in flight. See `bus_runtime.publisher` for the guarantees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pika

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import PublishError
from bus_runtime.limits import DEFAULT_MAX_MESSAGE_SIZE, check_body, check_headers, check_timeout
from bus_runtime.message import Command, Event, Message
from bus_runtime.publisher import ConfirmedPublisher, OnUnroutable, Outgoing
from bus_runtime.wire import WireMessage, encode
from topology import naming

CHUNK = 500  # messages encoded per hand-over to the I/O thread


def outgoing(
    message: Message,
    organization: str,
    service: str,
    headers: Mapping[str, Any] | None = None,
    layout: naming.Layout = naming.DEFAULT_LAYOUT,
) -> Outgoing:
    """A message as the publisher sends it: wire body plus AMQP properties."""
    return outgoing_of(encode(message, organization, service, headers, layout), organization, service)


def outgoing_of(wire: WireMessage, organization: str, service: str) -> Outgoing:
    """An encoded message as the publisher sends it (the outbox relay publishes stored ones)."""
    properties = pika.BasicProperties(
        message_id=wire.message_id,
        type=wire.type,
        content_type=wire.content_type,
        timestamp=wire.timestamp,
        delivery_mode=wire.delivery_mode,
        app_id=service,
        headers=dict(wire.headers) or None,
    )
    return Outgoing(
        naming.exchange(organization, service),
        wire.routing_key,
        wire.body,
        properties,
        f"{wire.type} {wire.message_id}",
    )


class _MessageBus:
    kind: ClassVar[type[Message]] = Message

    def __init__(
        self,
        connector: RabbitMqConnector | None,
        organization: str,
        service: str,
        *,
        on_unroutable: OnUnroutable = "log",
        timeout: float = 30.0,
        window: int = 20_000,
        layout: naming.Layout = naming.DEFAULT_LAYOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        """`max_message_size` is the broker's (`max_message_size` in rabbitmq.conf: 128 MiB by
        default on 3.x, 16 MiB on 4.x): a larger body is refused at `publish`."""
        if connector is not None and not isinstance(connector, RabbitMqConnector):
            raise TypeError(f"connector must be a RabbitMqConnector or None, not {type(connector).__name__}")
        for name, value in (("organization", organization), ("service", service)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        check_timeout(timeout)
        if not naming.ORGANIZATION_PATTERN.match(organization) or not naming.SERVICE_PATTERN.match(service):
            raise ValueError(
                f"invalid organization/service {organization!r}/{service!r}: lower case, digits, '_' or '-'"
            )
        self.connector = connector or RabbitMqConnector()
        self.organization = organization
        self.service = service
        self.layout = layout  # whose routing keys: rabbitform's (`user.created`) or petisco's (`user_created`)
        self.max_message_size = max_message_size
        self._publisher = ConfirmedPublisher(
            self.connector,
            purpose=f"{type(self).__name__}-{organization}.{service}",
            window=window,
            timeout=timeout,
            on_unroutable=on_unroutable,
        )

    @property
    def unroutable_count(self) -> int:
        """How many published messages the broker returned as unroutable so far."""
        return self._publisher.unroutable_count

    @property
    def connection_count(self) -> int:
        """Connections opened so far: more than one means the bus reconnected."""
        return self._publisher.connection_count

    def publish(
        self,
        messages: Message | Sequence[Message],
        headers: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> list[Message]:
        """Publish one message or a batch; returns the ones returned as unroutable.

        `headers` (e.g. `traceparent`) travel with the messages, through retries too;
        `timeout` overrides the bus's for this call.
        Raises `PublishError` naming every message the broker did not confirm, with its reason;
        its `messages` are those messages, to publish again. What the broker would refuse
        (headers it cannot encode or that do not fit its `frame_max`, a body over
        `max_message_size`) raises `MessageRefused` before anything is sent.
        """
        name, kind = type(self).__name__, self.kind.__name__
        if isinstance(messages, Message):
            batch = [messages]
        elif isinstance(messages, Iterable) and not isinstance(messages, str | bytes | Mapping):
            batch = list(messages)
        else:
            raise TypeError(
                f"{name}.publish: messages must be a {kind} or a list of them, not {type(messages).__name__}"
            )
        for position, message in enumerate(batch):
            if not isinstance(message, self.kind):
                raise TypeError(
                    f"{name}.publish: messages[{position}] is a {type(message).__name__}; {name} publishes {kind}s"
                )
        check_timeout(timeout)
        check_headers(headers, self._publisher.frame_max)
        items: list[Outgoing] = []

        def chunks() -> Iterator[list[Outgoing]]:
            for start in range(0, len(batch), CHUNK):
                chunk = [
                    outgoing(m, self.organization, self.service, headers, self.layout)
                    for m in batch[start : start + CHUNK]
                ]
                for item in chunk:
                    check_body(item.label, len(item.body), self.max_message_size)
                items.extend(chunk)
                yield chunk

        try:
            returned = {id(item) for item in self._publisher.publish_chunks(chunks(), timeout)}
        except PublishError as error:
            sent = {id(item): message for message, item in zip(batch, items, strict=False)}
            error.messages = [sent.get(id(item), item) for item in error.messages]
            raise
        return [message for message, item in zip(batch, items, strict=True) if id(item) in returned]

    def close(self) -> None:
        self._publisher.close()

    def __enter__(self) -> _MessageBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class RabbitMqEventBus(_MessageBus):
    """Publishes domain events to the service's exchange `<organization>.<service>`."""

    kind = Event


class RabbitMqCommandBus(_MessageBus):
    """Publishes commands (routing key `<org>.<service>.<version>.command.<name>`)."""

    kind = Command
