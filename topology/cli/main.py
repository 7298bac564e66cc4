"""The `rabbitform` command line (argparse). A thin shell over the pure core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from topology import __version__
from topology.cli import apply, asyncapi, destroy, export, force_unlock, plan, validate
from topology.cli.common import EXIT_ERROR, EXIT_OK
from topology.errors import RabbitformError

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return handler(args)
    except RabbitformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 like every other error: with --detailed-exitcode, 2 means "changes"."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rabbitform",
        description="Plan and apply RabbitMQ event-bus topology from a declarative spec.",
    )
    parser.add_argument("--version", action="version", version=f"rabbitform {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in [*COMMANDS, *_plugin_commands()]:
        register(commands)
    return parser


def _plugin_commands() -> list[Callable[[Any], None]]:
    """Commands contributed by other packages (the runtime's `consume` and `publish`).

    They register through the `rabbitform.commands` entry-point group, so that `topology`
    never imports `bus_runtime`.
    """
    from importlib.metadata import entry_points

    return [entry.load() for entry in sorted(entry_points(group="rabbitform.commands"), key=lambda e: e.name)]


COMMANDS: list[Callable[[Any], None]] = [
    validate.register,
    export.register,
    asyncapi.register,
    plan.register,
    apply.register,
    destroy.register,
    force_unlock.register,
]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
