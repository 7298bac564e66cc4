"""The `rabbitform` command line (argparse). A thin shell over the pure core."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from topology import __version__
from topology.compile import compile_spec
from topology.definitions import definitions_problem, dumps, from_definitions, to_definitions
from topology.diff import compute_plan
from topology.errors import RabbitformError
from topology.loader import load_spec, load_variables
from topology.plan import Plan
from topology.render_markdown import render_markdown
from topology.render_text import render_text
from topology.scope import Scope
from topology.spec import Spec

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

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


def add_spec_arguments(
    parser: argparse.ArgumentParser, metavar: str = "SPEC", help: str = "the spec file (YAML, rendered with jinja2)"
) -> None:
    parser.add_argument("spec", metavar=metavar, help=help)
    parser.add_argument(
        "--var", action="append", default=[], metavar="KEY=VALUE", help="a template variable (repeatable)"
    )
    parser.add_argument(
        "--var-file", action="append", default=[], metavar="FILE", help="a YAML file of template variables"
    )


def read_spec(args: argparse.Namespace) -> Spec:
    return load_spec(args.spec, load_variables(args.var, args.var_file))


def write_output(text: str, path: str | None) -> None:
    if path and path != "-":
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RabbitformError(f"{path}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)


def use_color(args: argparse.Namespace) -> bool:
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


# ---------------------------------------------------------------- validate


def _register_validate(commands: Any) -> None:
    parser = commands.add_parser("validate", help="check a spec and print a one-line summary")
    add_spec_arguments(parser)
    parser.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    topology = compile_spec(spec)
    subscribers = sum(1 for _ in spec.subscribers())
    store = f", store queue {spec.store.queue!r}" if spec.store else ""
    print(
        f"{args.spec}: valid: organization {spec.organization!r}, vhost {spec.vhost!r}, "
        f"{len(spec.services)} service(s), {subscribers} subscriber(s){store}: "
        f"{len(topology.exchanges)} exchanges, {len(topology.queues)} queues, {len(topology.bindings)} bindings"
    )
    return EXIT_OK


# ---------------------------------------------------------------- export


def _register_export(commands: Any) -> None:
    parser = commands.add_parser("export", help="write the spec's topology as RabbitMQ definitions JSON")
    add_spec_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--vhost", help="override the spec's vhost")
    parser.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    if args.vhost:
        spec = spec.model_copy(update={"vhost": args.vhost})
    write_output(dumps(to_definitions(compile_spec(spec))), args.output)
    return EXIT_OK


# ---------------------------------------------------------------- plan


def add_plan_display_arguments(parser: argparse.ArgumentParser) -> None:
    """What `plan` and `apply` share: data-loss consent and how the plan is printed."""
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="allow deleting or replacing queues that hold messages",
    )
    parser.add_argument("--format", choices=PLAN_FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--no-color", action="store_true", help="never colour the text output")


def add_plan_output_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_display_arguments(parser)
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are, 1 on error",
    )
    parser.add_argument("--out", metavar="PLAN.json", help="save the plan to apply it later exactly as shown")


def _register_plan(commands: Any) -> None:
    parser = commands.add_parser("plan", help="show what apply would change")
    add_spec_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--offline", action="store_true", help="plan against an empty broker, no network")
    source.add_argument(
        "--state", metavar="DEFINITIONS.json", help="plan against a RabbitMQ definitions file, no network"
    )
    parser.add_argument("--vhost", help="override the spec's vhost")
    from topology.cli_live import add_connection_arguments  # lazily: cli_live builds on this module

    add_connection_arguments(parser)
    add_plan_output_arguments(parser)
    parser.set_defaults(handler=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    if args.vhost:
        spec = spec.model_copy(update={"vhost": args.vhost})
    if args.offline:
        plan = offline_plan(spec, None, args.allow_data_loss)
    elif args.state:
        plan = offline_plan(spec, read_state(args.state), args.allow_data_loss)
    else:
        from topology.cli_live import live_plan

        plan = live_plan(spec, args)
    plan = _with_source(plan, args.spec)
    return report_plan(plan, args)


def _with_source(plan: Plan, source: str) -> Plan:
    return replace(plan, source=source)


def offline_plan(spec: Spec, state: dict[str, Any] | None, allow_data_loss: bool = False) -> Plan:
    """Plan against a definitions document (or an empty broker when `state` is None)."""
    desired = compile_spec(spec)
    if state is None:
        actual = None
    else:
        vhosts = {v.get("name") for v in state.get("vhosts", [])}
        exists = not state.get("vhosts") or spec.vhost in vhosts
        actual = from_definitions(state, spec.vhost) if exists else None
    return compute_plan(desired, actual, Scope.of_spec(spec), allow_data_loss=allow_data_loss)


def read_state(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RabbitformError(f"{path}: cannot read the definitions file: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise RabbitformError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise RabbitformError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not isinstance(data, dict):
        raise RabbitformError(f"{path}: a definitions file is a JSON object with exchanges, queues, bindings")
    problem = definitions_problem(data)
    if problem is not None:
        raise RabbitformError(f"{path}: not RabbitMQ definitions: {problem}")
    return data


def report_plan(plan: Plan, args: argparse.Namespace) -> int:
    """Print the plan in the chosen format, save it if asked, and pick the exit status."""
    renderer = PLAN_RENDERERS[args.format]
    sys.stdout.write(renderer(plan, use_color(args)))
    if plan.errors:
        if args.format != "text":
            for error in plan.errors:
                print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "out", None):
        Path(args.out).write_text(plan.to_json(), encoding="utf-8")
        print(f"Saved the plan to {args.out}: apply it with `rabbitform apply {args.out}`", file=sys.stderr)
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _render_json(plan: Plan, color: bool) -> str:
    return plan.to_json()


PLAN_RENDERERS: dict[str, Callable[[Plan, bool], str]] = {
    "text": render_text,
    "json": _render_json,
    "markdown": render_markdown,
}
PLAN_FORMATS = sorted(PLAN_RENDERERS)


def _register_apply(commands: Any) -> None:
    from topology.cli_live import register_apply  # lazily: cli_live builds on this module

    register_apply(commands)


COMMANDS: list[Callable[[Any], None]] = [_register_validate, _register_export, _register_plan, _register_apply]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
