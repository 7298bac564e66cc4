"""The live half of the command line: `plan` against the broker, and `apply`.

`topology.cli` imports this lazily (it needs the parser helpers defined there first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from topology import cli
from topology.errors import RabbitformError
from topology.live import ApplyResult, apply_plan, check_fresh, converge, plan_live
from topology.management import URL_ENV, ManagementClient
from topology.plan import Plan
from topology.spec import Spec

PROGRESS_THRESHOLD = 200  # fewer objects than this apply in a blink: no progress output


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help=f"the management API (default: ${URL_ENV} or http://localhost:15672); "
        "credentials from the URL or $RABBITMQ_USER / $RABBITMQ_PASSWORD (default guest/guest)",
    )
    parser.add_argument("--ca-cert", metavar="FILE", help="verify the broker's HTTPS certificate with this CA bundle")
    parser.add_argument("--insecure", action="store_true", help="do not verify the broker's HTTPS certificate")


def client_from_args(args: argparse.Namespace, fallback_url: str | None = None) -> ManagementClient:
    """Flag, then environment, then `fallback_url` (a saved plan's broker), then localhost."""
    url = args.management_url or os.environ.get(URL_ENV) or fallback_url
    return ManagementClient.from_env(url, ca_cert=args.ca_cert, insecure=args.insecure)


def live_plan(spec: Spec, args: argparse.Namespace) -> Plan:
    """`rabbitform plan SPEC` without --offline/--state."""
    client = client_from_args(args)
    try:
        return plan_live(spec, client, allow_data_loss=args.allow_data_loss)
    finally:
        client.close()


# ---------------------------------------------------------------- apply


def register_apply(commands: Any) -> None:
    parser = commands.add_parser(
        "apply",
        help="converge the broker to a spec, or apply a saved plan",
        description="Apply a spec (plan, confirm, converge) or a plan saved with `plan --out` (exactly as saved).",
    )
    cli.add_spec_arguments(parser, "SPEC|PLAN.json", "a spec file, or a plan saved by `plan --out`")
    parser.add_argument("--vhost", help="override the spec's vhost")
    add_connection_arguments(parser)
    parser.add_argument("--auto-approve", action="store_true", help="apply without asking for confirmation")
    cli.add_plan_display_arguments(parser)
    parser.set_defaults(handler=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    saved = read_saved_plan(args.spec)
    if saved is not None:
        return apply_saved(saved, args)
    spec = cli.read_spec(args)
    if args.vhost:
        spec = spec.model_copy(update={"vhost": args.vhost})
    client = client_from_args(args)
    try:
        plan = replace(plan_live(spec, client, allow_data_loss=args.allow_data_loss), source=args.spec)
        if not show(plan, args):
            return cli.EXIT_ERROR
        if not plan.has_changes:
            return cli.EXIT_OK
        confirm(plan, client, args)
        result = converge(spec, client, plan, progress=ProgressReporter())
    finally:
        client.close()
    report(result, args)
    return cli.EXIT_OK


def apply_saved(plan: Plan, args: argparse.Namespace) -> int:
    """Apply exactly what was saved; refuse when the broker changed since."""
    if args.vhost and args.vhost != plan.vhost:
        raise RabbitformError(f"{args.spec} was planned for vhost {plan.vhost!r}, not {args.vhost!r}; plan again")
    if args.allow_data_loss and not plan.allow_data_loss:
        raise RabbitformError(
            f"{args.spec} was planned without --allow-data-loss; plan again with it to accept losing messages"
        )
    if args.var or args.var_file:
        raise RabbitformError(f"{args.spec} is a saved plan: --var and --var-file apply to specs only")
    client = client_from_args(args, plan.management_url)
    try:
        if plan.management_url and plan.management_url != client.display_url:
            print(
                f"warning: {args.spec} was planned against {plan.management_url}; applying to {client.display_url}",
                file=sys.stderr,
            )
        if not show(plan, args):
            return cli.EXIT_ERROR
        check_fresh(plan, client, source=args.spec)
        result = apply_plan(plan, client, progress=ProgressReporter())
    finally:
        client.close()
    report(result, args)
    return cli.EXIT_OK


def read_saved_plan(path: str) -> Plan | None:
    """The plan in `path` if it holds one (a JSON object with `format_version`), else None (a spec)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None  # the spec loader reports unreadable files
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "format_version" not in data:
        return None
    try:
        return Plan.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RabbitformError(f"{path}: not a valid saved plan: {exc}") from None


def show(plan: Plan, args: argparse.Namespace) -> bool:
    """Print the plan; False when it has errors (which are then the last thing printed)."""
    sys.stdout.write(cli.PLAN_RENDERERS[args.format](plan, cli.use_color(args)))
    sys.stdout.flush()
    if plan.errors:
        if args.format != "text":
            for error in plan.errors:
                print(f"error: {error}", file=sys.stderr)
        return False
    return True


def confirm(plan: Plan, client: ManagementClient, args: argparse.Namespace) -> None:
    """Ask on a terminal; without one, only --auto-approve lets the apply go ahead."""
    if args.auto_approve:
        return
    if not sys.stdin.isatty():
        raise RabbitformError("refusing to apply without confirmation: stdin is not a terminal; pass --auto-approve")
    sys.stderr.write(
        f"\nApply these changes to vhost {plan.vhost!r} at {client.display_url}?\n"
        "Only 'yes' will be accepted to approve.\n\nEnter a value: "
    )
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "yes":
        raise RabbitformError("apply cancelled: nothing was changed")


def report(result: ApplyResult, args: argparse.Namespace) -> None:
    stream = summary_stream(args)
    if stream is sys.stdout:
        print(file=stream)
    print(result.summary_line, file=stream)


def summary_stream(args: argparse.Namespace) -> TextIO:
    """Keep stdout parseable when the plan was printed as JSON or Markdown."""
    return sys.stdout if args.format == "text" else sys.stderr


class ProgressReporter:
    """Progress on stderr for large applies: a counter on a terminal, a line every few seconds otherwise."""

    def __init__(
        self, stream: TextIO | None = None, threshold: int = PROGRESS_THRESHOLD, interval: float = 2.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.threshold = threshold
        self.interval = interval
        self._last = float("-inf")  # the first report always prints
        self._tty = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if total < self.threshold:
            return
        percent = 100 * done // total
        if self._tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\rApplying: {done}/{total} objects ({percent}%){end}")
            self.stream.flush()
            return
        now = time.monotonic()
        if done >= total or now - self._last >= self.interval:
            self._last = now
            print(f"Applying: {done}/{total} objects ({percent}%)", file=self.stream, flush=True)
