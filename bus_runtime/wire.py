"""The wire format: the JSON body and AMQP properties of a message.

Body: `{"data": {"id", "type", "type_message", "version", "occurred_on", "attributes", "meta"}}`,
the shape petisco services use, so both can share a bus. Pure: no pika here; the transports
turn `WireMessage` into their own property objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from bus_runtime.message import Command, Envelope, Event, Message, _new_id, decoding
from bus_runtime.telemetry import hooks
from topology import naming

CONTENT_TYPE = "application/json"
# petisco writes and parses this exact format (UTC, no offset); we read ISO 8601 too.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_EVENT_WIRE_TYPES = {"domain_event", "event", "message"}
_dumps = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class WireMessage:
    """A message ready to publish: body plus the AMQP properties we set."""

    body: bytes
    message_id: str
    type: str
    timestamp: int
    routing_key: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str = CONTENT_TYPE
    delivery_mode: int = 2  # persistent


class PoisonMessage(Exception):
    """A delivery that no retry can fix: unparsable, or not the type the queue expects."""


def encode_body(message: Message, envelope: Envelope | None = None) -> bytes:
    env = envelope or message.envelope()
    data = {
        "data": {
            "id": env.id,
            "type": env.name,
            "type_message": message.wire_type(),
            "version": env.version,
            "occurred_on": env.occurred_on.astimezone(timezone.utc).strftime(TIME_FORMAT),
            "attributes": message.attributes,
            "meta": env.meta,
        }
    }
    return _dumps(data).encode()


def encode(
    message: Message,
    organization: str,
    service: str,
    headers: Mapping[str, Any] | None = None,
    layout: naming.Layout = naming.DEFAULT_LAYOUT,
) -> WireMessage:
    """The message as published in `layout`: its routing key and `data.type` follow the layout's names."""
    env = message.envelope()
    routing_name = env.name
    if layout != naming.DEFAULT_LAYOUT:
        routing_name, name = message.layout_names(layout)
        env = env._replace(name=name)
    routing_key = naming.routing_key(organization, service, env.version, message.message_kind, routing_name)
    message_headers = dict(headers or {})
    if hooks.active():  # e.g. tracing adds `traceparent`
        hooks.publishing(naming.exchange(organization, service), routing_key, env.name, message_headers)
    return WireMessage(
        body=encode_body(message, env),
        message_id=env.id,
        type=env.name,
        timestamp=int(env.occurred_on.timestamp()),
        routing_key=routing_key,
        headers=message_headers,
    )


def decode(body: bytes, expected: type[Message] | None = None) -> Message:
    """Parse a body into `expected` (checked by name, version and kind), or into a generic
    `Event`/`Command` carrying the sender's name when `expected` is None (the store).

    Raises `PoisonMessage` with the reason when no retry could ever make it parse.
    """
    data = _data_of(body)
    name = data.get("type")
    if not isinstance(name, str) or not name:
        raise PoisonMessage("body has no data.type")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise PoisonMessage(f"data.version is not an integer: {version!r}")
    wire_type = str(data.get("type_message", "domain_event"))
    is_command = wire_type == "command"
    if not is_command and wire_type not in _EVENT_WIRE_TYPES:
        raise PoisonMessage(f"unknown data.type_message {wire_type!r}")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise PoisonMessage("data.attributes is not an object")

    target: type[Message]
    if expected is None:
        target = Command if is_command else Event
    else:
        expected_kind = expected.message_kind
        if (version, is_command) != (expected.version, expected_kind == "command") or (
            name != expected.message_name() and name not in expected.wire_names()
        ):
            raise PoisonMessage(
                f"unexpected message type {name!r} v{version} ({wire_type}); this queue expects "
                f"{expected.message_name()!r} v{expected.version} ({expected.wire_type()})"
            )
        target = expected
    try:
        with decoding():
            message = target(**attributes)
    except ValidationError as exc:
        raise PoisonMessage(f"attributes do not match {target.__name__}: {_first(exc)}") from None
    except TypeError as exc:
        raise PoisonMessage(f"attributes do not match {target.__name__}: {exc}") from None
    private = message.__pydantic_private__ or {}  # one dict write each: decoding is a hot path
    private["_id"] = str(data.get("id") or "") or _new_id()
    private["_occurred_on"] = _parse_time(data.get("occurred_on")) or private["_occurred_on"]
    meta = data.get("meta")
    private["_meta"] = dict(meta) if isinstance(meta, dict) else {}
    if expected is None:
        private["_name"] = name
        private["_version"] = version
    return message


def _data_of(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise PoisonMessage('body is not {"data": {...}}')
    return document["data"]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, TIME_FORMAT)):
        try:
            parsed = parse(value)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _first(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
