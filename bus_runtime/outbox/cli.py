"""`rabbitform relay` and `rabbitform outbox init`: the outbox's commands.

Registered through the `rabbitform.commands` entry points. Registering imports nothing of the
outbox (SQLAlchemy loads when a command runs), so the CLI starts without the extra installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from topology.cli.common import EXIT_OK
from topology.errors import RabbitformError

DATABASE_HELP = "the service's database: postgresql://user:password@host:port/db or sqlite:///file.db"


def register_relay(commands: Any) -> None:
    parser = commands.add_parser(
        "relay",
        help="publish the outbox's committed events with confirms until SIGINT/SIGTERM",
        description="Publish committed outbox messages in insertion order per service; mark them sent once confirmed.",
    )
    parser.add_argument("--database-url", required=True, metavar="URL", help=DATABASE_HELP)
    parser.add_argument("--url", help="AMQP URL of the broker, with the vhost (default: $RABBITMQ_URL, else localhost)")
    parser.add_argument("--ca-cert", metavar="FILE", help="verify an amqps:// broker's certificate with this CA bundle")
    parser.add_argument("--batch", type=int, default=500, metavar="N", help="messages per claim (default 500)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, metavar="SECONDS", help="wait when nothing is due (default 0.5)"
    )
    parser.add_argument(
        "--retention-hours", type=float, default=168.0, metavar="HOURS", help="keep sent rows this long (default 168)"
    )
    parser.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on PORT")
    parser.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR", help="metrics address (127.0.0.1)")
    parser.set_defaults(handler=cmd_relay)


def register_outbox(commands: Any) -> None:
    parser = commands.add_parser("outbox", help="the outbox's and inbox's tables", description="Outbox maintenance.")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    init = actions.add_parser("init", help="create the outbox and inbox tables where missing")
    init.add_argument("--database-url", required=True, metavar="URL", help=DATABASE_HELP)
    init.set_defaults(handler=cmd_outbox_init)
    parser.set_defaults(handler=lambda _args: parser.error("name an action: init"))


def cmd_outbox_init(args: argparse.Namespace) -> int:
    outbox = _outbox(args.database_url)
    from bus_runtime.outbox.database import database_errors, shown

    with database_errors(args.database_url):
        outbox.create_tables()

    print(f"outbox and inbox tables ready in {shown(outbox.engine)} (rabbitform_outbox, rabbitform_inbox)")
    return EXIT_OK


def cmd_relay(args: argparse.Namespace) -> int:
    from bus_runtime.cli import _configure_logging
    from bus_runtime.connector import RabbitMqConnector
    from bus_runtime.errors import BusError
    from bus_runtime.outbox.database import database_errors, shown
    from bus_runtime.outbox.metrics import OutboxMetrics
    from bus_runtime.outbox.relay import OutboxRelay
    from bus_runtime.outbox.store import OutboxStore
    from topology.tls import resolve_ca_cert

    if args.batch < 1:
        raise RabbitformError("--batch must be >= 1")
    if not args.poll_interval > 0 or not args.retention_hours >= 0:
        raise RabbitformError("--poll-interval must be > 0 and --retention-hours >= 0")
    _configure_logging()
    outbox = _outbox(args.database_url)
    with database_errors(args.database_url):
        OutboxStore(outbox.engine).due()  # the database answers and holds the tables
    source = "--url" if args.url is not None else None
    connector = RabbitMqConnector(args.url, source=source, ca_cert=resolve_ca_cert(args.ca_cert))
    metrics = None
    if args.metrics_port is not None:
        metrics = OutboxMetrics(_serve_metrics(args.metrics_addr, args.metrics_port))
    relay = OutboxRelay(
        outbox,
        connector=connector,
        batch=args.batch,
        poll_interval=args.poll_interval,
        retention=args.retention_hours * 3600,
        metrics=metrics,
    )
    print(
        f"relaying the outbox of {shown(outbox.engine)} to vhost {connector.vhost!r} at {connector.display} "
        f"(batch {args.batch})",
        file=sys.stderr,
    )
    try:
        relay.run_forever()
    except BusError as exc:
        raise RabbitformError(str(exc)) from None
    logging.getLogger("bus_runtime.outbox.relay").info("relay stopped: %d message(s) published", relay.published_count)
    return EXIT_OK


def _outbox(url: str) -> Any:
    try:
        from bus_runtime.outbox.outbox import Outbox
    except ImportError as exc:
        raise RabbitformError(
            f"the outbox needs its extra ({exc.name} missing): pip install 'rabbitform[outbox]'"
        ) from None
    return Outbox(url)


def _serve_metrics(addr: str, port: int) -> Any:
    """The registry served at http://addr:port/metrics (the runtime's metrics and the relay's)."""
    if not 0 < port < 65536:
        raise RabbitformError(f"--metrics-port {port} is not a TCP port (1-65535)")
    from bus_runtime.errors import BusError
    from bus_runtime.telemetry.metrics import serve_metrics

    try:
        served = serve_metrics(port, addr)
    except BusError as exc:
        raise RabbitformError(str(exc)) from None
    except OSError as exc:
        raise RabbitformError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    print(f"metrics on http://{addr}:{port}/metrics", file=sys.stderr)
    return served.registry
