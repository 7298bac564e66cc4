"""Where the planner's AMQP connections (the lock, `--move-messages`) go, and proof that they
reach the broker the management API manages.

Guessing `<management host>:5672` reached another broker when the management API ran on a
cluster node's own port (and a vhost of the same name existed on the other broker) or behind
443. So the endpoint comes from the management API: `GET /api/overview` names the node that
answered and every running node's listeners; the planner connects to that node's `amqp`
listener (`amqp/ssl` when the management URL is https) on the management URL's host.

An endpoint given explicitly (`--amqp-url`, else `$RABBITMQ_URL` as the runtime reads it, else
the deprecated `$RABBITMQ_HOST`/`$RABBITMQ_PORT`: docs/connections.md) is verified
before anything changes: the AMQP handshake's first frame (`connection.start`, sent before
any authentication, so it works on a vhost that does not exist yet) carries the broker's
`cluster_name`, which must be the cluster name the management API reports. A node without an
explicit cluster name reports its default, `<node name>@<its FQDN>`, so on such a cluster the
AMQP side may name any of the cluster's nodes (`same_broker`).

`same_broker`, `choose_listener` and `identity_from_overview` are pure; the rest is the shell.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from topology.broker.management import ManagementClient
from topology.errors import RabbitformError
from topology.tls import client_context
from topology.urls import Endpoint, mask, parse_urls

OVERVIEW_COLUMNS = "cluster_name,node,listeners"
PROBE_TIMEOUT_S = 5.0
URL_ENV = "RABBITMQ_URL"  # the runtime's variable (bus_runtime.connector): one name for the broker
HOST_ENV = "RABBITMQ_HOST"  # deprecated for the planner (petisco's names): RABBITMQ_URL says it all
PORT_ENV = "RABBITMQ_PORT"
HOST_PORT_DEPRECATED = (
    f"${HOST_ENV}/${PORT_ENV} are deprecated for naming the planner's AMQP endpoint: set ${URL_ENV} "
    "(as the runtime reads it) or pass --amqp-url"
)
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class EndpointMismatch(RabbitformError):
    """The AMQP URL reaches another broker than the management URL."""


@dataclass(frozen=True)
class BrokerIdentity:
    """Who answered the management API: the cluster's name, the node, the running nodes
    (with their AMQP listeners: (node, protocol, port))."""

    cluster_name: str
    node: str
    nodes: frozenset[str]
    listeners: tuple[tuple[str, str, int], ...] = ()


def identity_from_overview(overview: Mapping[str, Any]) -> BrokerIdentity:
    listeners = tuple(
        (str(item.get("node", "")), str(item.get("protocol", "")), int(item.get("port", 0)))
        for item in overview.get("listeners") or []
        if isinstance(item, Mapping) and str(item.get("protocol", "")) in ("amqp", "amqp/ssl")
    )
    node = str(overview.get("node", ""))
    nodes = frozenset({node, *(listener[0] for listener in listeners)} - {""})
    return BrokerIdentity(str(overview.get("cluster_name", "")), node, nodes, listeners)


def _name_part(node: str) -> str:
    return node.partition("@")[0]


def same_broker(identity: BrokerIdentity, amqp_cluster_name: str) -> bool:
    """Whether an AMQP connection whose server properties say `amqp_cluster_name` reached the
    cluster `identity` describes.

    Equal names match. Otherwise the management side must report its node's default name
    (`<node's name>@<host>`, no cluster name set), and the AMQP side the default name of one of
    the cluster's nodes on the same host: `rf3@vm` is node `rf3@localhost` of the cluster whose
    node `rf2@localhost` reports `rf2@vm`.
    """
    if not amqp_cluster_name or not identity.cluster_name:
        return False
    if amqp_cluster_name == identity.cluster_name:
        return True
    reported_name, _, reported_host = identity.cluster_name.partition("@")
    if reported_name != _name_part(identity.node):
        return False  # an explicit cluster name: every node reports it
    amqp_name, _, amqp_host = amqp_cluster_name.partition("@")
    return amqp_host == reported_host and amqp_name in {_name_part(node) for node in identity.nodes}


def choose_listener(identity: BrokerIdentity, tls: bool) -> tuple[str, int] | None:
    """(scheme, port) of the answering node's AMQP listener: `amqps` for a https management URL."""
    wanted = "amqp/ssl" if tls else "amqp"
    for node, protocol, port in identity.listeners:
        if node == identity.node and protocol == wanted:
            return ("amqps" if tls else "amqp"), port
    return None


def read_identity(client: ManagementClient) -> BrokerIdentity:
    overview = client.get("overview", params={"columns": OVERVIEW_COLUMNS})
    if not isinstance(overview, Mapping):
        raise RabbitformError(f"{client.display_url}: /api/overview did not answer with an object")
    return identity_from_overview(overview)


def discover(client: ManagementClient, identity: BrokerIdentity) -> Endpoint:
    """The AMQP endpoint of the node behind `client`, with the client's credentials."""
    management = client.active_endpoint  # the node that answered
    chosen = choose_listener(identity, management.uses_tls)
    if chosen is None:
        kind = "AMQPS (amqp/ssl)" if management.uses_tls else "AMQP"
        raise RabbitformError(
            f"the management API at {client.display_url} lists no {kind} listener on node {identity.node}; "
            "pass --amqp-url naming the broker's AMQP endpoint"
        )
    scheme, port = chosen
    return Endpoint(scheme, management.host, port, client.user, client.password)


