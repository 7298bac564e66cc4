"""What kind of network failure an exception is, by the type of its innermost cause.

pika (`AMQPConnectionError(AMQPConnectionWorkflowFailed(... ConnectionRefusedError))`) and
requests (`ConnectionError(MaxRetryError(reason=NewConnectionError) <- ConnectionRefusedError)`)
both bury the socket's own error under wrappers whose text differs by library, version and
locale. `root_cause` digs it out; `socket_failure` names it by type. Nothing here matches
error text.

Imports neither pika nor requests: the planner's management client (loaded by `plan`, which
never loads pika) and `topology.amqp` (both sides' AMQP toolbox) share it.
"""

from __future__ import annotations

import socket
import ssl
from typing import Literal

SocketFailure = Literal[
    "refused",  # nothing listens on the port
    "unknown host",  # the name does not resolve
    "timeout",  # no answer in time: a firewall, a dead host, or a port that waits for the client
    "tls verify",  # the server's certificate was not trusted (or names another host)
    "tls",  # another TLS failure (e.g. a TLS client on a plain port: wrong version number)
]
MAX_DEPTH = 12


def _inner(error: BaseException) -> BaseException | None:
    """The exception `error` wraps, if any: pika's lists and attributes, urllib3's `reason`,
    an exception passed as an argument, then Python's own chaining."""
    nested = getattr(error, "exceptions", None)  # pika's AMQPConnectionWorkflowFailed
    if nested:
        last = list(nested)[-1]
        if isinstance(last, BaseException):
            return last
    for attribute in ("exception", "reason"):  # pika's AMQPConnectorWrappedError, urllib3's MaxRetryError
        value = getattr(error, attribute, None)
        if isinstance(value, BaseException):
            return value
    for argument in error.args:
        if isinstance(argument, BaseException):
            return argument
    return error.__cause__ or error.__context__


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception under the libraries' wrappers."""
    current = error
    for _ in range(MAX_DEPTH):
        inner = _inner(current)
        if inner is None or inner is current:
            break
        current = inner
    return current


def socket_failure(error: BaseException) -> SocketFailure | None:
    """The kind of `error`'s root cause when it is a socket-level failure, else None."""
    cause = root_cause(error)
    kinds: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], SocketFailure], ...] = (
        (ConnectionRefusedError, "refused"),
        (socket.gaierror, "unknown host"),
        (ssl.SSLCertVerificationError, "tls verify"),
        (ssl.SSLError, "tls"),
        ((TimeoutError, socket.timeout), "timeout"),
    )
    for types, kind in kinds:
        if isinstance(cause, types):
            return kind
    return None


def wrong_tls_version(error: BaseException) -> bool:
    """Whether a TLS handshake failed because the other side answered in plain text (OpenSSL's
    WRONG_VERSION_NUMBER: a TLS client on a plain port)."""
    cause = root_cause(error)
    return isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) == "WRONG_VERSION_NUMBER"


def tls_verify_message(error: BaseException) -> str | None:
    """OpenSSL's reason a certificate was refused (e.g. `self-signed certificate`), or None
    when `error` is no certificate verification failure."""
    cause = root_cause(error)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return str(getattr(cause, "verify_message", None) or "no reason given")  # ssl always sets it
    return None
