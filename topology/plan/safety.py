"""The plan's safety rules: never lose messages unless the user said so.

Pure: takes the changes (with the queues' live counters), returns warnings and errors.
"""

from __future__ import annotations

from collections.abc import Iterable

from topology.compile.objects import Topology
from topology.plan.model import Change
from topology.plan.scope import Scope

DATA_LOSS_HINT = "rerun with --allow-data-loss to accept losing them"
MOVE_HINT = "rerun with --move-messages to keep them, or with --allow-data-loss to accept losing them"


def check_safety(changes: Iterable[Change], allow_data_loss: bool) -> tuple[list[str], list[str]]:
    """(warnings, errors) for a list of changes.

    Deleting or replacing a queue that holds messages is an error unless data loss is
    allowed (then a warning); doing so to a queue with consumers is a warning.
    """
    warnings: list[str] = []
    errors: list[str] = []
    for change in changes:
        if change.kind != "queue" or change.action not in ("delete", "replace"):
            continue
        verb = "deleting" if change.action == "delete" else "replacing"
        if change.move:
            if change.consumers:
                warnings.append(
                    f"queue {change.name} has {_count(change.consumers, 'consumer')}: moving its messages while they "
                    "consume may deliver some twice (stop them for an exactly-once move)"
                )
            continue
        if change.messages:
            text = f"queue {change.name} holds {_count(change.messages, 'message')}: {verb} it loses them"
            if allow_data_loss:
                warnings.append(f"{text} (allowed by --allow-data-loss)")
            else:
                errors.append(f"{text}; {DATA_LOSS_HINT if change.action == 'delete' else MOVE_HINT}")
        if change.consumers:
            warnings.append(
                f"queue {change.name} has {_count(change.consumers, 'consumer')}: {verb} it disconnects them"
            )
    return warnings, errors


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def foreign_bindings_lost(actual: Topology | None, scope: Scope, changes: Iterable[Change]) -> list[str]:
    """Warnings for bindings the spec does not own that vanish with an owned object it deletes
    or replaces (another team's queue bound to our exchange, say): apply never recreates them."""
    if actual is None:
        return []
    removed = {(c.kind, c.name): c.action for c in changes if c.action in ("delete", "replace")}
    warnings = []
    for binding in actual.bindings:
        if scope.owns_binding(binding):
            continue
        ends = [("exchange", binding.source), (binding.destination_type, binding.destination)]
        for kind, name in ends:
            action = removed.get((kind, name))
            if action is not None:
                verb = "deleted" if action == "delete" else "replaced"
                warnings.append(
                    f"binding {binding.label} is not managed by this spec and is lost when {kind} {name} "
                    f"is {verb}: recreate it after apply"
                )
                break
    return warnings
