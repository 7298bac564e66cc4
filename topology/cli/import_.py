"""`rabbitform import --organization ORG`: write the spec of an existing bus (adopt it).

The shell around `topology.adopt`: read one vhost (the live broker, or a definitions file
with `--state`), build the spec, list on stderr whatever does not fit the layout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from topology import naming
from topology.adopt.importer import import_spec
from topology.adopt.render import render_spec
from topology.broker.snapshot import read_snapshot
from topology.cli.common import EXIT_OK, write_output
from topology.cli.connection import add_connection_arguments, client_from_args
from topology.cli.plan import read_state
from topology.compile.definitions import from_definitions
from topology.compile.objects import Topology
from topology.errors import RabbitformError


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "import",
        help="write the spec of an organization's existing bus, read from the broker",
        description="Read a vhost and write the spec that owns the organization's objects, so that "
        "`rabbitform plan` on it shows no changes. What does not fit the layout is listed on stderr.",
    )
    parser.add_argument("--organization", required=True, metavar="ORG", help="the organization to adopt")
    parser.add_argument("--vhost", default="/", help='the vhost to read (default "/")')
    parser.add_argument(
        "--layout",
        choices=naming.LAYOUTS,
        default=naming.DEFAULT_LAYOUT,
        help="how the bus was built: rabbitform (default) or petisco (petisco 2.2.3's configurer)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the spec to FILE instead of stdout (a new file: see --force)"
    )
    parser.add_argument("--force", action="store_true", help="with -o: overwrite FILE if it exists")
    parser.add_argument("--state", metavar="DEFINITIONS.json", help="read a definitions file instead of the broker")
    add_connection_arguments(parser)
    parser.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if not naming.ORGANIZATION_PATTERN.match(args.organization):
        raise RabbitformError(
            f"--organization {args.organization!r}: use lower case letters, digits, '_' or '-', no dots"
        )
    if args.output and args.output != "-" and os.path.isfile(args.output) and not args.force:
        raise RabbitformError(
            f"{args.output} already exists: import never overwrites a spec (its handlers and comments would be "
            "lost); write to another file, or pass --force to replace it"
        )
    topology, source = _read(args)
    imported = import_spec(topology, args.organization, args.layout)
    document = imported.document
    if not document["services"] and "store" not in document:
        raise RabbitformError(
            f"{source} holds nothing of organization {args.organization!r} in layout {args.layout} "
            f"(no exchange {args.organization}.<service>)"
        )
    write_output(render_spec(imported, source), args.output)
    for warning in imported.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    other = next(layout for layout in naming.LAYOUTS if layout != args.layout)
    if imported.warnings and import_spec(topology, args.organization, other).subscribers > imported.subscribers:
        print(f"hint: these objects look like layout {other}: try --layout {other}", file=sys.stderr)
    store = f', store "{document["store"]["queue"]}"' if "store" in document else ""
    print(
        f"Imported organization {args.organization} from {source} (layout {args.layout}): "
        f"{_count(len(document['services']), 'service')}, {_count(imported.subscribers, 'subscriber')}{store}; "
        f"{_count(len(imported.warnings), 'warning')}"
        + (f"; wrote {args.output}" if args.output and args.output != "-" else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def _read(args: argparse.Namespace) -> tuple[Topology, str]:
    if args.state:
        state = read_state(args.state)
        vhosts = {v.get("name") for v in state.get("vhosts", [])}
        if state.get("vhosts") and args.vhost not in vhosts:
            raise RabbitformError(f"{args.state} has no vhost {args.vhost!r}")
        return from_definitions(state, args.vhost), args.state
    client = client_from_args(args)
    try:
        snapshot = read_snapshot(client, args.vhost)
    finally:
        client.close()
    if snapshot.topology is None:
        raise RabbitformError(f"vhost {args.vhost!r} does not exist at {client.display_url}")
    return snapshot.topology, f"vhost {args.vhost!r}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
