"""`rabbitform status SPEC`: messages ready, unacked, retrying and dead per subscriber, from the
management API; `--check` makes it a health check (exit 2 when something needs attention)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from topology.broker.management import ManagementClient
from topology.cli.common import EXIT_CHANGES, EXIT_OK, add_spec_arguments, add_vhost_argument, read_spec
from topology.cli.connection import add_connection_arguments, client_from_args
from topology.errors import RabbitformError
from topology.spec.model import Spec
from topology.status.model import check_problems
from topology.status.read import read_status
from topology.status.render import render_status_json, render_status_text

EXIT_UNHEALTHY = EXIT_CHANGES  # 2, as `plan --detailed-exitcode` says "look at this"
MIN_WATCH_S = 0.5  # faster polls only load the broker: its statistics refresh every 5 s
MAX_WATCH_S = 86400.0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="per subscriber: messages ready, unacked, retrying, dead letters, consumers, rates",
        description="The live state of the spec's queues (management API). Counts the API does not give print as '?'.",
    )
    add_spec_arguments(parser)
    add_vhost_argument(parser)
    add_connection_arguments(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 2 when a dead-letter queue holds messages or a subscriber queue has no consumer",
    )
    parser.add_argument(
        "--max-dead-letters", type=int, default=0, metavar="N", help="with --check: dead letters allowed per queue"
    )
    parser.add_argument(
        "--require-consumers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --check: a subscriber queue without a consumer fails the check (default: yes)",
    )
    parser.set_defaults(handler=cmd_status)


def _show(spec: Spec, client: ManagementClient, args: argparse.Namespace) -> list[str] | None:
    """Read and print one report; the check's problems (None without --check)."""
    report = read_status(spec, client)
    problems = check_problems(report, args.max_dead_letters, args.require_consumers) if args.check else None
    if args.watch is not None and sys.stdout.isatty():
        sys.stdout.write("\x1b[H\x1b[2J")  # redraw in place on a terminal
    if args.format == "json":
        sys.stdout.write(render_status_json(report, problems))
    else:
        sys.stdout.write(render_status_text(report))
        for problem in problems or []:
            print(f"Check failed: {problem}")
    sys.stdout.flush()
    return problems


def cmd_status(args: argparse.Namespace) -> int:
    if args.watch is not None and not (math.isfinite(args.watch) and MIN_WATCH_S <= args.watch <= MAX_WATCH_S):
        raise RabbitformError(
            f"--watch {args.watch:g}: give a number of seconds from {MIN_WATCH_S:g} to {MAX_WATCH_S:g} "
            "(the management API's counts change every 5 s by default)"
        )
    if args.max_dead_letters < 0:
        raise RabbitformError("--max-dead-letters must be >= 0")
    spec = read_spec(args)  # on --vhost when given
    client = client_from_args(args)
    problems: list[str] | None = None
    try:
        while True:
            problems = _show(spec, client, args)
            if args.watch is None:
                break
            time.sleep(args.watch)
    except KeyboardInterrupt:
        if args.watch is None:
            raise
        # Ctrl-C is how a watch ends: the last report stands
    finally:
        client.close()
    if problems:
        return EXIT_UNHEALTHY
    return EXIT_OK
