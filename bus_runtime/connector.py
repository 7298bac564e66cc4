"""Where the broker is: a URL (`RABBITMQ_URL`) gives host, port, credentials, vhost and TLS.

A cluster is several comma-separated URLs, one per node, all with the same vhost and
credentials: connections go to the first that answers and, after losing a node, to the next.

The connector opens nothing itself: the publisher and the consumer each own their connection
(pika is not thread-safe), and the configurer reuses its credentials and vhost for the
management API.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_MANAGEMENT_URL = "http://localhost:15672"
DEFAULT_HEARTBEAT = 60


@dataclass(frozen=True)
class RabbitMqConnector:
    """`RabbitMqConnector()` reads `RABBITMQ_URL`; `RabbitMqConnector(url=...)` takes one, or
    several comma-separated (a cluster's nodes; `urls` lists them, `url` is the first).

    `amqps://` connects with TLS. `heartbeat` (seconds) is how long a silent connection may
    live: handlers run off the I/O thread, so a slow handler does not trip it.
    """

    url: str = ""
    urls: tuple[str, ...] = ()
    heartbeat: int = DEFAULT_HEARTBEAT
    connection_name: str = "rabbitform"

    def __init__(self, url: str | None = None, heartbeat: int | None = None, connection_name: str = "rabbitform"):
        urls = split_urls(url or os.environ.get("RABBITMQ_URL") or DEFAULT_URL)
        beat = heartbeat if heartbeat is not None else int(os.environ.get("RABBITMQ_HEARTBEAT", DEFAULT_HEARTBEAT))
        object.__setattr__(self, "url", urls[0])
        object.__setattr__(self, "urls", urls)
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
        """The URL(s) without the password, for messages and logs."""
        return ",".join(_safe(url) for url in self.urls)

    def with_vhost(self, vhost: str) -> RabbitMqConnector:
        """The same broker(s) and credentials on another vhost (a spec names its own)."""
        path = "/" + quote(vhost, safe="")
        urls = [urlunsplit((p.scheme, p.netloc, path, p.query, p.fragment)) for p in map(urlsplit, self.urls)]
        return RabbitMqConnector(",".join(urls), self.heartbeat, self.connection_name)

    def parameters(self, purpose: str = "", endpoint: int = 0) -> pika.URLParameters:
        """pika parameters for node `endpoint` (counted modulo the nodes, so a reconnect loop
        can pass its attempt number to rotate); `purpose` names the connection in the UI."""
        params = pika.URLParameters(self.urls[endpoint % len(self.urls)])
        params.heartbeat = self.heartbeat
        params.connection_attempts = 1
        params.blocked_connection_timeout = 60
        name = f"{self.connection_name}-{purpose}" if purpose else self.connection_name
        params.client_properties = {"connection_name": name}
        return params

    def management_url(self, url: str | None = None) -> str:
        return (url or os.environ.get("RABBITMQ_MANAGEMENT_URL") or DEFAULT_MANAGEMENT_URL).rstrip("/")


def split_urls(value: str | Sequence[str]) -> tuple[str, ...]:
    """One or several comma-separated AMQP URLs, checked: every URL amqp:// or amqps://, and
    all on the same vhost with the same credentials (they are nodes of one cluster)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    urls = tuple(item.strip() for item in items if item.strip())
    if not urls:
        raise ValueError("RabbitMQ URL is empty")
    for url in urls:
        scheme = urlsplit(url).scheme
        if scheme not in ("amqp", "amqps"):
            raise ValueError(f"RabbitMQ URL must start with amqp:// or amqps://, got {url.split(':', 1)[0]!r}")
    first = urlsplit(urls[0])
    for url in urls[1:]:
        parts = urlsplit(url)
        if (parts.username, parts.password) != (first.username, first.password):
            raise ValueError(f"RabbitMQ URLs must share credentials: {_safe(url)} differs from {_safe(urls[0])}")
        if (parts.path or "/") != (first.path or "/"):
            raise ValueError(f"RabbitMQ URLs must name the same vhost: {_safe(url)} differs from {_safe(urls[0])}")
    return urls


def _safe(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
