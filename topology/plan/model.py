"""A plan: the list of changes that would make the broker match the spec.

Plain data. Its JSON form (`format_version` 1, docs/plan-format.md) is written and read by one
typed model, `topology.plan.saved`; a plan saved with `plan --out` is applied exactly as shown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from topology.compile.objects import ObjectKind
from topology.plan.scope import Scope

FORMAT_VERSION = 1
Action = Literal["create", "update", "delete", "replace"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete", "replace")
KINDS: tuple[ObjectKind, ...] = (
    "vhost",
    "policy",
    "exchange",
    "queue",
    "binding",
    "user",
    "permission",
    "topic_permission",
)
ACCESS_KINDS: tuple[ObjectKind, ...] = ("user", "permission", "topic_permission")
UPDATABLE_KINDS: tuple[ObjectKind, ...] = ("policy", *ACCESS_KINDS)
SECRET_KEYS = ("password_hash", "hashing_algorithm")


@dataclass(frozen=True)
class Change:
    """One object to create, update in place (policies, users, permissions), delete or replace.

    `before` / `after` are the object as definitions JSON (without `vhost`); `reason` says
    why (for a replace or an update: the properties that differ, with old and new value).
    `move` marks a queue replace that moves the queue's messages (`--move-messages`);
    `moving` says a move interrupted earlier is still in progress (its holding queue exists).
    """

    action: Action
    kind: ObjectKind
    name: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None
    messages: int | None = None
    consumers: int | None = None
    move: bool = False
    moving: bool = False

    @property
    def password_shown(self) -> str | None:
        """What a display says of this change's password: `(set)`, `(changed)` or nothing."""
        if self.kind != "user" or self.after is None:
            return None
        if self.action == "create":
            return "(set)"
        return "(changed)" if self.reason and PASSWORD_CHANGED in self.reason else "(unchanged)"


@dataclass(frozen=True)
class Summary:
    add: int = 0
    update: int = 0
    replace: int = 0
    destroy: int = 0
    unchanged: int = 0

    @property
    def changes(self) -> int:
        return self.add + self.update + self.replace + self.destroy


@dataclass(frozen=True)
class Plan:
    vhost: str
    changes: tuple[Change, ...]
    scope: Scope | None = None
    unchanged: int = 0
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    fingerprint: str | None = None
    allow_data_loss: bool = False
    move_messages: bool = False
    source: str | None = None  # the spec file, for humans
    management_url: str | None = None  # never with credentials
    owner: str | None = None  # the spec's owner name: what apply PLAN.json locks and records

    @property
    def summary(self) -> Summary:
        count = {action: sum(1 for c in self.changes if c.action == action) for action in ACTIONS}
        return Summary(
            add=count["create"],
            update=count["update"],
            replace=count["replace"],
            destroy=count["delete"],
            unchanged=self.unchanged,
        )

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def creates_only(self) -> Plan:
        """The additive part of the plan: creations only, never a delete or a replace.

        For callers that must not remove anything (a service starting up): the safety rules
        only concern queues that are deleted or replaced, so none of their findings remain.
        """
        return replace(
            self,
            changes=tuple(c for c in self.changes if c.action == "create"),
            warnings=(),
            errors=(),
        )


PASSWORD_CHANGED = "password changed"


def fingerprint(state: Any) -> str:
    """A digest of plain, JSON-able broker state; equal state gives an equal digest."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


_ORDER: dict[str, int] = {kind: index for index, kind in enumerate(KINDS)}


def change_sort_key(change: Change) -> tuple[int, str, str]:
    return (_ORDER[change.kind], change.name, change.action)
