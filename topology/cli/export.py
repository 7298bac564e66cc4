"""`rabbitform export SPEC`: the spec's topology as RabbitMQ definitions JSON."""

from __future__ import annotations

import argparse
from typing import Any

from topology.cli.common import EXIT_OK, add_spec_arguments, add_vhost_argument, read_spec, write_output
from topology.compile.compiler import compile_spec
from topology.compile.definitions import dumps, to_definitions


def register(commands: Any) -> None:
    parser = commands.add_parser("export", help="write the spec's topology as RabbitMQ definitions JSON")
    add_spec_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_vhost_argument(parser)
    parser.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    write_output(dumps(to_definitions(compile_spec(spec))), args.output)
    return EXIT_OK
