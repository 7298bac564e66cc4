"""`rabbitform apply SPEC|PLAN.json`: plan, confirm and converge, or apply a saved plan exactly."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from topology.apply.live import ApplyResult, StalePlanError, check_fresh, plan_live
from topology.apply.move import MoveProgressReporter
from topology.broker.amqp_endpoint import resolve_amqp
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_vhost
from topology.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_spec_arguments,
    add_vhost_argument,
    confirm,
    read_spec,
    vhost_override,
)
from topology.cli.connection import add_connection_arguments, client_from_args
from topology.cli.locking import add_lock_arguments, held_lock, require_owner
from topology.cli.plan_output import add_plan_display_arguments, show, summary_stream
from topology.cli.progress import reporter_for
from topology.errors import RabbitformError
from topology.plan.model import Plan
from topology.plan.saved import looks_like_saved_plan, parse_saved_plan
from topology.progress import Progress
from topology.spec.model import Spec
from topology.state.lifecycle import apply_owned, apply_saved_owned


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "apply",
        help="converge the broker to a spec, or apply a saved plan",
        description="Apply a spec (plan, confirm, converge) or a plan saved with `plan --out` (exactly as saved).",
    )
    add_spec_arguments(parser, "SPEC|PLAN.json", "a spec file, or a plan saved by `plan --out`")
    add_vhost_argument(parser)
    add_connection_arguments(parser)
    add_lock_arguments(parser, "apply", amqp_for="the lock and --move-messages")
    add_plan_display_arguments(parser)
    parser.set_defaults(handler=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    saved = read_saved_plan(args.spec)
    if saved is not None:
        return apply_saved(saved, args)
    spec = read_spec(args)
    client = client_from_args(args)
    progress = reporter_for(client)
    try:
        amqp_url = resolve_amqp(client, args.amqp_url)  # a wrong AMQP endpoint stops us before any change
        if read_vhost(client, spec.vhost) is None:
            result = _apply_new_vhost(spec, client, args, amqp_url, progress)
        else:
            with held_lock(
                client,
                spec.vhost,
                spec.owner,
                "apply",
                args.lock_timeout,
                create_missing=False,
                amqp_url=amqp_url,
                known_to_exist=True,
            ) as lock:
                if lock is None:
                    raise RabbitformError(f"vhost {spec.vhost!r} was deleted while apply started; run it again")
                planned = plan_live(
                    spec,
                    client,
                    allow_data_loss=args.allow_data_loss,
                    move_messages=args.move_messages,
                    progress=progress,
                )
                plan = replace(planned, source=args.spec)
                if not show(plan, args):
                    return EXIT_ERROR
                if not plan.has_changes:
                    return EXIT_OK
                _confirm_apply(plan, client, args)
                lock.ensure_held("apply")
                result = _apply(spec, client, plan, args, amqp_url, progress)
    finally:
        client.close()
    if result is None:
        return EXIT_ERROR
    report(result, args)
    return EXIT_OK


def _confirm_apply(plan: Plan, client: ManagementClient, args: argparse.Namespace) -> None:
    question = f"\nApply these changes to vhost {plan.vhost!r} at {client.display_url}?\n"
    confirm("apply", question, approved=args.auto_approve)


def _apply_new_vhost(
    spec: Spec, client: ManagementClient, args: argparse.Namespace, amqp_url: str, progress: Progress
) -> ApplyResult | None:
    """A missing vhost: plan and confirm first (the lock lives in the vhost, so it cannot be taken
    yet), then create the vhost, take the lock and plan again; a plan that changed meanwhile
    (another apply got there first) is refused. A refusal or a `no` leaves the broker untouched."""
    planned = plan_live(
        spec, client, allow_data_loss=args.allow_data_loss, move_messages=args.move_messages, progress=progress
    )
    plan = replace(planned, source=args.spec)
    if not show(plan, args):
        return None
    _confirm_apply(plan, client, args)
    with held_lock(client, spec.vhost, spec.owner, "apply", args.lock_timeout, create_missing=True, amqp_url=amqp_url):
        again = plan_live(spec, client, allow_data_loss=args.allow_data_loss, move_messages=args.move_messages)
        if _change_keys(again) != _change_keys(plan):
            raise StalePlanError(
                f"vhost {spec.vhost!r} at {client.display_url} changed while the plan waited for confirmation "
                f"(another apply?): nothing of the plan was applied; run `rabbitform apply {args.spec}` again"
            )
        result = _apply(spec, client, replace(again, source=args.spec), args, amqp_url, progress)
    return replace(result, added=result.added + 1)  # the vhost, created with the lock


def _change_keys(plan: Plan) -> list[tuple[str, str, str]]:
    """What a plan does, without the vhost's own creation (done by then) or fresh password salts."""
    return sorted((c.action, c.kind, c.name) for c in plan.changes if c.kind != "vhost")


