"""`rabbitform destroy SPEC`: delete everything the spec owns (declared now or recorded), then its record."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from topology.apply.live import plan_destroy
from topology.broker.amqp_endpoint import resolve_amqp
from topology.cli.common import EXIT_ERROR, EXIT_OK, add_spec_arguments, add_vhost_argument, confirm, read_spec
from topology.cli.connection import add_connection_arguments, client_from_args
from topology.cli.locking import add_lock_arguments, held_lock
from topology.cli.plan_output import add_plan_display_arguments, show, summary_stream
from topology.cli.progress import reporter_for
from topology.state.lifecycle import destroy_owned
from topology.state.store import delete_record, read_records


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "destroy",
        help="delete everything a spec owns on the broker",
        description="Delete every exchange, queue and binding the spec owns (declared now or recorded by an "
        "earlier apply), then its ownership record. Nothing else is touched; the vhost stays.",
    )
    add_spec_arguments(parser)
    add_vhost_argument(parser)
    add_connection_arguments(parser)
    add_lock_arguments(parser, "destroy")
    add_plan_display_arguments(parser)
    parser.set_defaults(handler=cmd_destroy)


def cmd_destroy(args: argparse.Namespace) -> int:
    spec = read_spec(args)  # on --vhost when given
    client = client_from_args(args)
    try:
        amqp_url = resolve_amqp(client, args.amqp_url)  # a wrong AMQP endpoint stops us before any change
        with held_lock(
            client, spec.vhost, spec.owner, "destroy", args.lock_timeout, create_missing=False, amqp_url=amqp_url
        ) as lock:
            if lock is None:  # no vhost: nothing to delete, but a record left by a deleted vhost goes
                removed = delete_record(client, spec.vhost, spec.owner)
                note = "; removed its ownership record" if removed else ""
                print(f"Nothing to destroy: vhost {spec.vhost!r} does not exist{note}.")
                return EXIT_OK
            plan = replace(plan_destroy(spec, client, allow_data_loss=args.allow_data_loss), source=args.spec)
            if not show(plan, args):
                return EXIT_ERROR
            if plan.has_changes:
                question = (
                    f"\nDestroy everything spec {plan.owner!r} owns on vhost {plan.vhost!r} at {client.display_url}?\n"
                )
                confirm("destroy", question, approved=args.auto_approve)
                lock.ensure_held("destroy")
            recorded = any(r.owner == spec.owner for r in read_records(client, spec.vhost))
            result = destroy_owned(spec, client, plan, progress=reporter_for(client), amqp_url=amqp_url)
    finally:
        client.close()
    record = (
        f"removed the ownership record of spec {spec.owner!r} on vhost {spec.vhost!r}"
        if recorded
        else f"spec {spec.owner!r} had no ownership record on vhost {spec.vhost!r} (never applied there)"
    )
    print(
        f"\nDestroy complete: {result.destroyed} destroyed in {result.duration} s; {record}",
        file=summary_stream(args),
    )
    return EXIT_OK
