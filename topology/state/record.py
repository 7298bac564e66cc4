"""The ownership record: what one spec owns on one vhost, as the broker keeps it.

Pure encode/decode and decisions; `topology.state.store` reads and writes records. A record
holds the spec's `Scope` (organization, services, store queues), from which every owned
object name is rebuilt, so a service or store removed from the spec stays in scope until
apply deletes its objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from topology.compile.objects import Topology
from topology.plan.scope import Scope
from topology.spec.model import Spec

RECORD_KIND = "rabbitform-ownership"
RECORD_FORMAT = 1
PARAMETER_PREFIX = "rabbitform-owner:"
DEFAULT_LAYOUT = "rabbitform"


@dataclass(frozen=True)
class OwnershipRecord:
    """One spec's claim on a vhost. `owner` is the spec's `name:`, else its organization."""

    vhost: str
    owner: str
    scope: Scope
    layout: str = DEFAULT_LAYOUT
    updated_at: str = ""  # ISO 8601 UTC, for humans
    updated_by: str = ""  # "apply on host h, pid p", for humans
    created_users: tuple[str, ...] = ()  # `access:` users rabbitform created (deleted when dropped)

    @property
    def parameter_name(self) -> str:
        return parameter_name(self.vhost, self.owner)

    @property
    def organization(self) -> str:
        return self.scope.organization

    def to_value(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "format_version": RECORD_FORMAT,
            "vhost": self.vhost,
            "owner": self.owner,
            "layout": self.layout,
            "scope": self.scope.to_dict(),
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            **({"created_users": list(self.created_users)} if self.created_users else {}),
        }

    @classmethod
    def from_value(cls, value: Any) -> OwnershipRecord | None:
        """The record in a parameter's value; None when the value is not one of ours."""
        if not isinstance(value, dict) or value.get("kind") != RECORD_KIND:
            return None
        if value.get("format_version") != RECORD_FORMAT:
            raise ValueError(
                f"ownership record format_version {value.get('format_version')!r} is not {RECORD_FORMAT}: "
                "a newer rabbitform wrote it; upgrade rabbitform"
            )
        return cls(
            vhost=str(value["vhost"]),
            owner=str(value["owner"]),
            scope=Scope.from_dict(value["scope"]),
            layout=str(value.get("layout") or DEFAULT_LAYOUT),
            updated_at=str(value.get("updated_at", "")),
            updated_by=str(value.get("updated_by", "")),
            created_users=tuple(sorted(str(user) for user in value.get("created_users") or ())),
        )

    def describe(self) -> str:
        when = f", recorded {self.updated_at}" if self.updated_at else ""
        by = f" by {self.updated_by}" if self.updated_by else ""
        return f"spec {self.owner!r} (organization {self.organization}{when}{by})"


def parameter_name(vhost: str, owner: str) -> str:
    """One global parameter per (vhost, owner): owners never overwrite each other's record."""
    return f"{PARAMETER_PREFIX}{owner}@{vhost}"


def union(first: Scope, second: Scope) -> Scope:
    """Both scopes' services, store queues and store exchanges (one organization)."""
    return replace(
        first,
        services=tuple(sorted(set(first.services) | set(second.services))),
        store_queues=tuple(sorted(set(first.store_queues) | set(second.store_queues))),
        store_exchanges=tuple(sorted(set(first.store_exchanges) | set(second.store_exchanges))),
        users=tuple(sorted(set(first.users) | set(second.users))),
    )


@dataclass(frozen=True)
class Ownership:
    """A spec's view of a vhost's records: its own (if any) and everyone else's."""

    owner: str
    scope: Scope  # what the spec declares now
    recorded: OwnershipRecord | None
    others: tuple[OwnershipRecord, ...]

    @classmethod
    def of(cls, owner: str, scope: Scope, records: Iterable[OwnershipRecord]) -> Ownership:
        records = tuple(records)
        mine = next((r for r in records if r.owner == owner), None)
        return cls(owner, scope, mine, tuple(r for r in records if r.owner != owner))

    @property
    def planning_scope(self) -> Scope:
        """What the plan may touch: what the spec declares plus what it recorded before."""
        if self.recorded is None or self.recorded.organization != self.scope.organization:
            return self.scope
        return union(self.scope, self.recorded.scope)

    def problems(self, desired: Topology, actual: Topology | None) -> list[str]:
        """Why applying would break ownership: an organization change, or objects another spec owns."""
        problems: list[str] = []
        if self.recorded is not None and self.recorded.organization != self.scope.organization:
            problems.append(
                f"spec {self.owner!r} on vhost {self.recorded.vhost!r} is recorded for organization "
                f"{self.recorded.organization}, not {self.scope.organization}: destroy it with its old spec first, "
                "or give this spec another `name:`"
            )
        for other in self.others:
            shared = scopes_overlap(self.planning_scope, other.scope) or shared_objects(
                desired, actual, self.planning_scope, other.scope
            )
            if shared:
                shown = ", ".join(shared[:3]) + (f" and {len(shared) - 3} more" if len(shared) > 3 else "")
                problems.append(
                    f"{shown} {'is' if len(shared) == 1 else 'are'} already owned by {other.describe()}: "
                    "two specs cannot own the same object; "
                    "drop the overlap from one of the specs (or `rabbitform destroy` the other spec first)"
                )
        return problems

    def record(self, scope: Scope, vhost: str, layout: str, updated_at: str, updated_by: str) -> OwnershipRecord:
        return OwnershipRecord(vhost, self.owner, scope, layout, updated_at, updated_by)


def shared_objects(desired: Topology, actual: Topology | None, mine: Scope, other: Scope) -> list[str]:
    """Exchanges and queues both scopes would own: among the spec's objects and what the vhost holds."""
    names = {f"exchange {e.name}" for e in desired.exchanges if other.owns_exchange(e.name)}
    names |= {f"queue {q.name}" for q in desired.queues if other.owns_queue(q.name)}
    if actual is not None:
        names |= {
            f"exchange {e.name}" for e in actual.exchanges if mine.owns_exchange(e.name) and other.owns_exchange(e.name)
        }
        names |= {f"queue {q.name}" for q in actual.queues if mine.owns_queue(q.name) and other.owns_queue(q.name)}
    return sorted(names)


def ownership_of(spec: Spec, records: Iterable[OwnershipRecord]) -> Ownership:
    return Ownership.of(spec.owner, Scope.of_spec(spec), records)


def layout_of(spec: Spec) -> str:
    """The spec's layout (`layout:`), kept in the record for `import` and for humans."""
    return str(spec.layout or DEFAULT_LAYOUT)


def scopes_overlap(first: Scope, second: Scope) -> list[str]:
    """Services, store queues and store exchanges two scopes both claim, by name."""
    shared = []
    if first.organization == second.organization:
        shared += [f"service {s}" for s in sorted(set(first.services) & set(second.services))]
    shared += [f"store queue {q}" for q in sorted(set(first.store_queues) & set(second.store_queues))]
    shared += [f"store exchange {e}" for e in sorted(set(first.store_exchanges) & set(second.store_exchanges))]
    shared += [f"user {u}" for u in sorted(set(first.users) & set(second.users))]
    return shared
