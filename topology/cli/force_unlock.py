"""`rabbitform force-unlock SPEC`: break the lock of a stuck apply or destroy on purpose."""

from __future__ import annotations

import argparse
from typing import Any

from topology.cli.common import EXIT_OK, add_spec_arguments, add_vhost_argument, read_spec
from topology.cli.connection import add_connection_arguments, client_from_args
from topology.state.lock import force_unlock


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "force-unlock",
        help="break the lock a stuck apply or destroy holds",
        description="Close the connection that holds the spec's lock on its vhost. A holder that died frees "
        "it by itself; use this for one that hangs.",
    )
    add_spec_arguments(parser)
    add_vhost_argument(parser)
    add_connection_arguments(parser)
    parser.set_defaults(handler=cmd_force_unlock)


def cmd_force_unlock(args: argparse.Namespace) -> int:
    spec = read_spec(args)  # on --vhost when given
    vhost = spec.vhost
    client = client_from_args(args)
    try:
        holder = force_unlock(client, vhost, spec.owner)
    finally:
        client.close()
    if holder is None:
        print(f"spec {spec.owner!r} on vhost {vhost!r} is not locked: nothing to do")
    else:
        print(f"Broke the lock of spec {spec.owner!r} on vhost {vhost!r} held by {holder.describe()}")
    return EXIT_OK
