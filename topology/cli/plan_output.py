"""How `plan`, `apply` and `destroy` print a plan, and the options they share to do it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

from topology.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, use_color, write_output
from topology.plan.model import Plan
from topology.plan.render.text import render_text


def add_plan_display_arguments(parser: argparse.ArgumentParser) -> None:
    """What `plan` and `apply` share: data-loss consent and how the plan is printed."""
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="allow deleting or replacing queues that hold messages",
    )
    parser.add_argument(
        "--move-messages",
        action="store_true",
        help="replace queues by moving their messages into the new queue (nothing lost; see docs/queue-settings.md)",
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


def report_plan(plan: Plan, args: argparse.Namespace) -> int:
    """Print the plan in the chosen format, save it if asked, and pick the exit status."""
    if not show(plan, args):
        if getattr(args, "out", None):
            print(f"error: the plan has errors: it was not saved to {args.out}", file=sys.stderr)
        return EXIT_ERROR
    if getattr(args, "out", None):
        from topology.plan.saved import plan_json

        write_output(plan_json(plan), args.out)
        print(f"Saved the plan to {args.out}: apply it with `rabbitform apply {args.out}`", file=sys.stderr)
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _render_json(plan: Plan, color: bool) -> str:
    """The plan as saved, except that users' salted password hashes are not shown."""
    from topology.plan.saved import plan_json  # the plan file's model: loaded by the formats that use it

    return plan_json(plan, redacted=True)


def _render_markdown(plan: Plan, color: bool) -> str:
    from topology.plan.render.markdown import render_markdown  # jinja2: loaded only for this format

    return render_markdown(plan, color)


PLAN_RENDERERS: dict[str, Callable[[Plan, bool], str]] = {
    "text": render_text,
    "json": _render_json,
    "markdown": _render_markdown,
}
PLAN_FORMATS = sorted(PLAN_RENDERERS)


def show(plan: Plan, args: argparse.Namespace) -> bool:
    """Print the plan; False when it has errors (which are then the last thing printed)."""
    sys.stdout.write(PLAN_RENDERERS[args.format](plan, use_color(args)))
    sys.stdout.flush()
    if plan.errors:
        for error in plan.errors:  # failures go to stderr too, whatever the format
            print(f"error: {error}", file=sys.stderr)
        return False
    return True


def summary_stream(args: argparse.Namespace) -> TextIO:
    """Where apply and destroy print their last line: stdout stays parseable when the plan was
    printed as JSON or Markdown."""
    return sys.stdout if args.format == "text" else sys.stderr
