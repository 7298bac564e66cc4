"""Where the broker is: a URL (`RABBITMQ_URL`) gives host, port, credentials, vhost and TLS.

A cluster is several comma-separated URLs, one per node, all with the same vhost and
credentials: connections go to the first that answers and, after losing a node, to the next.

The connector opens nothing itself: the publisher and the consumer each own their connection
(pika is not thread-safe), and the configurer reuses its credentials and vhost for the
management API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pika
import pika.exceptions

from bus_runtime.errors import BrokerUnavailable, describe_error
from topology.amqp import classify_failure, connection_parameters, root_cause
from topology.failures import tls_verify_message, wrong_tls_version
from topology.tls import CA_CERT_ENV, client_context, resolve_ca_cert
from topology.urls import Endpoint, UrlError, parse_urls

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_MANAGEMENT_URL = "http://localhost:15672"
DEFAULT_HEARTBEAT = 60
DEFAULT_CONNECT_TIMEOUT = 10.0
URL_ENV = "RABBITMQ_URL"

__all__ = ["DEFAULT_URL", "RabbitMqConnector", "UrlError"]


@dataclass(frozen=True)
class RabbitMqConnector:
    """`RabbitMqConnector()` reads `RABBITMQ_URL`; `RabbitMqConnector(url=...)` takes one.

    The URL is validated at once (topology.urls): a malformed one raises `UrlError` naming it
    with its password masked; nothing falls back to another account or vhost. `amqps://`
    connects with TLS and verifies the broker's certificate and host name against `ca_cert`
    (a CA bundle file), else `RABBITMQ_CA_CERT`, else the system's CAs; a missing file is an
    error at once. `heartbeat` (seconds) is how long a silent connection may live:
    handlers run off the I/O thread, so a slow handler does not trip it. `connect_timeout`
    bounds the TCP, TLS and AMQP handshakes of each connection attempt.
    """

    url: str = field(default="", repr=False)
    heartbeat: int = DEFAULT_HEARTBEAT
    connection_name: str = "rabbitform"
    endpoints: tuple[Endpoint, ...] = field(default=(), repr=False, compare=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    ca_cert: str | None = None

    def __init__(
        self,
        url: str | None = None,
        *,
        heartbeat: int | None = None,
        connection_name: str = "rabbitform",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        source: str | None = None,
        ca_cert: str | None = None,
    ):
        if url is not None and not isinstance(url, str):
            raise TypeError(
                f"RabbitMqConnector: url must be a str (amqp://user:password@host:port/vhost), not {type(url).__name__}"
            )
        if heartbeat is not None and (isinstance(heartbeat, bool) or not isinstance(heartbeat, int)):
            raise TypeError(f"RabbitMqConnector: heartbeat must be an int of seconds, not {type(heartbeat).__name__}")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float) or connect_timeout <= 0:
            raise ValueError(
                f"RabbitMqConnector: connect_timeout must be a number of seconds above 0, not {connect_timeout!r}"
            )
        if url is not None:
            resolved, where = url, source or "the RabbitMQ URL"
        elif os.environ.get(URL_ENV):
            resolved, where = os.environ[URL_ENV], URL_ENV
        else:
            resolved, where = DEFAULT_URL, "the default RabbitMQ URL"
        endpoints = tuple(parse_urls(resolved, "amqp", where))
        beat_text = os.environ.get("RABBITMQ_HEARTBEAT", str(DEFAULT_HEARTBEAT))
        if heartbeat is None and not (beat_text.strip().isascii() and beat_text.strip().isdigit()):
            raise UrlError(f"RABBITMQ_HEARTBEAT: {beat_text!r} is not a whole number of seconds")
        beat = heartbeat if heartbeat is not None else int(beat_text)
        object.__setattr__(self, "url", resolved.strip())
        object.__setattr__(self, "heartbeat", beat)
        object.__setattr__(self, "connection_name", connection_name)
        object.__setattr__(self, "endpoints", endpoints)
        object.__setattr__(self, "connect_timeout", connect_timeout)
        object.__setattr__(self, "ca_cert", resolve_ca_cert(ca_cert, flag="ca_cert"))

    def __repr__(self) -> str:
        return f"RabbitMqConnector({self.safe_url!r})"

    @property
    def endpoint(self) -> Endpoint:
        return self.endpoints[0]

    @property
    def url_vhost(self) -> str | None:
        """The vhost the URL names, None when it names none."""
        return self.endpoint.vhost

    @property
    def vhost(self) -> str:
        """The vhost in the URL path (`%2F` is `/`); a URL without one means `/`."""
        vhost = self.endpoint.vhost
        return "/" if vhost is None else vhost

    @property
    def username(self) -> str:
        return self.endpoint.username if self.endpoint.username is not None else "guest"

    @property
    def password(self) -> str:
        return self.endpoint.password if self.endpoint.password is not None else "guest"

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def uses_tls(self) -> bool:
        return self.endpoint.uses_tls

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return ",".join(endpoint.safe_url for endpoint in self.endpoints)

    @property
    def display(self) -> str:
        """host and port of the broker, no credentials or vhost: for "on vhost X at Y" messages."""
        return ",".join(endpoint.display for endpoint in self.endpoints)

    def with_vhost(self, vhost: str) -> RabbitMqConnector:
        """The same broker and credentials on another vhost (a spec names its own)."""
        url = ",".join(endpoint.url(vhost) for endpoint in self.endpoints)
        return RabbitMqConnector(
            url,
            heartbeat=self.heartbeat,
            connection_name=self.connection_name,
            connect_timeout=self.connect_timeout,
            ca_cert=self.ca_cert,
        )

    def parameters(self, purpose: str = "", endpoint: int = 0) -> pika.URLParameters:
        """pika parameters of node `endpoint` (counted modulo the nodes, so a reconnect loop can
        pass its attempt number to rotate); `purpose` names the connection in the management UI."""
        return self._parameters(self.endpoints[endpoint % len(self.endpoints)], purpose)

    def all_parameters(self, purpose: str = "") -> list[pika.URLParameters]:
        """pika parameters of every node the URL lists, in order."""
        return [self._parameters(endpoint, purpose) for endpoint in self.endpoints]

    def _parameters(self, endpoint: Endpoint, purpose: str) -> pika.URLParameters:
        return connection_parameters(
            endpoint,
            self.vhost,
            heartbeat=self.heartbeat,
            tls=client_context(self.ca_cert) if self.ca_cert is not None else None,  # else the system's CAs
            connection_name=f"{self.connection_name}-{purpose}" if purpose else self.connection_name,
            connect_timeout=self.connect_timeout,
        )

    def management_url(self, url: str | None = None) -> str:
        return (url or os.environ.get("RABBITMQ_MANAGEMENT_URL") or DEFAULT_MANAGEMENT_URL).rstrip("/")

    def check(self) -> None:
        """Open and close one connection within `connect_timeout`: a clear error now (which
        node, which vhost, what failed) instead of a publish or consume that waits. With
        several nodes, the first that answers will do; when none does, each one's reason."""
        problems: list[BrokerUnavailable] = []
        for endpoint in self.endpoints:
            try:
                self._check_one(endpoint)
                return
            except BrokerUnavailable as exc:
                problems.append(exc)
        kinds = {problem.kind for problem in problems}
        raise BrokerUnavailable("; ".join(map(str, problems)), kinds.pop() if len(kinds) == 1 else None)

    def _check_one(self, endpoint: Endpoint) -> None:
        params = self._parameters(endpoint, "check")
        where = f"{endpoint.safe_url}"
        try:
            pika.BlockingConnection(params).close()
        except pika.exceptions.ProbableAuthenticationError:
            raise BrokerUnavailable(
                f"{where}: the broker refused the login; check the user and password in the URL", "login"
            ) from None
        except pika.exceptions.ProbableAccessDeniedError:
            raise BrokerUnavailable(
                f"{where}: the broker refused access to vhost {self.vhost!r}: it does not exist or the user has no "
                f"permissions on it; create it with `rabbitform apply SPEC`",
                "access",
            ) from None
        except pika.exceptions.ConnectionClosedByBroker as exc:
            if exc.reply_code == 530:
                raise BrokerUnavailable(
                    f"{where}: vhost {self.vhost!r} does not exist or the user may not use it ({exc.reply_text}); "
                    "create the topology with `rabbitform plan SPEC` then `rabbitform apply SPEC`",
                    "access",
                ) from None
            raise BrokerUnavailable(
                f"{where}: the broker closed the connection ({exc.reply_text})", "closed by broker"
            ) from None
        except (pika.exceptions.IncompatibleProtocolError, pika.exceptions.StreamLostError) as exc:
            raise BrokerUnavailable(_handshake_failed(where, self.connect_timeout, exc), "handshake") from None
        except Exception as exc:  # AMQPConnectionError, and pika's connector errors (stack timeout, socket errors)
            raise BrokerUnavailable(
                _connect_failed(where, self.connect_timeout, exc, self.ca_cert), classify_failure(exc)
            ) from None


