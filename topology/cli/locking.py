"""The lock options `apply` and `destroy` share, and holding the lock around their work."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from topology.apply.executor import create_vhost
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_vhost
from topology.errors import RabbitformError
from topology.state.lock import BrokerLock
from topology.state.store import forget_records

MAX_LOCK_TIMEOUT_S = 86400.0  # a day: longer is a typo, and inf/nan would wait forever


def add_lock_arguments(parser: argparse.ArgumentParser, verb: str, amqp_for: str = "the lock") -> None:
    """--auto-approve, --amqp-url and --lock-timeout: the options of a command that changes the
    broker under the spec's lock (`verb` it, with AMQP used for `amqp_for`)."""
    parser.add_argument("--auto-approve", action="store_true", help=f"{verb} without asking for confirmation")
    parser.add_argument(
        "--amqp-url",
        metavar="URL",
        help=f"AMQP, for {amqp_for} (default: $RABBITMQ_URL's host and port, else the AMQP listener the "
        "management API names for the node that answered; with the management credentials); checked to reach "
        "the same broker as --management-url",
    )
    parser.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another apply or destroy of the spec to finish (default: fail at once)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_LOCK_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_LOCK_TIMEOUT_S:g}")
    return value


@contextmanager
def held_lock(
    client: ManagementClient,
    vhost: str,
    owner: str,
    command: str,
    timeout: float,
    *,
    create_missing: bool,
    amqp_url: str | None = None,
    known_to_exist: bool = False,
) -> Iterator[BrokerLock | None]:
    """Hold the (vhost, owner) lock; yields None (and holds nothing) when the vhost is missing
    and `create_missing` is False. The lock lives in the vhost, so apply creates a missing one
    first (only once the plan is confirmed: cli/apply.py). `known_to_exist` skips reading the
    vhost again (the caller just did): only a lock that cannot be taken reads it, to tell a vhost
    deleted since from other failures."""
    if not known_to_exist and read_vhost(client, vhost) is None:
        if not create_missing:
            yield None
            return
        # Records outlive a deleted vhost; the objects they name went with it.
        forget_records(client, vhost)
        create_vhost(client, vhost)
    lock = BrokerLock(client, vhost, owner, command, timeout, amqp_url)
    try:
        lock.acquire()
    except RabbitformError:
        if known_to_exist and not create_missing and read_vhost(client, vhost) is None:
            yield None
            return
        raise
    try:
        yield lock
    finally:
        lock.release()
    if lock.lost:
        print(f"warning: {lock.lost} before {command} finished: another process may have taken it", file=sys.stderr)


def require_owner(owner: str | None, source: str) -> str:
    if owner is None:
        raise RabbitformError(f"{source} was saved by an older rabbitform without its owner: plan again")
    return owner
