"""Apply and destroy with ownership: record what the spec owns around the changes.

The order makes an interruption safe: apply records the union of what the spec declares and
what it recorded before (its plan's scope) before changing anything, so an apply killed
halfway still owns what it created and what it meant to delete; once the broker converged it
records the spec alone. Destroy deletes the objects first and the record last.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from topology.apply.live import ApplyResult, apply_plan, converge
from topology.apply.move import MoveProgress
from topology.broker.management import ManagementClient
from topology.errors import RabbitformError
from topology.plan.model import Plan
from topology.plan.scope import Scope
from topology.progress import NO_PROGRESS, Progress
from topology.spec.model import Spec
from topology.state.lock import utc_now
from topology.state.record import DEFAULT_LAYOUT, OwnershipRecord, layout_of, scopes_overlap
from topology.state.store import delete_record, read_records, write_record


def new_record(
    vhost: str, owner: str, scope: Scope, layout: str, command: str, created_users: frozenset[str] = frozenset()
) -> OwnershipRecord:
    return OwnershipRecord(
        vhost,
        owner,
        scope,
        layout,
        utc_now(),
        f"{command} on host {socket.gethostname()}, pid {os.getpid()}",
        tuple(sorted(created_users & set(scope.users))),
    )


def created_users(records: Sequence[OwnershipRecord], owner: str, plan: Plan) -> tuple[frozenset[str], frozenset[str]]:
    """The users rabbitform created for this spec: (recorded before plus those the plan creates,
    the same without those it deletes): the first is recorded before applying, the second after.
    Pure: `records` are the vhost's records as read before applying."""
    previous = next((r for r in records if r.owner == owner), None)
    before = set(previous.created_users) if previous is not None else set()
    created = {c.name for c in plan.changes if c.kind == "user" and c.action == "create"}
    deleted = {c.name for c in plan.changes if c.kind == "user" and c.action == "delete"}
    return frozenset(before | created), frozenset((before | created) - deleted)


def claim(client: ManagementClient, record: OwnershipRecord, records: Sequence[OwnershipRecord]) -> None:
    """Write the record, then check no other spec claimed the same services or store meanwhile.

    Plans refuse objects another record owns; this second look catches two specs applied at
    the same moment (their locks differ). On a clash the record is put back as it was in
    `records` (the vhost's records, read just before).
    """
    before = {r.owner: r for r in records}
    write_record(client, record)
    for other in read_records(client, record.vhost):
        shared = scopes_overlap(record.scope, other.scope) if other.owner != record.owner else []
        if shared:
            previous = before.get(record.owner)
            if previous is not None:
                write_record(client, previous)
            else:
                delete_record(client, record.vhost, record.owner)
            raise RabbitformError(
                f"{', '.join(shared)} {'is' if len(shared) == 1 else 'are'} already owned by {other.describe()}: "
                "two specs cannot own the same object; "
                "nothing was changed"
            )


def apply_owned(
    spec: Spec,
    client: ManagementClient,
    plan: Plan,
    *,
    progress: Progress = NO_PROGRESS,
    amqp_url: str | None = None,
    move_progress: MoveProgress | None = None,
) -> ApplyResult:
    """`rabbitform apply SPEC`: record, converge, record again without what the spec dropped."""
    layout = layout_of(spec)
    records = read_records(client, spec.vhost)
    during, after = created_users(records, spec.owner, plan)
    scope = plan.scope or Scope.of_spec(spec)
    claim(client, new_record(spec.vhost, spec.owner, scope, layout, "apply", during), records)
    result = converge(spec, client, plan, progress=progress, amqp_url=amqp_url, move_progress=move_progress)
    write_record(client, new_record(spec.vhost, spec.owner, Scope.of_spec(spec), layout, "apply", after))
    return result


def apply_saved_owned(
    plan: Plan,
    client: ManagementClient,
    *,
    progress: Progress = NO_PROGRESS,
    amqp_url: str | None = None,
    move_progress: MoveProgress | None = None,
) -> ApplyResult:
    """`rabbitform apply PLAN.json`: record the plan's scope (what it may touch), then apply it.

    The next `apply SPEC` narrows the record to the spec; until then it still names what the
    plan deleted, which is harmless: those objects are gone.
    """
    if plan.owner is not None and plan.scope is not None:
        records = read_records(client, plan.vhost)
        previous = {r.owner: r for r in records}.get(plan.owner)
        layout = previous.layout if previous else DEFAULT_LAYOUT
        during, _after = created_users(records, plan.owner, plan)
        claim(client, new_record(plan.vhost, plan.owner, plan.scope, layout, "apply", during), records)
    return apply_plan(plan, client, progress=progress, amqp_url=amqp_url, move_progress=move_progress)


def destroy_owned(
    spec: Spec, client: ManagementClient, plan: Plan, *, progress: Progress = NO_PROGRESS, amqp_url: str | None = None
) -> ApplyResult:
    """`rabbitform destroy SPEC`: delete the objects (checked), then the record. The emptiness
    reads go to `amqp_url`, the endpoint the lock was taken (and verified) through."""
    result = apply_plan(plan, client, progress=progress, amqp_url=amqp_url)
    delete_record(client, spec.vhost, spec.owner)
    return result
