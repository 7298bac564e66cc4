"""A plan: the list of changes that would make the broker match the spec.

Plain data with a stable JSON form (`format_version` 1, documented in docs/plan-format.md).
A plan saved with `plan --out` is applied exactly as it was shown.
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

    def to_dict(self, redacted: bool = False) -> dict[str, Any]:
        """`redacted` (for display) shows a user's password as `(set)` or `(changed)`, never
        the salted hash a saved plan carries for apply."""
        data: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "before": _without_secrets(self.before, None) if redacted else self.before,
            "after": _without_secrets(self.after, self.password_shown) if redacted else self.after,
            "reason": self.reason,
        }
        if self.messages is not None:
            data["messages"] = self.messages
        if self.consumers is not None:
            data["consumers"] = self.consumers
        if self.move:
            data["move"] = True
        if self.moving:
            data["moving"] = True
        return data

    @property
    def password_shown(self) -> str | None:
        """What a display says of this change's password: `(set)`, `(changed)` or nothing."""
        if self.kind != "user" or self.after is None:
            return None
        if self.action == "create":
            return "(set)"
        return "(changed)" if self.reason and PASSWORD_CHANGED in self.reason else "(unchanged)"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        return cls(
            action=data["action"],
            kind=data["kind"],
            name=data["name"],
            before=data.get("before"),
            after=data.get("after"),
            reason=data.get("reason"),
            messages=data.get("messages"),
            consumers=data.get("consumers"),
            move=bool(data.get("move", False)),
            moving=bool(data.get("moving", False)),
        )


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

    def to_dict(self) -> dict[str, int]:
        counts = {
            "add": self.add,
            "replace": self.replace,
            "destroy": self.destroy,
            "unchanged": self.unchanged,
        }
        if self.update:  # only policies and access update in place; plans without one keep their old form
            counts["update"] = self.update
        return counts


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

    def to_dict(self, redacted: bool = False) -> dict[str, Any]:
        """The saved form; `redacted` is the displayed form (no salted password hashes)."""
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "vhost": self.vhost,
            "changes": [c.to_dict(redacted) for c in self.changes],
            "summary": self.summary.to_dict(),
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "allow_data_loss": self.allow_data_loss,
        }
        if self.move_messages:
            data["move_messages"] = True
        if self.scope is not None:
            data["scope"] = self.scope.to_dict()
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        if self.source is not None:
            data["source"] = self.source
        if self.management_url is not None:
            data["management_url"] = self.management_url
        if self.owner is not None:
            data["owner"] = self.owner
        return data

    def to_json(self, redacted: bool = False) -> str:
        return json.dumps(self.to_dict(redacted), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported plan format_version {version!r} (this rabbitform reads {FORMAT_VERSION})")
        return cls(
            vhost=data["vhost"],
            changes=tuple(Change.from_dict(c) for c in data.get("changes", [])),
            scope=Scope.from_dict(data["scope"]) if data.get("scope") else None,
            unchanged=int(data.get("summary", {}).get("unchanged", 0)),
            warnings=tuple(data.get("warnings", ())),
            errors=tuple(data.get("errors", ())),
            fingerprint=data.get("fingerprint"),
            allow_data_loss=bool(data.get("allow_data_loss", False)),
            move_messages=bool(data.get("move_messages", False)),
            source=data.get("source"),
            management_url=data.get("management_url"),
            owner=data.get("owner"),
        )


PASSWORD_CHANGED = "password changed"


def _without_secrets(definition: dict[str, Any] | None, password: str | None) -> dict[str, Any] | None:
    if definition is None:
        return None
    shown = {key: value for key, value in definition.items() if key not in SECRET_KEYS}
    if password is not None:
        shown["password"] = password
    return shown


def fingerprint(state: Any) -> str:
    """A digest of plain, JSON-able broker state; equal state gives an equal digest."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


_ORDER: dict[str, int] = {kind: index for index, kind in enumerate(KINDS)}


def change_sort_key(change: Change) -> tuple[int, str, str]:
    return (_ORDER[change.kind], change.name, change.action)
