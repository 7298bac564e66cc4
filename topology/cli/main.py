"""The `rabbitform` command line (argparse). A thin shell over the pure core."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from topology import __version__
from topology.cli import alerts, apply, asyncapi, destroy, export, force_unlock, graph, import_, plan, status, validate
from topology.cli.common import EXIT_ERROR, EXIT_OK
from topology.errors import RabbitformError
from topology.urls import mask_text, secret_parts

Handler = Callable[[argparse.Namespace], int]


DEBUG_ENV = "RABBITFORM_DEBUG"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Whatever escapes it becomes one `error:` line on stderr with every
    password masked; the traceback only with --debug or RABBITFORM_DEBUG=1."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    arguments = [argument for argument in arguments if argument != "--debug"]  # accepted anywhere
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return EXIT_ERROR
        return handler(args)
    except RabbitformError as exc:
        _print_error(str(exc), arguments, debug)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        print(f"interrupted: {_masked(str(exc), arguments)}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except SystemExit:
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        hint = "" if debug else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
        _print_error(f"unexpected {detail}{hint}", arguments, debug)
        return EXIT_ERROR


def _print_error(message: str, arguments: list[str], debug: bool) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(f"error: {_masked(message, arguments)}", file=sys.stderr)


def _masked(message: str, arguments: list[str]) -> str:
    """One line, with every password we may have been given replaced by ***."""
    secrets: list[str] = []
    for value in [*arguments, *(os.environ.get(name, "") for name in URL_VARIABLES)]:
        if "://" in value or "@" in value:
            secrets.extend(secret_parts(value))
    secrets.extend(os.environ.get(name, "") for name in PASSWORD_VARIABLES)
    return " ".join(mask_text(message, secrets).split())


URL_VARIABLES = ("RABBITMQ_URL", "RABBITMQ_MANAGEMENT_URL")
PASSWORD_VARIABLES = ("RABBITMQ_PASSWORD",)


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
    parser.add_argument("--debug", action="store_true", help=f"print the traceback of an error (also {DEBUG_ENV}=1)")
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
    import_.register,
    graph.register,
    status.register,
    alerts.register,
]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
