"""`rabbitform dlq list|show|replay|purge`: dead letters from the command line.

Registered through the `rabbitform.commands` entry point (topology never imports bus_runtime).
The broker is `RABBITMQ_URL` (or `--url`) on the spec's vhost (or `--vhost`).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from typing import Any

from bus_runtime.cli import _add_broker_arguments as add_broker_arguments
from bus_runtime.cli import _connector as broker_connector
from bus_runtime.deadletters.api import DeadLetterQueues
from bus_runtime.deadletters.model import REASONS, parse_time
from bus_runtime.deadletters.ops import Outcome
from bus_runtime.deadletters.render import render_letters, render_outcome, render_preview, render_summaries, to_json
from topology.cli.common import EXIT_OK, add_spec_arguments, confirm, read_spec
from topology.errors import RabbitformError


def register_dlq(commands: Any) -> None:
    parser = commands.add_parser(
        "dlq",
        help="list, show, replay or purge dead letters",
        description="Dead letters of the spec's subscribers (and the store), by the spec's naming.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser(
        "list", help="per subscriber: dead letters, oldest and newest, by error type and reason"
    )
    _common(listing)
    listing.set_defaults(handler=cmd_list)

    show = actions.add_parser("show", help="the matching dead letters with their headers; takes nothing")
    _common(show)
    _filters(show)
    show.set_defaults(handler=cmd_show)

    replay = actions.add_parser("replay", help="move matching dead letters back to their subscriber's queue alone")
    _common(replay)
    _filters(replay)
    _consent(replay)
    replay.add_argument("--rate", metavar="N/s", help="at most N messages per second, e.g. 100/s")
    replay.set_defaults(handler=cmd_replay)

    purge = actions.add_parser("purge", help="delete matching dead letters")
    _common(purge)
    _filters(purge)
    _consent(purge)
    purge.set_defaults(handler=cmd_purge)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    raise RabbitformError("dlq needs an action: list, show, replay or purge")


def _common(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    add_broker_arguments(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--subscriber", required=True, metavar="NAME", help="a subscriber, SERVICE/NAME, a queue, or store"
    )
    parser.add_argument(
        "--error-type", action="append", default=[], metavar="T", help="only this error type (repeatable)"
    )
    parser.add_argument("--reason", action="append", default=[], choices=REASONS, help="only this reason (repeatable)")
    parser.add_argument("--id", action="append", default=[], metavar="ID", help="only this message id (repeatable)")
    parser.add_argument("--since", metavar="TIME", help="dead-lettered at or after TIME (ISO 8601, UTC if no offset)")
    parser.add_argument("--until", metavar="TIME", help="dead-lettered at or before TIME")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N messages, the oldest first")


def _consent(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    parser.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_time(value)
    if parsed is None:
        raise RabbitformError(f"{option} {value!r} is not an ISO 8601 time, e.g. 2026-11-27T10:00:00Z")
    return parsed


def parse_rate(value: str | None) -> float | None:
    if value is None:
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/s)?\s*", value)
    if not found or not 0 < float(found.group(1)) <= 1_000_000:
        raise RabbitformError(f"--rate {value!r}: give messages per second (at most 1000000), e.g. 100/s")
    return float(found.group(1))


def _filter_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.limit is not None and args.limit < 1:
        raise RabbitformError("--limit must be >= 1")
    return {
        "error_types": args.error_type,
        "reasons": args.reason,
        "ids": args.id,
        "since": _time(args.since, "--since"),
        "until": _time(args.until, "--until"),
        "limit": args.limit,
    }


def _open(args: argparse.Namespace) -> DeadLetterQueues:
    """The broker and vhost as `consume` and `publish` choose them (one rule for every runtime command)."""
    spec = read_spec(args)
    connector = broker_connector(args, spec.vhost)
    connector.check()  # why a connection fails, in words (never a pika exception's name)
    return DeadLetterQueues.connect(spec, connector, vhost=connector.vhost)


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as dlq:
        summaries = dlq.list()
        vhost = dlq.spec.vhost
    if args.format == "json":
        sys.stdout.write(to_json({"vhost": vhost, "subscribers": [s.to_dict() for s in summaries]}))
    else:
        sys.stdout.write(render_summaries(summaries, vhost))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    filters = _filter_options(args)
    with _open(args) as dlq:
        target = dlq.target(args.subscriber)
        letters = dlq.show(args.subscriber, **filters)
    if args.format == "json":
        sys.stdout.write(
            to_json(
                {
                    "subscriber": target.label,
                    "dead_letter_queue": target.dead_letter_queue,
                    "messages": [letter.to_dict() for letter in letters],
                }
            )
        )
    else:
        sys.stdout.write(render_letters(letters, target.dead_letter_queue))
    return EXIT_OK


def _confirm(args: argparse.Namespace, dlq: DeadLetterQueues, verb: str, filters: dict[str, Any]) -> None:
    """Apply's rules, after seeing what would happen (a dry run needs no answer)."""

    def question() -> str:
        preview = dlq.purge(args.subscriber, dry_run=True, **filters)
        return render_preview(preview, verb) + f"\n{verb.capitalize()} these dead letters? "

    confirm(verb, question, approved=args.dry_run or args.auto_approve)


def _report(outcome: Outcome, args: argparse.Namespace, verb: str) -> int:
    if args.format == "json":
        sys.stdout.write(to_json(outcome.to_dict()))
    else:
        sys.stdout.write(render_outcome(outcome, verb))
    return EXIT_OK


class _Progress:
    """`replayed N dead letter(s) so far` on stderr, at most every 2 s, for long runs."""

    def __init__(self, verb: str, interval: float = 2.0) -> None:
        self.verb = verb
        self.interval = interval
        self._last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(f"{self.verb} {done} dead letter(s) so far", file=sys.stderr, flush=True)


def cmd_replay(args: argparse.Namespace) -> int:
    filters = _filter_options(args)
    rate = parse_rate(args.rate)
    with _open(args) as dlq:
        dlq.target(args.subscriber)
        _confirm(args, dlq, "replay", filters)
        outcome = dlq.replay(
            args.subscriber, dry_run=args.dry_run, rate=rate, on_progress=_Progress("replayed"), **filters
        )
    return _report(outcome, args, "replay")


def cmd_purge(args: argparse.Namespace) -> int:
    filters = _filter_options(args)
    with _open(args) as dlq:
        dlq.target(args.subscriber)
        _confirm(args, dlq, "purge", filters)
        outcome = dlq.purge(args.subscriber, dry_run=args.dry_run, on_progress=_Progress("purged"), **filters)
    return _report(outcome, args, "purge")
