"""`rabbitform doctor [SPEC]`: what RabbitMQ 4.x refuses, drops or changes on this broker."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from topology.cli.common import EXIT_CHANGES, EXIT_OK, read_spec, vhost_override
from topology.cli.connection import add_connection_arguments, client_from_args
from topology.doctor.checks import SpecQueue, diagnose, spec_queues
from topology.doctor.read import broker_version, read_vhost_state, vhost_names
from topology.doctor.render import render_json, render_text
from topology.errors import RabbitformError


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor",
        help="report what RabbitMQ 4.x refuses, drops or changes on the broker (exit 2 with findings)",
        description="Read the broker (and the spec, if given) and report what RabbitMQ 4.x refuses, drops or "
        "changes, each finding naming the object and the fix. Exit 0 when clean, 2 with findings, 1 on error.",
    )
    parser.add_argument("spec", metavar="SPEC", nargs="?", help="a spec: its classic queues that could move to quorum")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="a template variable")
    parser.add_argument("--var-file", action="append", default=[], metavar="FILE", help="a YAML file of variables")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--vhost", help="the vhost to check (default: the spec's, else /)")
    where.add_argument("--all-vhosts", action="store_true", help="check every vhost")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    add_connection_arguments(parser)
    parser.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    spec = read_spec(args) if args.spec is not None else None
    vhost = vhost_override(args) or (spec.vhost if spec is not None else "/")
    wanted: list[SpecQueue] = spec_queues(spec) if spec is not None else []
    client = client_from_args(args)
    try:
        version = broker_version(client)
        vhosts = vhost_names(client) if args.all_vhosts else [vhost]
        findings = []
        for name in vhosts:
            state = read_vhost_state(client, name)
            if state is None:
                if args.all_vhosts:
                    continue  # deleted since it was listed
                raise RabbitformError(f"vhost {name!r} does not exist at {client.display_url}")
            on_spec_vhost = spec is not None and name == spec.vhost
            findings += diagnose(state, wanted if on_spec_vhost else (), args.spec or "SPEC")
        render = render_json if args.format == "json" else render_text
        sys.stdout.write(render(findings, vhosts, version, client.display_url))
    finally:
        client.close()
    return EXIT_CHANGES if findings else EXIT_OK
