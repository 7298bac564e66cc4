"""`rabbitform validate SPEC`: check a spec and print a one-line summary."""

from __future__ import annotations

import argparse
from typing import Any

from topology.cli.common import EXIT_OK, add_spec_arguments, read_spec
from topology.compile.compiler import compile_spec


def register(commands: Any) -> None:
    parser = commands.add_parser("validate", help="check a spec and print a one-line summary")
    add_spec_arguments(parser)
    parser.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    topology = compile_spec(spec)
    subscribers = sum(1 for _ in spec.subscribers())
    store = f", store queue {spec.store.queue!r}" if spec.store else ""
    if spec.layout != "rabbitform":
        store += f", layout {spec.layout}"
    print(
        f"{args.spec}: valid: organization {spec.organization!r}, vhost {spec.vhost!r}, "
        f"{len(spec.services)} service(s), {subscribers} subscriber(s){store}: "
        f"{len(topology.exchanges)} exchanges, {len(topology.queues)} queues, {len(topology.bindings)} bindings"
    )
    return EXIT_OK
