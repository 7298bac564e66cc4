"""`rabbitform ui SPEC`: the operations console. Registered through the `rabbitform.commands`
entry point (topology never imports bus_runtime); the work happens in `run_ui`, loaded only
when the command runs."""

from __future__ import annotations

import argparse
from typing import Any


def register_ui(commands: Any) -> None:
    parser = commands.add_parser(
        "ui",
        help="the operations console: a web page for status and dead letters, with sign-in and an audit trail",
        description="Serve the console for the spec's bus. Users sign in with their own RabbitMQ credentials.",
    )
    from topology.cli.common import add_spec_arguments, add_vhost_argument

    add_spec_arguments(parser)
    add_vhost_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8088, help="port to listen on (default 8088; 0 picks one)")
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help="the management API (default: $RABBITMQ_MANAGEMENT_URL or http://localhost:15672)",
    )
    parser.add_argument("--url", metavar="AMQP", help="the AMQP URL (default: $RABBITMQ_URL or amqp://localhost:5672)")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    parser.add_argument("--insecure-http", action="store_true", help="allow plain HTTP on a non-loopback --host")
    parser.add_argument(
        "--audit-log", metavar="FILE", help="the audit trail (default: $RABBITFORM_STATE_DIR/console-audit.jsonl)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from bus_runtime.console.run import run_ui

    return run_ui(args)
