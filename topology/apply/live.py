"""Plan and apply against a live broker: the library API behind `rabbitform plan` / `apply`.

The runtime calls these too (`plan_live(...).creates_only()` then `apply_plan`), so the
names and signatures are stable.
"""

from __future__ import annotations

from dataclasses import replace

from topology.apply.emptiness import QueueDepths
from topology.apply.executor import ApplyError, ApplyResult, describe, execute
from topology.apply.move import MoveProgress, QueueMover, amqp_parameters
from topology.apply.verify import unconverged
from topology.broker.access_snapshot import read_access, with_access
from topology.broker.management import ManagementClient
from topology.broker.snapshot import Snapshot, default_queue_type, read_queue_stats, read_snapshot, read_vhost
from topology.compile import access
from topology.compile.compiler import compile_spec
from topology.compile.objects import Topology, User
from topology.compile.passwords import fresh_salt
from topology.errors import RabbitformError
from topology.plan.access_safety import access_problems
from topology.plan.destroy import declared_only, recorded_only
from topology.plan.diff import at_risk_queues, compute_plan, state_fingerprint
from topology.plan.model import Plan
from topology.plan.scope import Scope
from topology.progress import NO_PROGRESS, Progress
from topology.spec.model import Spec
from topology.state.record import OwnershipRecord, ownership_of

__all__ = [
    "ApplyResult",
    "NotConvergedError",
    "StalePlanError",
    "apply_plan",
    "apply_saved_plan",
    "check_fresh",
    "converge",
    "plan_destroy",
    "plan_live",
]


class StalePlanError(RabbitformError):
    """The broker changed since the saved plan was made."""


class NotConvergedError(ApplyError):
    """The broker does not show what was applied."""


def plan_live(
    spec: Spec,
    client: ManagementClient,
    *,
    allow_data_loss: bool = False,
    move_messages: bool = False,
    progress: Progress = NO_PROGRESS,
) -> Plan:
    """The plan that converges the broker's vhost to the spec.

    One definitions read and one read of the ownership records; queue counters only for the
    queues the plan would delete or replace (a plan with nothing at risk reads no counters).
    Objects the spec recorded before but no longer declares are planned for deletion.
    """
    desired = access.with_access(compile_spec(spec), spec, fresh_salt)
    return _plan_owned(spec, client, desired, allow_data_loss, move_messages=move_messages, progress=progress)


def plan_destroy(spec: Spec, client: ManagementClient, *, allow_data_loss: bool = False) -> Plan:
    """The plan that deletes everything the spec owns, declared now or recorded before; the vhost stays."""
    return _plan_owned(spec, client, Topology(vhost=spec.vhost), allow_data_loss, destroy=True)


def _plan_owned(
    spec: Spec,
    client: ManagementClient,
    desired: Topology,
    allow_data_loss: bool,
    *,
    move_messages: bool = False,
    destroy: bool = False,
    progress: Progress = NO_PROGRESS,
) -> Plan:
    snapshot = read_snapshot(client, spec.vhost, progress=progress)
    ownership = ownership_of(spec, snapshot.records)
    scope = ownership.planning_scope
    created = ownership.recorded.created_users if ownership.recorded is not None else ()
    users: tuple[User, ...] = ()
    if scope.users:  # the users in scope with their permissions, as read_state reads them
        snapshot = replace(snapshot, topology=with_access(snapshot.topology, client, scope.users, created))
        if snapshot.topology is None:  # users are cluster-wide: they may exist before the vhost
            users = tuple(read_access(client, spec.vhost, scope.users, created)[0])
    progress.phase("Planning", 0)
    if destroy and not snapshot.exists:
        plan = Plan(vhost=spec.vhost, changes=(), scope=scope, fingerprint=state_fingerprint(None, scope, {}, []))
    else:
        plan = compute_plan(
            desired, snapshot.topology, scope, allow_data_loss=allow_data_loss, move_messages=move_messages, users=users
        )
    if destroy:
        plan = _declared_only(plan, spec, ownership.recorded)
    at_risk = at_risk_queues(list(plan.changes))
    if at_risk:
        stats = read_queue_stats(client, spec.vhost, at_risk)
        plan = compute_plan(desired, snapshot.topology, scope, stats, allow_data_loss, move_messages, users)
        if destroy:
            plan = _declared_only(plan, spec, ownership.recorded)
    progress.finish(f"{len(plan.changes)} changes")
    problems = tuple(ownership.problems(desired, snapshot.topology))
    known = snapshot.topology or Topology(vhost=spec.vhost, users=users)
    problems += tuple(access_problems(desired, known, client.user))
    return replace(plan, errors=plan.errors + problems, management_url=client.display_url, owner=spec.owner)


def _declared_only(plan: Plan, spec: Spec, recorded: OwnershipRecord | None) -> Plan:
    """A destroy plan narrowed to what the spec declares or its record lists (topology.plan.destroy)."""
    dropped = recorded_only(Scope.of_spec(spec), recorded.scope if recorded is not None else None)
    kept, left = declared_only(plan.changes, compile_spec(spec), dropped)
    if len(kept) == len(plan.changes):
        return plan
    narrowed = replace(plan, changes=tuple(kept), warnings=plan.warnings + tuple(left))
    # the safety rules judged every change; keep only the errors about what is still deleted
    names = {c.name for c in kept}
    errors = tuple(e for e in plan.errors if not e.startswith("queue ") or e.split(" ", 2)[1] in names)
    return replace(narrowed, errors=errors)


