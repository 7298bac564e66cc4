"""`queue_settings: policies`: queue TTL and dead-lettering as policies, not queue arguments.

Queue arguments are immutable (changing one replaces the queue); a policy changes in place.
With `policies`, queues keep as arguments only what must be one (`x-queue-type`), and the
rest moves into a few policies: one per service and retry-delay tier for retry queues (a
retry copy already carries its `retry.<queue>` routing key, so one policy serves them all),
one per queue where a queue needs its own dead-letter routing key. Pure functions: the
compiler, the planner and the in-memory broker share them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from topology import naming
from topology.compile.objects import Policy, Queue, Topology

# Above the priorities operators give broad policies (0 to a few tens), so ours apply to the
# queues they were made for; explicit-name policies sit one above the service-wide tier.
BASE_PRIORITY = 100
NAMED_PRIORITY = BASE_PRIORITY + 1

# Queue argument -> policy key, for the settings a policy may carry.
POLICY_KEYS: dict[str, str] = {
    "x-message-ttl": "message-ttl",
    "x-dead-letter-exchange": "dead-letter-exchange",
    "x-dead-letter-routing-key": "dead-letter-routing-key",
    "x-dead-letter-strategy": "dead-letter-strategy",
    "x-overflow": "overflow",
    "x-delivery-limit": "delivery-limit",
}
ARGUMENT_KEYS = {policy_key: argument for argument, policy_key in POLICY_KEYS.items()}

# Quorum queues dead-letter at most once unless told otherwise; at-least-once needs both.
QUORUM_AT_LEAST_ONCE = {"dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}


def with_policies(
    topology: Topology,
    organization: str,
    services: Iterable[str],
    default_tier: tuple[int, str, int | None] = (5000, "classic", 20),
) -> Topology:
    """The same topology with TTL and dead-lettering moved from queue arguments into policies.

    `default_tier` is the spec's default (retry delay in ms, queue type, delivery limit): its
    retry queues share the service-wide policy, so changing the default delay updates that
    policy in place. Only quorum tiers carry a limit; one that differs from the default gets a
    policy of its own.
    """
    queues: list[Queue] = []
    settings: dict[str, dict[str, Any]] = {}
    for queue in topology.queues:
        kept = {k: v for k, v in queue.arguments.items() if k not in POLICY_KEYS}
        moved = {POLICY_KEYS[k]: v for k, v in queue.arguments.items() if k in POLICY_KEYS}
        if moved and queue.queue_type == "quorum" and "dead-letter-exchange" in moved:
            moved.update(QUORUM_AT_LEAST_ONCE)
        queues.append(replace(queue, arguments=kept))
        if moved:
            settings[queue.name] = moved
    types = {q.name: q.queue_type for q in topology.queues}
    policies = list(_policies(settings, types, organization, services, default_tier))
    return Topology.of(topology.vhost, topology.exchanges, queues, topology.bindings, policies)


def _policies(
    settings: dict[str, dict[str, Any]],
    types: Mapping[str, str],
    organization: str,
    services: Iterable[str],
    default_tier: tuple[int, str, int | None],
) -> Iterable[Policy]:
    """Retry queues whose dead-letter routing key is their own name share one policy per tier
    (delay, queue type, delivery limit); every other queue with settings gets a policy of its own."""
    tiered: set[str] = set()
    default_delay, default_type, default_limit = default_tier
    for service in sorted(services):
        prefix = naming.retry_exchange(organization, service) + "."
        tiers: dict[tuple[int, str, int | None], list[str]] = defaultdict(list)
        for name, definition in settings.items():
            if name.startswith(prefix) and definition.get("dead-letter-routing-key") == name:
                limit = definition.get("delivery-limit")
                own_limit = None if limit is None or limit == default_limit else int(limit)
                tiers[(int(definition.get("message-ttl", 0)), types.get(name, "classic"), own_limit)].append(name)
        for tier, names in sorted(tiers.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or 0)):
            definition = {k: v for k, v in settings[names[0]].items() if k != "dead-letter-routing-key"}
            tiered.update(names)
            delay, queue_type, own_limit = tier
            policy_name = naming.retry_policy(
                organization,
                service,
                None if delay == default_delay else delay,
                None if queue_type == default_type else queue_type,
                own_limit,
            )
            if tier == (default_delay, default_type, None):  # service-wide, outranked by the named tiers
                pattern, priority = "^" + re.escape(prefix), BASE_PRIORITY
            else:
                pattern, priority = exact_pattern(names), NAMED_PRIORITY
            yield Policy(policy_name, pattern, definition, priority)
    for name, definition in sorted(settings.items()):
        if name not in tiered:
            yield Policy(naming.queue_policy(name), exact_pattern([name]), definition, NAMED_PRIORITY)


def exact_pattern(names: Iterable[str]) -> str:
    """A pattern that matches exactly these queue names."""
    escaped = sorted(re.escape(name) for name in names)
    return f"^{escaped[0]}$" if len(escaped) == 1 else "^(?:" + "|".join(escaped) + ")$"


def applies_to_queues(policy: Policy) -> bool:
    return policy.apply_to in ("queues", "all")


def matches(policy: Policy, queue: str) -> bool:
    """Whether the policy's pattern matches the queue's name (an unreadable pattern matches nothing)."""
    try:
        return applies_to_queues(policy) and re.search(policy.pattern, queue) is not None
    except re.error:
        return False


def effective_policy(queue: str, policies: Iterable[Policy]) -> Policy | None:
    """The one policy RabbitMQ applies to a queue: the matching one with the highest priority."""
    candidates = [p for p in policies if matches(p, queue)]
    return max(candidates, key=lambda p: (p.priority, p.name), default=None)


def effective_arguments(queue: Queue, policies: Iterable[Policy]) -> dict[str, Any]:
    """The queue's settings as arguments, its effective policy filled in (an argument wins)."""
    policy = effective_policy(queue.name, policies)
    result = dict(queue.arguments)
    if policy is not None:
        for key, value in policy.definition.items():
            argument = ARGUMENT_KEYS.get(key)
            if argument is not None:
                result.setdefault(argument, value)
    return result


def foreign_policy_conflicts(desired: Topology, present: Iterable[Policy], owned: Iterable[str]) -> list[str]:
    """Warnings for queues whose settings come from our policies but that a policy the spec does
    not manage outranks: RabbitMQ applies only one policy per queue, so ours would not apply."""
    ours = list(desired.policies)
    if not ours:
        return []
    owned_names = set(owned) | {p.name for p in ours}
    foreign = [p for p in present if p.name not in owned_names]
    warnings = []
    for queue in desired.queues:
        mine = effective_policy(queue.name, ours)
        if mine is None:
            continue
        winner = effective_policy(queue.name, [mine, *foreign])
        if winner is not None and winner.name != mine.name:
            warnings.append(
                f"queue {queue.name} is matched by policy {winner.name} (priority {winner.priority}), which this "
                f"spec does not manage and which outranks {mine.name} (priority {mine.priority}): RabbitMQ applies "
                "only one policy per queue, so its TTL and dead-lettering would not apply; lower that policy's "
                "priority or narrow its pattern"
            )
    return warnings
