"""What the planner and the runtime both do over AMQP, in one place: connection parameters from
a parsed endpoint, which delivery tags a publisher confirm covers and the ledgers built on it
(`ConfirmLedger` for a publisher, `TransferLedger` for a transfer that acks each source message
once its copy is confirmed), a queue's depth, and what kind of failure a connection error is.

A foundation module like `topology.urls`: it imports pika and nothing of the planner, so the
runtime (`bus_runtime` may import `topology`, never the reverse) uses it without loading the
planner. Failures are classified by exception type (pika nests its causes), never by matching
error text.
"""

from __future__ import annotations

import ssl
from typing import Literal

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from topology.amqp.ledgers import ConfirmLedger, TransferLedger, covered_tags
from topology.failures import root_cause, socket_failure
from topology.urls import Endpoint

__all__ = [
    "ConfirmLedger",
    "FailureKind",
    "TransferLedger",
    "classify_failure",
    "connection_parameters",
    "covered_tags",
    "queue_depth",
    "root_cause",
]

BLOCKED_CONNECTION_TIMEOUT = 60.0  # seconds a connection the broker blocked (an alarm) may wait

FailureKind = Literal[
    "refused",  # nothing listens on the port
    "unknown host",  # the name does not resolve
    "timeout",  # no (AMQP) answer in time: a firewall, or not an AMQP port
    "handshake",  # something answered, but not the AMQP handshake (a management port, TLS mismatch)
    "tls verify",  # the broker's certificate was not trusted (or names another host)
    "tls",  # another TLS failure (e.g. a TLS client on a plain port: wrong version number)
    "login",  # user or password refused
    "access",  # the vhost is missing or the user may not use it
    "closed by broker",  # the broker closed the connection (see reply_code)
    "other",
]


def connection_parameters(
    endpoint: Endpoint,
    vhost: str,
    *,
    heartbeat: int,
    tls: ssl.SSLContext | None = None,
    connection_name: str | None = None,
    connect_timeout: float | None = None,
    blocked_connection_timeout: float = BLOCKED_CONNECTION_TIMEOUT,
) -> pika.URLParameters:
    """pika's parameters for one parsed endpoint (`topology.urls`) on `vhost`: the one place both
    sides turn a URL into a connection. `tls` verifies an `amqps://` endpoint (None: pika's
    default, the system's CAs); `connection_name` names it in the management UI; `connect_timeout`
    bounds the TCP, TLS and AMQP handshakes (None: pika's defaults). One attempt per call: the
    callers' loops decide about the next node and the backoff. A heartbeat or other option in
    the URL's query is overridden by the arguments: they are the documented knobs."""
    params = pika.URLParameters(endpoint.url(vhost))
    if endpoint.uses_tls and tls is not None:
        params.ssl_options = pika.SSLOptions(tls)
    params.heartbeat = heartbeat
    params.connection_attempts = 1
    params.blocked_connection_timeout = blocked_connection_timeout
    if connect_timeout is not None:
        params.socket_timeout = connect_timeout
        params.stack_timeout = connect_timeout
    if connection_name:
        params.client_properties = {"connection_name": connection_name}
    return params


def queue_depth(channel: BlockingChannel, queue: str) -> int | None:
    """Ready messages in `queue` now, by a passive declare (the management API's counts lag by
    seconds); None when the queue does not exist (the 404 closes `channel`)."""
    try:
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise


def classify_failure(error: BaseException) -> FailureKind:
    """What kind of connection failure `error` is, by the type of its root cause."""
    if isinstance(error, pika.exceptions.ProbableAuthenticationError):
        return "login"
    if isinstance(error, pika.exceptions.ProbableAccessDeniedError):
        return "access"
    cause = root_cause(error)
    kinds: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], FailureKind], ...] = (
        (pika.exceptions.ProbableAuthenticationError, "login"),
        (pika.exceptions.ProbableAccessDeniedError, "access"),
        (pika.exceptions.ConnectionClosedByBroker, "closed by broker"),
        (AMQPConnectorStackTimeout, "timeout"),
        ((pika.exceptions.IncompatibleProtocolError, pika.exceptions.StreamLostError), "handshake"),
    )
    for types, kind in kinds:
        if isinstance(cause, types):
            return kind
    return socket_failure(cause) or "other"
