"""What a quorum queue needs beyond `x-queue-type`, as data.

RabbitMQ's quorum queues dead-letter at-most-once unless told otherwise: a message expiring
from a retry queue back to its main queue, or leaving a main queue for its dead-letter
exchange, could be lost on a leader change. At-least-once dead-lettering needs
`x-overflow: reject-publish` beside it. A delivery limit stops a message that keeps coming
back (a crash loop, a requeue loop) from circulating forever, even outside our runtime.

Each function returns a plain `{argument: value}` table so the compiler can put it on the
queue's arguments and a policy layout can put the same settings (without the `x-` prefix)
into a policy definition.
"""

from __future__ import annotations

from topology.compile.objects import ArgValue
from topology.spec.model import QueueType

QUORUM = "quorum"
AT_LEAST_ONCE: dict[str, ArgValue] = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def queue_type_arguments(queue_type: QueueType) -> dict[str, ArgValue]:
    """`x-queue-type` for quorum; classic is the default and written as no key."""
    return {"x-queue-type": QUORUM} if queue_type == QUORUM else {}


def quorum_arguments(
    queue_type: QueueType, dead_letters: bool, delivery_limit: int | None = None
) -> dict[str, ArgValue]:
    """The arguments a queue of `queue_type` gets besides its dead-letter target.

    `dead_letters`: the queue has a dead-letter exchange (main and retry queues), so it gets
    at-least-once dead-lettering. `delivery_limit`: for queues with a dead-letter target (main
    queues and every retry tier); a dead-letter queue has none, so a limit there would drop.
    """
    arguments = queue_type_arguments(queue_type)
    if queue_type != QUORUM:
        return arguments
    if dead_letters:
        arguments.update(AT_LEAST_ONCE)
    if delivery_limit is not None:
        arguments["x-delivery-limit"] = delivery_limit
    return arguments


def as_policy_definition(arguments: dict[str, ArgValue]) -> dict[str, ArgValue]:
    """The same settings as a policy definition: policy keys drop the `x-` prefix, and the
    queue type cannot live in a policy (it stays an argument)."""
    return {key.removeprefix("x-"): value for key, value in arguments.items() if key != "x-queue-type"}
