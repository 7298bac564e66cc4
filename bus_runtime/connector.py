"""Where the broker is: one URL (`RABBITMQ_URL`) gives host, port, credentials, vhost and TLS.

The connector opens nothing itself: the publisher and the consumer each own their connection
(pika is not thread-safe), and the configurer reuses its credentials and vhost for the
management API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_MANAGEMENT_URL = "http://localhost:15672"
DEFAULT_HEARTBEAT = 60


@dataclass(frozen=True)
class RabbitMqConnector:
    """`RabbitMqConnector()` reads `RABBITMQ_URL`; `RabbitMqConnector(url=...)` takes one.

    `amqps://` connects with TLS. `heartbeat` (seconds) is how long a silent connection may
    live: handlers run off the I/O thread, so a slow handler does not trip it.
    """

    url: str = ""
    heartbeat: int = DEFAULT_HEARTBEAT
    connection_name: str = "rabbitform"

    def __init__(self, url: str | None = None, heartbeat: int | None = None, connection_name: str = "rabbitform"):
        resolved = url or os.environ.get("RABBITMQ_URL") or DEFAULT_URL
        scheme = urlsplit(resolved).scheme
        if scheme not in ("amqp", "amqps"):
            raise ValueError(f"RabbitMQ URL must start with amqp:// or amqps://, got {resolved.split(':', 1)[0]!r}")
        beat = heartbeat if heartbeat is not None else int(os.environ.get("RABBITMQ_HEARTBEAT", DEFAULT_HEARTBEAT))
        object.__setattr__(self, "url", resolved)
        object.__setattr__(self, "heartbeat", beat)
        object.__setattr__(self, "connection_name", connection_name)

    @property
    def vhost(self) -> str:
        """The vhost in the URL path (`%2F` is `/`); an empty path means `/`."""
        path = urlsplit(self.url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    @property
    def username(self) -> str:
        return unquote(urlsplit(self.url).username or "guest")

    @property
    def password(self) -> str:
        return unquote(urlsplit(self.url).password or "guest")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "amqps"

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def with_vhost(self, vhost: str) -> RabbitMqConnector:
        """The same broker and credentials on another vhost (a spec names its own)."""
        parts = urlsplit(self.url)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, parts.fragment))
        return RabbitMqConnector(url, self.heartbeat, self.connection_name)

    def parameters(self, purpose: str = "") -> pika.URLParameters:
        """pika parameters; `purpose` names the connection in the management UI."""
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.connection_attempts = 1
        params.blocked_connection_timeout = 60
        name = f"{self.connection_name}-{purpose}" if purpose else self.connection_name
        params.client_properties = {"connection_name": name}
        return params

    def management_url(self, url: str | None = None) -> str:
        return (url or os.environ.get("RABBITMQ_MANAGEMENT_URL") or DEFAULT_MANAGEMENT_URL).rstrip("/")