def _apply(
    spec: Spec, client: ManagementClient, plan: Plan, args: argparse.Namespace, amqp_url: str, progress: Progress
) -> ApplyResult:
    try:
        return apply_owned(
            spec,
            client,
            plan,
            progress=progress,
            amqp_url=amqp_url,
            move_progress=MoveProgressReporter(),
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_partly_applied(plan.vhost, args.spec)) from None


def apply_saved(plan: Plan, args: argparse.Namespace) -> int:
    """Apply exactly what was saved; refuse when the broker changed since."""
    vhost = vhost_override(args)
    if vhost is not None and vhost != plan.vhost:
        raise RabbitformError(f"{args.spec} was planned for vhost {plan.vhost!r}, not {vhost!r}; plan again")
    if args.allow_data_loss and not plan.allow_data_loss:
        raise RabbitformError(
            f"{args.spec} was planned without --allow-data-loss; plan again with it to accept losing messages"
        )
    if args.move_messages and not plan.move_messages:
        raise RabbitformError(f"{args.spec} was planned without --move-messages; plan again with it to move messages")
    if args.var or args.var_file:
        raise RabbitformError(f"{args.spec} is a saved plan: --var and --var-file apply to specs only")
    client = client_from_args(args, plan.management_url)
    try:
        if plan.management_url and plan.management_url != client.display_url:
            print(
                f"warning: {args.spec} was planned against {plan.management_url}; applying to {client.display_url}",
                file=sys.stderr,
            )
        owner = require_owner(plan.owner, args.spec)
        amqp_url = resolve_amqp(client, args.amqp_url)
        # The lock lives in the vhost: a plan that creates it is checked before the lock creates it.
        # The plan is shown only once it is known to hold: a stale plan prints its error alone.
        creates_vhost = any(c.kind == "vhost" for c in plan.changes)
        if creates_vhost:
            check_fresh(plan, client, source=args.spec)
        with held_lock(client, plan.vhost, owner, "apply", args.lock_timeout, create_missing=True, amqp_url=amqp_url):
            if not creates_vhost:
                check_fresh(plan, client, source=args.spec)
            if not show(plan, args):
                return EXIT_ERROR
            try:
                result = apply_saved_owned(
                    plan,
                    client,
                    progress=reporter_for(client),
                    amqp_url=amqp_url,
                    move_progress=MoveProgressReporter(),
                )
            except KeyboardInterrupt:
                raise KeyboardInterrupt(_partly_applied(plan.vhost, plan.source or "SPEC")) from None
    finally:
        client.close()
    report(result, args)
    return EXIT_OK


def _partly_applied(vhost: str, spec: str) -> str:
    """What an interrupted apply leaves, and how to finish it (a saved plan is stale by then)."""
    return (
        f"vhost {vhost!r} may be partly applied; running `rabbitform apply {spec}` again completes it "
        "(it plans from what is there now)"
    )


def read_saved_plan(path: str) -> Plan | None:
    """The plan in `path` if it looks like one (topology.plan.saved), validated; else None (a spec)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # the spec loader reports unreadable files
    if not looks_like_saved_plan(text, path):
        return None
    return parse_saved_plan(text, path)


def report(result: ApplyResult, args: argparse.Namespace) -> None:
    stream = summary_stream(args)
    if stream is sys.stdout:
        print(file=stream)
    print(result.summary_line, file=stream)
