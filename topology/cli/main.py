"""The `rabbitform` command line (argparse). A thin shell over the pure core."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, NoReturn

from topology import __version__
from topology.cli.common import EXIT_ERROR, EXIT_OK
from topology.errors import RabbitformError

Handler = Callable[[argparse.Namespace], int]


DEBUG_ENV = "RABBITFORM_DEBUG"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Whatever escapes it becomes one `error:` line on stderr with every
    password masked; the traceback only with --debug or RABBITFORM_DEBUG=1."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    arguments = [argument for argument in arguments if argument != "--debug"]  # accepted anywhere
    try:
        parser = build_parser(_command_named(arguments))
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
        import traceback

        traceback.print_exc(file=sys.stderr)
    print(f"error: {_masked(message, arguments)}", file=sys.stderr)


def _masked(message: str, arguments: list[str]) -> str:
    """One line, with every password we may have been given replaced by ***."""
    from topology.urls import mask_text, secret_parts  # on the error path only

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


# How commands are registered. Only the module of the command being run is imported, so
# `rabbitform validate` never loads the applier, pika or the runtime; help and an unknown
# command load them all (to list them).
# - A planner command: a module of topology/cli with `register(commands)` (it calls
#   `commands.add_parser(NAME, ...)`), named in COMMANDS below under its command name.
# - A command of another package (topology never imports bus_runtime): an entry point in
#   pyproject.toml's `rabbitform.commands` group, `NAME = "package.module:register_function"`;
#   its module is imported only when NAME is the command run. Re-run `make install` after
#   adding one (entry points are installed metadata).
COMMANDS: dict[str, str] = {
    "validate": "topology.cli.validate",
    "export": "topology.cli.export",
    "asyncapi": "topology.cli.asyncapi",
    "plan": "topology.cli.plan",
    "apply": "topology.cli.apply",
    "destroy": "topology.cli.destroy",
    "force-unlock": "topology.cli.force_unlock",
    "import": "topology.cli.import_",
    "graph": "topology.cli.graph",
    "status": "topology.cli.status",
    "doctor": "topology.cli.doctor",
}

PLUGIN_GROUP = "rabbitform.commands"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with `command` registered alone when it is known, else with every command."""
    parser = _Parser(
        prog="rabbitform",
        description="Plan and apply RabbitMQ event-bus topology from a declarative spec.",
    )
    parser.add_argument("--version", action="version", version=f"rabbitform {__version__}")
    parser.add_argument("--debug", action="store_true", help=f"print the traceback of an error (also {DEBUG_ENV}=1)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in _registrations(command):
        register(commands)
    return parser


def _command_named(arguments: list[str]) -> str | None:
    """The command word: the first argument that is not an option (the top level's options take no value)."""
    return next((argument for argument in arguments if not argument.startswith("-")), None)


def _registrations(command: str | None) -> list[Callable[[Any], None]]:
    if command in COMMANDS:
        return [import_module(COMMANDS[command]).register]
    plugins = _plugin_commands()
    if command in plugins:
        return [plugins[command].load()]
    return [
        *(import_module(module).register for module in COMMANDS.values()),
        *(entry.load() for entry in plugins.values()),
    ]


def _plugin_commands() -> dict[str, Any]:
    """The `rabbitform.commands` entry points by command name (not loaded), in name order."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=PLUGIN_GROUP), key=lambda entry: entry.name)
    return {entry.name: entry for entry in found if entry.name not in COMMANDS}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