def explicit_endpoint(
    client: ManagementClient, amqp_url: str | None, environ: Mapping[str, str] | None = None
) -> tuple[Endpoint, str] | None:
    """An AMQP endpoint the user named: `amqp_url` (with the management client's credentials when
    it names none), else the first node of `$RABBITMQ_URL` (its host, port and TLS; the planner
    acts as the management user, not as the service whose credentials that URL carries), else the
    deprecated `$RABBITMQ_HOST`/`$RABBITMQ_PORT` (with a warning). None when nothing was named."""
    env = os.environ if environ is None else environ
    if amqp_url:
        endpoint = parse_urls(amqp_url, "amqp", "--amqp-url")[0]
        source = "--amqp-url"
    elif env.get(URL_ENV):
        named = parse_urls(env[URL_ENV], "amqp", f"${URL_ENV}")[0]
        endpoint = Endpoint(named.scheme, named.host, named.port, client.user, client.password)
        source = f"${URL_ENV}"
    elif env.get(HOST_ENV) or env.get(PORT_ENV):
        warn_host_port_deprecated()
        port_text = env.get(PORT_ENV) or "5672"
        host = env.get(HOST_ENV) or client.active_endpoint.host
        text = f"amqp://[{host}]:{port_text}" if ":" in host else f"amqp://{host}:{port_text}"
        endpoint = parse_urls(text, "amqp", f"${HOST_ENV}/${PORT_ENV}")[0]
        source = f"${HOST_ENV}/${PORT_ENV}"
    else:
        return None
    if endpoint.username is None:
        endpoint = replace(endpoint, username=client.user, password=client.password)
    return endpoint, source


@functools.cache
def warn_host_port_deprecated() -> None:
    """One line on stderr, once per process (a long-lived caller resolves many times)."""
    print(f"warning: {HOST_PORT_DEPRECATED}", file=sys.stderr)


def probe_cluster_name(
    endpoint: Endpoint, ca_cert: str | None, insecure: bool, timeout: float = PROBE_TIMEOUT_S
) -> str:
    """The `cluster_name` the broker at `endpoint` announces in `connection.start` (before any
    login). Raises OSError when nothing answers, RabbitformError when what answers is no AMQP 0-9-1."""
    from pika import frame, spec

    with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if endpoint.uses_tls:
            sock = client_context(ca_cert, insecure).wrap_socket(raw, server_hostname=endpoint.host)
        sock.sendall(_PROTOCOL_HEADER)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise RabbitformError(f"{endpoint.display} closed the connection before the AMQP handshake")
            data += chunk
            try:
                consumed, decoded = frame.decode_frame(data)
            except Exception:
                raise RabbitformError(f"{endpoint.display} does not speak AMQP 0-9-1") from None
            if consumed:
                break
        method = getattr(decoded, "method", None)
        if not isinstance(method, spec.Connection.Start):
            raise RabbitformError(f"{endpoint.display} does not speak AMQP 0-9-1")
        name = (method.server_properties or {}).get("cluster_name", b"")
        return name.decode() if isinstance(name, bytes) else str(name)


def resolve_amqp(client: ManagementClient, amqp_url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The AMQP URL (with credentials: for the client library only) the planner's connections use:
    discovered from the management API, or the one the user named once verified to reach the same
    broker. A mismatch or an unreachable endpoint is a one-line error, raised before any change."""
    identity = read_identity(client)
    named = explicit_endpoint(client, amqp_url, environ)
    if named is None:
        return discover(client, identity).url()
    endpoint, source = named
    try:
        announced = probe_cluster_name(endpoint, client.ca_cert, client.insecure)
    except ssl.SSLError as exc:
        raise RabbitformError(
            f"{source} {mask(endpoint.safe_url)}: TLS handshake failed ({getattr(exc, 'reason', None) or exc}); "
            "check the CA bundle (--ca-cert) and that amqps:// names a TLS port"
        ) from None
    except OSError as exc:
        raise RabbitformError(
            f"{source} {endpoint.display}: cannot connect ({exc.strerror or type(exc).__name__}); "
            "check the host and port, or leave it out to use the AMQP listener the management API names"
        ) from None
    if not same_broker(identity, announced):
        raise EndpointMismatch(
            f"{source} {endpoint.display} reaches broker {announced!r}, but the management API at "
            f"{client.display_url} manages {identity.cluster_name!r} (node {identity.node}): they are not the "
            "same broker; nothing was changed. Point both at the same broker, or leave the AMQP URL out"
        )
    return endpoint.url()


def verify_endpoints(client: ManagementClient, endpoints: list[Endpoint], source: str) -> None:
    """The runtime's rule (`publish`, `consume`, `dlq` with a management URL known): each node
    of an AMQP URL list that answers must belong to the broker the management API manages. A
    node that does not answer is skipped (the runtime fails over past it); a node that answers
    for another broker is a one-line error before anything is published or consumed."""
    identity = read_identity(client)
    for endpoint in endpoints:
        try:
            announced = probe_cluster_name(endpoint, client.ca_cert, client.insecure)
        except (OSError, RabbitformError):
            continue
        if not same_broker(identity, announced):
            raise EndpointMismatch(
                f"{source} {endpoint.display} reaches broker {announced!r}, but the management API at "
                f"{client.display_url} manages {identity.cluster_name!r} (node {identity.node}): they are not the "
                "same broker; point both at the same broker, or leave one of them out"
            )


def discovered_url(client: ManagementClient) -> str:
    """The AMQP URL (credentials included: for the client library only) of the node behind `client`."""
    return discover(client, read_identity(client)).url()
