"""Replacements that move the messages (`--move-messages`), and moves left unfinished.

Pure: marks queue replaces as moves, and turns a holding queue found on the broker (see
`naming.holding_queue`) into a change that finishes its move, whatever phase it stopped in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from topology import naming
from topology.compile.definitions import object_definition
from topology.compile.objects import QueueStats, Topology
from topology.plan.model import Change, change_sort_key
from topology.plan.scope import Scope


def holding_queues(actual: Topology | None, scope: Scope) -> list[str]:
    """The holding queues of unfinished moves of queues this scope owns, sorted."""
    if actual is None:
        return []
    found = []
    for queue in actual.queues:
        target = naming.moved_queue(queue.name)
        if target is not None and scope.owns_queue(target):
            found.append(queue.name)
    return sorted(found)


def finishing_reason(holding: str) -> str:
    return f"finishing an interrupted move: holding queue {holding} still exists"


def with_moves(
    changes: list[Change],
    unchanged: int,
    desired: Topology,
    actual: Topology | None,
    stats: Mapping[str, QueueStats],
    move_messages: bool,
) -> tuple[list[Change], int]:
    """`changes` with queue replaces marked as moves (when asked) and unfinished moves added."""
    holding: dict[str, str] = {}
    for queue in actual.queues if actual is not None else ():
        target = naming.moved_queue(queue.name)
        if target is not None:
            holding[target] = queue.name
    wanted = {q.name: q for q in desired.queues}
    result: list[Change] = []
    seen: set[str] = set()
    for change in changes:
        if change.kind == "queue" and change.name in wanted:
            seen.add(change.name)
            resuming = change.name in holding
            if change.action == "replace" and (move_messages or resuming):
                change = replace(change, move=True, moving=resuming)
            elif change.action == "create" and resuming:
                change = replace(
                    change, action="replace", move=True, moving=True, reason=finishing_reason(holding[change.name])
                )
        result.append(change)
    for target, queue_holding in sorted(holding.items()):
        if target in wanted and target not in seen:
            definition = object_definition(wanted[target])
            counters = stats.get(target)
            result.append(
                Change(
                    "replace",
                    "queue",
                    target,
                    before=definition,
                    after=definition,
                    reason=finishing_reason(queue_holding),
                    messages=counters.messages if counters else None,
                    consumers=counters.consumers if counters else None,
                    move=True,
                    moving=True,
                )
            )
            unchanged -= 1
    result.sort(key=change_sort_key)
    return result, unchanged


def moved_queues(changes: list[Change]) -> set[str]:
    """The queues a plan replaces by moving their messages."""
    return {c.name for c in changes if c.kind == "queue" and c.move}