def read_state(client: ManagementClient, vhost: str, scope: Scope | None, progress: Progress = NO_PROGRESS) -> Snapshot:
    """The vhost's objects, plus the users in scope with their permissions (when there are any)."""
    snapshot = read_snapshot(client, vhost, progress=progress)
    if scope is None or not scope.users:
        return snapshot
    return replace(snapshot, topology=with_access(snapshot.topology, client, scope.users))


def live_fingerprint(plan: Plan, client: ManagementClient, snapshot: Snapshot | None = None) -> str:
    """The fingerprint of the broker's current state, computed the way `plan` computed the plan's."""
    if plan.scope is None:
        raise RabbitformError("the saved plan has no scope: it cannot be checked against the broker")
    snapshot = snapshot or read_state(client, plan.vhost, plan.scope)
    at_risk = at_risk_queues(list(plan.changes))
    stats = read_queue_stats(client, plan.vhost, at_risk) if snapshot.exists and at_risk else {}
    return state_fingerprint(snapshot.topology, plan.scope, stats, at_risk)


def check_fresh(plan: Plan, client: ManagementClient, source: str = "the saved plan") -> None:
    """Refuse a plan made from a broker state that no longer holds."""
    if not plan.fingerprint:
        raise StalePlanError(f"{source} has no fingerprint: it cannot be checked against the broker; plan again")
    if live_fingerprint(plan, client) != plan.fingerprint:
        raise StalePlanError(
            f"{source} is stale: the objects it manages on vhost {plan.vhost!r} at {client.display_url} "
            "changed since it was made; run `rabbitform plan --out` again and review the new plan"
        )


def apply_plan(
    plan: Plan,
    client: ManagementClient,
    *,
    progress: Progress = NO_PROGRESS,
    chunk_size: int | None = None,
    verify: bool = True,
    amqp_url: str | None = None,
    move_progress: MoveProgress | None = None,
) -> ApplyResult:
    """Apply exactly `plan`'s changes, then re-read the broker and check each one landed
    (`verify=False` leaves that to the caller, e.g. `converge`, which plans again instead)."""
    if plan.errors:
        raise ApplyError("refusing to apply a plan with errors: " + "; ".join(plan.errors))
    if not plan.changes:
        return ApplyResult()
    mover = None
    depths = None
    moves = any(c.move for c in plan.changes)
    deletes = any(c.kind == "queue" and c.action in ("delete", "replace") and not c.move for c in plan.changes)
    if moves or (deletes and not plan.allow_data_loss):
        params = amqp_parameters(client, plan.vhost, amqp_url)
        depths = QueueDepths(params)
        if moves:
            queue_type = default_queue_type(read_vhost(client, plan.vhost))
            mover = QueueMover(client, params, plan.vhost, queue_type, move_progress)
    try:
        if chunk_size is None:
            result = execute(plan, client, progress=progress, mover=mover, depths=depths)
        else:
            result = execute(plan, client, progress=progress, chunk_size=chunk_size, mover=mover, depths=depths)
    finally:
        if depths is not None:
            depths.close()
    if not verify:
        return result
    snapshot = read_state(client, plan.vhost, plan.scope, progress)
    progress.phase("Verifying", 0)
    missing = unconverged(plan, snapshot.topology)
    progress.finish(f"{len(plan.changes) - len(missing)} of {len(plan.changes)} changes in place")
    if missing:
        raise NotConvergedError(
            f"the apply did not converge on vhost {plan.vhost!r}: {describe(missing)} "
            "still differ from the plan after applying it; check the broker's logs and policies, then run apply again"
        )
    return result


def apply_saved_plan(
    plan: Plan, client: ManagementClient, *, progress: Progress = NO_PROGRESS, amqp_url: str | None = None
) -> ApplyResult:
    """`rabbitform apply PLAN.json`: refuse a stale plan, else apply exactly its changes."""
    check_fresh(plan, client)
    return apply_plan(plan, client, progress=progress, amqp_url=amqp_url)


def converge(
    spec: Spec,
    client: ManagementClient,
    plan: Plan | None = None,
    *,
    allow_data_loss: bool = False,
    move_messages: bool = False,
    progress: Progress = NO_PROGRESS,
    amqp_url: str | None = None,
    move_progress: MoveProgress | None = None,
) -> ApplyResult:
    """Apply `plan` (or a fresh plan of `spec`), then plan again: anything left is an error."""
    plan = plan or plan_live(
        spec, client, allow_data_loss=allow_data_loss, move_messages=move_messages, progress=progress
    )
    result = apply_plan(plan, client, progress=progress, verify=False, amqp_url=amqp_url, move_progress=move_progress)
    left = plan_live(spec, client, allow_data_loss=True, progress=progress)
    if left.changes:
        raise NotConvergedError(
            f"the apply did not converge on vhost {spec.vhost!r}: planning again still shows "
            f"{describe(list(left.changes))}; check for other tools changing these objects, then run apply again"
        )
    return result
