"""`rabbitform ui`: options checked before anything listens, then serve until Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from bus_runtime.connector import DEFAULT_URL as DEFAULT_AMQP_URL
from bus_runtime.connector import URL_ENV as AMQP_URL_ENV
from bus_runtime.console.app import ConsoleApp
from bus_runtime.console.audit import AUDIT_FILE, AuditLog, default_state_dir
from bus_runtime.console.broker import BrokerConfig
from bus_runtime.console.server import build_server, check_binding
from topology.broker.management import DEFAULT_URL as DEFAULT_MANAGEMENT_URL
from topology.broker.management import URL_ENV as MANAGEMENT_URL_ENV
from topology.broker.management import strip_credentials
from topology.cli.common import EXIT_OK, read_spec
from topology.errors import RabbitformError
from topology.urls import parse_urls


def _without_credentials(url: str, source: str) -> str:
    """The console signs users in with their own credentials: any in the URL are dropped."""
    endpoints = parse_urls(url, "amqp", source)
    return ",".join(dataclasses.replace(endpoint, username=None, password=None).url() for endpoint in endpoints)


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    spec = read_spec(args)
    management = args.management_url or os.environ.get(MANAGEMENT_URL_ENV) or DEFAULT_MANAGEMENT_URL
    amqp = args.url or os.environ.get(AMQP_URL_ENV) or DEFAULT_AMQP_URL
    return BrokerConfig(
        spec,
        strip_credentials(management),
        _without_credentials(amqp, "--url" if args.url else AMQP_URL_ENV),
    )


def run_ui(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise RabbitformError("--tls-cert and --tls-key go together")
    warning = check_binding(args.host, bool(args.tls_cert), args.insecure_http)
    config = config_from_args(args)
    audit = AuditLog(Path(args.audit_log) if args.audit_log else default_state_dir() / AUDIT_FILE)
    try:
        audit.check_writable()
    except OSError as exc:
        raise RabbitformError(f"cannot write the audit trail {audit.path}: {exc.strerror or exc}") from None
    app = ConsoleApp(config, audit, secure=bool(args.tls_cert))
    server = build_server(app, args.host, args.port, args.tls_cert, args.tls_key)
    if warning:
        print(warning, file=sys.stderr)
    scheme = "https" if args.tls_cert else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"rabbitform console for vhost {config.spec.vhost!r} on {config.management_url}: "
        f"{scheme}://{host}:{server.server_port}/ (audit trail: {audit.path}; Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.sessions.close()
    return EXIT_OK
