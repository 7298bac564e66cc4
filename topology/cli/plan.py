"""`rabbitform plan SPEC`: what apply would change, against the broker, a definitions file, or nothing."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from topology.cli.common import add_spec_arguments, add_vhost_argument, read_spec
from topology.cli.connection import add_connection_arguments
from topology.cli.plan_output import add_plan_output_arguments, report_plan
from topology.compile.access import with_access
from topology.compile.compiler import compile_spec
from topology.compile.definitions import default_queue_type, definitions_problem, from_definitions
from topology.compile.passwords import fresh_salt
from topology.errors import RabbitformError
from topology.plan.diff import compute_plan
from topology.plan.model import Plan
from topology.plan.scope import Scope
from topology.spec.model import Spec


def register(commands: Any) -> None:
    parser = commands.add_parser("plan", help="show what apply would change")
    add_spec_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--offline", action="store_true", help="plan against an empty broker, no network")
    source.add_argument(
        "--state", metavar="DEFINITIONS.json", help="plan against a RabbitMQ definitions file, no network"
    )
    add_vhost_argument(parser)
    add_connection_arguments(parser)
    add_plan_output_arguments(parser)
    parser.set_defaults(handler=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    if args.offline:
        plan = offline_plan(spec, None, args.allow_data_loss, args.move_messages)
    elif args.state:
        plan = offline_plan(spec, read_state(args.state), args.allow_data_loss, args.move_messages)
    else:
        plan = live_plan(spec, args)
    plan = _with_source(plan, args.spec)
    return report_plan(plan, args)


def _with_source(plan: Plan, source: str) -> Plan:
    return replace(plan, source=source)


def offline_plan(
    spec: Spec, state: dict[str, Any] | None, allow_data_loss: bool = False, move_messages: bool = False
) -> Plan:
    """Plan against a definitions document (or an empty broker when `state` is None)."""
    desired = with_access(compile_spec(spec), spec, fresh_salt)
    if state is None:
        actual = None
    else:
        vhosts = {v.get("name") for v in state.get("vhosts", [])}
        exists = not state.get("vhosts") or spec.vhost in vhosts
        info = next((v for v in state.get("vhosts", []) if isinstance(v, dict) and v.get("name") == spec.vhost), None)
        actual = from_definitions(state, spec.vhost, default_queue_type(info)) if exists else None
    scope = Scope.of_spec(spec)
    return compute_plan(desired, actual, scope, allow_data_loss=allow_data_loss, move_messages=move_messages)


DEFINITIONS_KEYS = ("vhosts", "exchanges", "queues", "bindings")


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
    if "format_version" in data and "changes" in data:
        raise RabbitformError(
            f"{path}: this is a saved plan, not RabbitMQ definitions; apply it with `rabbitform apply {path}`, "
            "or pass --state a definitions export (GET /api/definitions)"
        )
    if not any(key in data for key in DEFINITIONS_KEYS):
        raise RabbitformError(
            f"{path}: not RabbitMQ definitions: none of {', '.join(DEFINITIONS_KEYS)} in it "
            "(expected an export like GET /api/definitions or `rabbitform export`)"
        )
    problem = definitions_problem(data)
    if problem is not None:
        raise RabbitformError(f"{path}: not RabbitMQ definitions: {problem}")
    return data


def live_plan(spec: Spec, args: argparse.Namespace) -> Plan:
    """`rabbitform plan SPEC` without --offline/--state (the HTTP client and the live planner are
    imported here: `plan --offline` never loads them)."""
    from topology.apply.live import plan_live
    from topology.cli.connection import client_from_args
    from topology.cli.progress import reporter_for

    client = client_from_args(args)
    try:
        return plan_live(
            spec,
            client,
            allow_data_loss=args.allow_data_loss,
            move_messages=args.move_messages,
            progress=reporter_for(client),
        )
    finally:
        client.close()
