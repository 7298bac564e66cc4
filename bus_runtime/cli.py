"""`rabbitform consume` and `rabbitform publish`: the runtime's commands.

Registered through the `rabbitform.commands` entry-point group, so `topology` never imports
`bus_runtime`. Both use the spec's vhost (or --vhost) and `RABBITMQ_URL` (or `--url`) for the
broker, validated before any I/O; a vhost the URL names must be that same vhost.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from typing import Any

from bus_runtime.bus import RabbitMqCommandBus, RabbitMqEventBus
from bus_runtime.connector import DEFAULT_CONNECT_TIMEOUT, URL_ENV, RabbitMqConnector
from bus_runtime.consumer import DEFAULT_PREFETCH, DEFAULT_WORKERS, RabbitMqEventConsumer
from bus_runtime.errors import PublishError
from bus_runtime.spec_runtime import message_from_spec, spec_subscriptions
from topology import naming
from topology.cli.common import EXIT_OK, add_spec_arguments, add_vhost_argument, read_spec, vhost_override
from topology.errors import RabbitformError
from topology.naming import MessageKind
from topology.spec.model import Spec
from topology.tls import CA_CERT_ENV, resolve_ca_cert

MANAGEMENT_URL_ENV = "RABBITMQ_MANAGEMENT_URL"  # topology.broker.management.URL_ENV, not imported at start-up


def _add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="AMQP URL of the broker (default: $RABBITMQ_URL, else localhost); a vhost in it must be the spec's",
    )
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help=f"the management API (default: ${MANAGEMENT_URL_ENV}); when known, the AMQP URL must reach the same "
        "broker, and without one the AMQP listener it names is used",
    )
    parser.add_argument(
        "--ca-cert",
        metavar="FILE",
        help=f"verify an amqps:// broker's certificate with this CA bundle (default: ${CA_CERT_ENV}, else the system's)",
    )
    add_vhost_argument(parser)
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the TCP, TLS and AMQP handshakes (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )


def _connector(args: argparse.Namespace, spec_vhost: str) -> RabbitMqConnector:
    """The broker from --url (else RABBITMQ_URL, else localhost), on one vhost, validated
    before any I/O.

    The vhost is --vhost, else the spec's. A URL may name a vhost too: then it must be the
    same one (a conflict is an error, never a silent choice).
    """
    source = "--url" if args.url is not None else URL_ENV if os.environ.get(URL_ENV) else None
    if not math.isfinite(args.connect_timeout) or not 0 < args.connect_timeout <= 3600:
        raise RabbitformError("--connect-timeout must be a number of seconds > 0 and at most 3600")
    ca_cert = resolve_ca_cert(args.ca_cert)  # names --ca-cert or RABBITMQ_CA_CERT when the file is missing
    connector = RabbitMqConnector(args.url, connect_timeout=args.connect_timeout, source=source, ca_cert=ca_cert)
    management = getattr(args, "management_url", None) or os.environ.get(MANAGEMENT_URL_ENV)
    if management:
        connector = _checked_against_management(connector, management, source, args)
    vhost = vhost_override(args) or spec_vhost
    named = connector.url_vhost if source is not None else None  # the default URL's "/" is no choice
    if named is not None and named != vhost:
        chosen = "--vhost" if args.vhost is not None else f"the spec ({args.spec})"
        raise RabbitformError(
            f"{source or 'the RabbitMQ URL'} names vhost {named!r} but {chosen} says {vhost!r}; "
            "drop the vhost from the URL (e.g. amqp://host:5672) or make them the same"
        )
    return connector.with_vhost(vhost)


def _checked_against_management(
    connector: RabbitMqConnector, management_url: str, source: str | None, args: argparse.Namespace
) -> RabbitMqConnector:
    """With a management URL known (--management-url or $RABBITMQ_MANAGEMENT_URL), the planner's
    rule: no AMQP URL given means the AMQP listener the management API names; one given must
    reach the same broker (topology.broker.amqp_endpoint), checked before any I/O of the runtime."""
    from topology.broker.amqp_endpoint import discovered_url, verify_endpoints
    from topology.broker.management import ManagementClient

    where = "--management-url" if getattr(args, "management_url", None) else MANAGEMENT_URL_ENV
    client = ManagementClient.from_env(management_url, source=where, ca_cert=args.ca_cert)
    try:
        if source is None:
            url = discovered_url(client)
            return RabbitMqConnector(
                url, connect_timeout=connector.connect_timeout, source=where, ca_cert=connector.ca_cert
            )
        verify_endpoints(client, list(connector.endpoints), source)
        return connector
    finally:
        client.close()


# ---------------------------------------------------------------- consume


def register_consume(commands: Any) -> None:
    parser = commands.add_parser(
        "consume",
        help="run the spec's handlers (import paths) on their queues until SIGINT/SIGTERM",
        description="Consume with the handlers the spec names, each with its subscriber's retry policy.",
    )
    add_spec_arguments(parser)
    parser.add_argument("--service", help="only the subscribers of this service")
    parser.add_argument(
        "--subscriber", action="append", default=[], metavar="NAME", help="only this subscriber (repeatable)"
    )
    _add_broker_arguments(parser)
    parser.add_argument("--prefetch", type=int, default=DEFAULT_PREFETCH, help="messages in hand (default 100)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="handler threads (default 8)")
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on PORT (needs rabbitform[metrics])"
    )
    parser.add_argument(
        "--metrics-addr", default="127.0.0.1", metavar="ADDR", help="the metrics listen address (default 127.0.0.1)"
    )
    parser.set_defaults(handler=cmd_consume)


def cmd_consume(args: argparse.Namespace) -> int:
    _configure_logging()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # handlers are named relative to where the command runs
    spec = read_spec(args)
    subs = spec_subscriptions(spec, args.service, args.subscriber or None, args.spec)
    if not 1 <= args.prefetch <= 65535 or not 1 <= args.workers <= 1024:
        raise RabbitformError("--prefetch must be from 1 to 65535 (AMQP's limit) and --workers from 1 to 1024")
    connector = _connector(args, spec.vhost)
    connector.check()
    consumer = RabbitMqEventConsumer(
        connector, spec.organization, subs[0].service, prefetch=args.prefetch, workers=args.workers, layout=spec.layout
    )
    consumer.add_subscriptions(subs)
    if args.metrics_port is not None:
        _serve_metrics(args.metrics_addr, args.metrics_port)
    where = f"on vhost {connector.vhost!r} at {connector.display}"
    for sub in subs:
        print(f"consuming {sub.queue} {where} with {sub.handler_name} (max_retries {sub.max_retries})", file=sys.stderr)
    consumer.run_forever()
    return EXIT_OK


# ---------------------------------------------------------------- publish


def register_publish(commands: Any) -> None:
    parser = commands.add_parser(
        "publish",
        help="publish one event or command declared in the spec, confirmed",
        description="Publish one message; the spec gives its name and version, --attributes its fields.",
    )
    add_spec_arguments(parser)
    parser.add_argument("--service", required=True, help="the publishing service")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--event", metavar="CLASS", help="an event class name declared in the spec, e.g. UserCreated")
    kind.add_argument("--command", metavar="CLASS", help="a command class name declared in the spec")
    parser.add_argument("--attributes", default="{}", metavar="JSON", help='the fields, e.g. \'{"user_id": "1"}\'')
    parser.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="an AMQP header")
    _add_broker_arguments(parser)
    parser.set_defaults(handler=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    try:
        attributes = json.loads(args.attributes)
    except json.JSONDecodeError as exc:
        raise RabbitformError(f"--attributes is not JSON: {exc}") from None
    if not isinstance(attributes, dict):
        raise RabbitformError('--attributes must be a JSON object, e.g. \'{"user_id": "1"}\'')
    headers = {}
    for pair in args.header:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RabbitformError(f"--header expects KEY=VALUE, got {pair!r}")
        headers[key] = value
    kind: MessageKind = "command" if args.command else "event"
    name = args.command or args.event
    _check_kind(spec, args.service, name, kind, args.spec)
    message = message_from_spec(spec, args.service, name, kind, attributes, args.spec)
    connector = _connector(args, spec.vhost)
    connector.check()
    bus_class = RabbitMqCommandBus if kind == "command" else RabbitMqEventBus
    bus = bus_class(connector, spec.organization, args.service, on_unroutable="raise", timeout=15, layout=spec.layout)
    exchange = naming.exchange(spec.organization, args.service)
    try:
        bus.publish(message, headers=headers or None)
    except PublishError as exc:
        if "NOT_FOUND" in str(exc):
            raise RabbitformError(
                f"exchange {exchange!r} does not exist on vhost {connector.vhost!r} at {connector.display}: "
                f"the topology was never applied; run `rabbitform plan {args.spec}` then `rabbitform apply {args.spec}`"
            ) from None
        raise
    finally:
        bus.close()
    routing_key = message.routing_key(spec.organization, args.service, spec.layout)
    print(
        f"published {message.message_type} {message.id} (routing key {routing_key}) on vhost {connector.vhost!r} "
        f"at {connector.display}: confirmed by the broker"
    )
    return EXIT_OK


def _serve_metrics(addr: str, port: int) -> None:
    if not 0 < port < 65536:
        raise RabbitformError(f"--metrics-port {port} is not a TCP port (1-65535)")
    from bus_runtime.errors import BusError
    from bus_runtime.telemetry.metrics import serve_metrics

    try:
        serve_metrics(port, addr)
    except BusError as exc:
        raise RabbitformError(str(exc)) from None
    except OSError as exc:
        raise RabbitformError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    print(f"metrics on http://{addr}:{port}/metrics", file=sys.stderr)


def _check_kind(spec: Spec, service: str, name: str, kind: MessageKind, where: str) -> None:
    """`--event X` where X is a command (or the reverse): say which flag to use."""
    declared = spec.services.get(service)
    if declared is None:
        return  # message_from_spec names the known services
    other, flag = (declared.commands, "--command") if kind == "event" else (declared.events, "--event")
    mine = declared.events if kind == "event" else declared.commands
    if name not in mine and name in other:
        other_kind = "command" if kind == "event" else "event"
        article = "an" if kind == "event" else "a"
        raise RabbitformError(
            f"{name!r} is a {other_kind} of service {service!r} in {where}, not {article} {kind}; pass {flag} {name}"
        )


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # its connection errors reach us, said once
