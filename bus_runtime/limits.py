"""What the broker would refuse, refused at `publish` before anything is sent.

A message the broker cannot take does not stay small once sent: a content header over the
connection's `frame_max` makes RabbitMQ close the whole connection (`501 FRAME_ERROR`), a body
over its `max_message_size` closes the channel, and a header value AMQP cannot encode makes pika
fail mid-pump. Each of those would hit every message in flight with it. Here they are checked on
the caller's thread, and the error names the message (or header key) and the limit.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from pika import data as amqp_data
from pika.exceptions import UnsupportedAMQPFieldException

from bus_runtime.errors import BusError

DEFAULT_FRAME_MAX = 131_072  # pika's and RabbitMQ's default; the connection's negotiated value wins
# RabbitMQ 3.x's default `max_message_size` (128 MiB); 4.x lowers it to 16 MiB: pass the broker's.
DEFAULT_MAX_MESSAGE_SIZE = 134_217_728
# Room in the content header frame for everything but the headers table: frame and header
# prefixes, and the short-string properties (message id, type, content type, app id: at most
# 255 bytes each) with the timestamp and delivery mode.
PROPERTIES_MARGIN = 2_048
SHORT_STRING_MAX = 255
CAN_ENCODE = "str, bytes, bool, int (64-bit), Decimal, datetime, dict with str keys, list or None"


class MessageRefused(BusError, ValueError):
    """A message the broker would refuse: nothing of the call was sent."""


def check_timeout(timeout: float | None, what: str = "timeout") -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{what} must be a number of seconds, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"{what} must be more than 0 seconds, not {timeout!r}")


def headers_size(headers: Mapping[str, Any] | None) -> int:
    """The encoded size of `headers` as an AMQP table; `MessageRefused` naming the first key
    (a dotted path inside nested tables and lists) whose key or value AMQP cannot carry."""
    if not headers:
        return 0
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of str to values, not {type(headers).__name__}")
    return 4 + _table_size(headers, "")


def _table_size(table: Mapping[Any, Any], prefix: str) -> int:
    size = 0
    for key, value in table.items():
        where = f"{prefix}{key!r}" if not isinstance(key, str) else f"{prefix}{key}"
        if not isinstance(key, str):
            raise MessageRefused(f"header key {where}: a {type(key).__name__}; AMQP table keys are str")
        if len(key.encode()) > SHORT_STRING_MAX:
            raise MessageRefused(f"header key {key[:40]!r}...: over {SHORT_STRING_MAX} bytes, the AMQP limit for a key")
        size += 1 + len(key.encode()) + _value_size(value, where)
    return size


def _value_size(value: Any, where: str) -> int:
    if isinstance(value, Mapping):
        return 1 + 4 + _table_size(value, f"{where}.")
    if isinstance(value, list):
        return 1 + 4 + sum(_value_size(item, f"{where}[{i}]") for i, item in enumerate(value))
    pieces: list[bytes] = []
    try:
        return int(amqp_data.encode_value(pieces, value))
    except (UnsupportedAMQPFieldException, struct.error, TypeError, ValueError, OverflowError):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise MessageRefused(
            f"header {where}: a {type(value).__name__} ({shown}) cannot be sent in AMQP; use {CAN_ENCODE}"
        ) from None


def check_headers(headers: Mapping[str, Any] | None, frame_max: int) -> None:
    """Headers the broker would refuse: unencodable, or too large for one content header frame."""
    size = headers_size(headers)
    if size + PROPERTIES_MARGIN > frame_max:
        raise MessageRefused(
            f"headers of {size:,} bytes encoded: the message properties must fit in one frame of the "
            f"connection's frame_max ({frame_max:,} bytes); keep headers under {frame_max - PROPERTIES_MARGIN:,} "
            "bytes (put large data in the body)"
        )


def check_body(label: str, size: int, max_message_size: int) -> None:
    if size > max_message_size:
        raise MessageRefused(
            f"{label}: body of {size:,} bytes is over the broker's maximum message size ({max_message_size:,} bytes)"
        )
