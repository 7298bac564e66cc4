"""`rabbitform graph SPEC`: the topology as the seed draws it, in Mermaid or DOT. No network."""

from __future__ import annotations

import argparse
from typing import Any

from topology.cli.common import EXIT_OK, add_spec_arguments, read_spec, write_output
from topology.compile.compiler import compile_spec
from topology.errors import RabbitformError
from topology.graph import build_graph, only_service, to_dot, to_mermaid

FORMATS = ("mermaid", "dot")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "graph",
        help="draw the topology (Mermaid or Graphviz DOT)",
        description="Each service exchange with its retry and dead-letter exchanges, each subscriber's queue "
        "with its retry queue (TTL on the edge) and dead-letter queue, the store, routing keys on the edges.",
    )
    add_spec_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="mermaid", help="mermaid (default) or dot")
    parser.add_argument("--service", help="only this service's exchanges and the queues bound to them")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    topology = compile_spec(spec)
    if args.service:
        if args.service not in spec.services:
            known = ", ".join(sorted(spec.services)) or "none"
            raise RabbitformError(f"--service {args.service!r} is not in {args.spec} (services: {known})")
        topology = only_service(topology, spec.organization, args.service)
    graph = build_graph(topology)
    text = to_dot(graph, spec.organization) if args.format == "dot" else to_mermaid(graph)
    write_output(text, args.output)
    return EXIT_OK
