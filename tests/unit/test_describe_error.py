"""How a lost or refused connection is named in the runtime's logs and errors (no broker)."""

from __future__ import annotations

import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorSocketConnectError

from bus_runtime.errors import describe_error


def test_a_close_by_the_broker_reads_with_its_code_and_text() -> None:
    forced = pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - closed by the test")
    assert describe_error(forced) == "ConnectionClosedByBroker: 320 CONNECTION_FORCED - closed by the test"
    channel = pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no queue 'q'")
    assert describe_error(channel) == "ChannelClosedByBroker: 404 NOT_FOUND - no queue 'q'"


def test_a_refused_reconnect_names_the_refusal_not_an_empty_wrapper() -> None:
    refused = pika.exceptions.AMQPConnectionError(
        AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))
    )
    assert describe_error(refused) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert describe_error(pika.exceptions.AMQPConnectionError()) == "AMQPConnectionError"
    assert describe_error(pika.exceptions.StreamLostError("Transport indicated EOF")) == (
        "StreamLostError: Transport indicated EOF"
    )