def _handshake_failed(where: str, timeout: float, exc: BaseException) -> str:
    kind = classify_failure(exc)
    if kind == "timeout":
        cause = "no AMQP answer"
    elif kind == "handshake":
        cause = "the server closed the connection instead of answering in AMQP"
    else:
        cause = _root(exc)
    return (
        f"cannot connect to {where}: AMQP handshake failed within {timeout:g} s ({cause}); "
        "check that the URL points at the AMQP port (5672, or 5671 for amqps), not the management port, "
        "and that a TLS port has an amqps:// URL"
    )


NAME_MISMATCH = frozenset({62, 64})  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _connect_failed(where: str, timeout: float, exc: BaseException, ca_cert: str | None = None) -> str:
    """One line for a failed connection attempt, chosen by the kind of failure
    (`topology.amqp.classify_failure`: by exception type, not by error text)."""
    kind = classify_failure(exc)
    cause = root_cause(exc)
    root = _root(exc)
    if kind in ("timeout", "handshake"):
        return _handshake_failed(where, timeout, exc)
    if kind == "refused":
        return f"cannot connect to {where}: connection refused; check the host and port, and that RabbitMQ runs"
    if kind == "unknown host":
        return f"cannot connect to {where}: unknown host"
    if kind == "tls verify":
        reason = f"certificate verify failed: {tls_verify_message(exc)}"
        if getattr(cause, "verify_code", None) in NAME_MISMATCH:
            fix = "connect by a host name the certificate lists"
        elif ca_cert is not None:
            fix = f"check that the CA bundle {ca_cert} holds the CA that signed the broker's certificate"
        else:
            fix = f"pass --ca-cert CA.pem (or set {CA_CERT_ENV}) naming the CA that signed the broker's certificate"
        return f"cannot connect to {where}: TLS verification failed ({reason}); {fix}"
    if kind == "tls" and wrong_tls_version(exc):
        return (
            f"cannot connect to {where}: TLS handshake failed (wrong version number): the port does not speak TLS; "
            "use amqp:// for a plain port, or the AMQPS port (5671 by default)"
        )
    if kind == "tls":
        return f"cannot connect to {where}: TLS failed ({root})"
    return f"cannot connect to {where}: {root}"


def _root(exc: BaseException) -> str:
    return describe_error(exc)
