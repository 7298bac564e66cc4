"""Carry out a plan on the broker.

`schedule` (pure) turns a plan into ordered steps: vhost, then deletions in reverse order
(bindings, queues, exchanges), then creations (exchanges, queues, bindings) in bulk through
`POST /api/definitions/{vhost}`. A replace is its deletion plus its creation, and the
bindings of a replaced queue are recreated with it. Policies are set (`PUT`, which creates
or updates in place) before anything else and deleted last; queues replaced with their
messages moved (`--move-messages`) are left to `topology.apply.move` after the creations.
Users, their permissions and topic permissions are set after the topology exists, so a
service's credentials work once what they grant is there.
`execute` runs the steps: deleting something already gone counts as done, so an interrupted
apply is finished by running again. Deletions have no bulk endpoint: they run a few at a
time (`IN_FLIGHT`), each phase reporting its progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from topology.apply.emptiness import QueueDepths, not_empty_error, still_held
from topology.broker.concurrency import IN_FLIGHT, run_bounded
from topology.broker.management import ManagementClient, RequestRejected
from topology.broker.snapshot import default_queue_type, read_vhost
from topology.compile.definitions import CLASSIC, binding_from_definition
from topology.compile.objects import Binding, freeze_arguments
from topology.errors import RabbitformError
from topology.plan.model import UPDATABLE_KINDS, Change, Plan
from topology.progress import NO_PROGRESS, Progress

Mover = Callable[[Change, list[Binding]], None]
"""Replaces one queue, moving its messages (see `topology.apply.move`)."""

# Objects per definitions import. Every import has a fixed cost on the broker (three imports of
# 2,110 objects took 0.3 s longer than one on a quiet machine), so a spec of a few hundred
# subscribers goes in one; larger ones in documents that stay inside the broker's 60 s HTTP
# idle timeout when it is busy (4,217 objects took 60 s on a loaded broker: 2,500 about 36 s),
# progress advancing with each.
CHUNK_SIZE = 2500
SECTIONS = ("exchanges", "queues", "bindings")


@dataclass(frozen=True)
class Schedule:
    """What `execute` does, in order."""

    vhost: str
    create_vhost: bool = False
    delete_bindings: tuple[Binding, ...] = ()
    delete_queues: tuple[str, ...] = ()
    delete_exchanges: tuple[str, ...] = ()
    create: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    put_policies: tuple[dict[str, Any], ...] = ()
    delete_policies: tuple[str, ...] = ()
    moves: tuple[tuple[Change, tuple[Binding, ...]], ...] = ()
    put_users: tuple[dict[str, Any], ...] = ()
    put_permissions: tuple[dict[str, Any], ...] = ()
    put_topic_permissions: tuple[dict[str, Any], ...] = ()
    clear_topic_permissions: tuple[str, ...] = ()
    delete_permissions: tuple[str, ...] = ()
    delete_users: tuple[str, ...] = ()

    @property
    def steps(self) -> int:
        return (
            int(self.create_vhost)
            + len(self.put_policies)
            + len(self.delete_policies)
            + len(self.moves)
            + len(self.put_users)
            + len(self.put_permissions)
            + len(self.put_topic_permissions)
            + len(self.clear_topic_permissions)
            + len(self.delete_permissions)
            + len(self.delete_users)
            + len(self.delete_bindings)
            + len(self.delete_queues)
            + len(self.delete_exchanges)
            + sum(len(items) for items in self.create.values())
        )


@dataclass(frozen=True)
class ApplyResult:
    added: int = 0
    replaced: int = 0
    destroyed: int = 0
    seconds: float = 0.0
    updated: int = 0

    @property
    def duration(self) -> str:
        """The seconds as the summaries print them: hundredths only under a second."""
        return f"{self.seconds:.1f}" if self.seconds >= 1 else f"{self.seconds:.2f}"

    @property
    def summary_line(self) -> str:
        updated = f"{self.updated} updated, " if self.updated else ""
        return (
            f"Apply complete: {self.added} added, {updated}{self.replaced} replaced, {self.destroyed} destroyed "
            f"in {self.duration} s"
        )


class ApplyError(RabbitformError):
    """A step of the apply failed; what was done so far stays done (rerun to finish)."""


def schedule(plan: Plan) -> Schedule:
    """Order a plan's changes into steps (pure)."""
    moved = {c.name for c in plan.changes if c.kind == "queue" and c.move}
    moved_bindings: dict[str, list[Binding]] = {name: [] for name in moved}
    for change in plan.changes:
        if change.kind == "binding" and change.after and change.action in ("create", "replace"):
            binding = binding_from_definition(change.after)
            if binding.destination_type == "queue" and binding.destination in moved:
                moved_bindings[binding.destination].append(binding)

    def handled_by_move(change: Change) -> bool:
        if change.kind == "queue":
            return change.name in moved
        if change.kind == "binding" and change.action != "delete":
            definition = change.after or {}
            return definition.get("destination_type", "queue") == "queue" and definition.get("destination") in moved
        return False

    plain = [c for c in plan.changes if c.kind not in UPDATABLE_KINDS and not handled_by_move(c)]
    removed = [c for c in plain if c.action in ("delete", "replace")]
    added = [c for c in plain if c.action in ("create", "replace")]
    gone_queues = {c.name for c in removed if c.kind == "queue"}
    gone_exchanges = {c.name for c in removed if c.kind == "exchange"}

    def vanishes_with_an_end(binding: Binding) -> bool:
        """Deleting a queue or exchange deletes its bindings: no call needed for those."""
        if binding.source in gone_exchanges:
            return True
        ends = gone_queues if binding.destination_type == "queue" else gone_exchanges
        return binding.destination in ends

    delete_bindings = [
        b
        for b in (binding_from_definition(c.before) for c in removed if c.kind == "binding" and c.before)
        if not vanishes_with_an_end(b)
    ]
    create: dict[str, list[dict[str, Any]]] = {section: [] for section in SECTIONS}
    for change in added:
        if change.kind != "vhost" and change.after is not None:
            create[change.kind + "s"].append(dict(change.after))
    return Schedule(
        vhost=plan.vhost,
        create_vhost=any(c.kind == "vhost" and c.action == "create" for c in plan.changes),
        delete_bindings=tuple(delete_bindings),
        delete_queues=tuple(c.name for c in removed if c.kind == "queue"),
        delete_exchanges=tuple(c.name for c in removed if c.kind == "exchange"),
        create=create,
        put_policies=tuple(
            dict(c.after) for c in plan.changes if c.kind == "policy" and c.action != "delete" and c.after
        ),
        delete_policies=tuple(c.name for c in plan.changes if c.kind == "policy" and c.action == "delete"),
        moves=tuple((c, tuple(moved_bindings[c.name])) for c in plan.changes if c.kind == "queue" and c.name in moved),
        put_users=_put("user", plan),
        put_permissions=_put("permission", plan),
        put_topic_permissions=_put("topic_permission", plan),
        # topic permissions are cleared per user: an update clears, then sets each exchange again
        clear_topic_permissions=tuple(
            c.name for c in plan.changes if c.kind == "topic_permission" and c.action in ("update", "delete")
        ),
        delete_permissions=tuple(c.name for c in plan.changes if c.kind == "permission" and c.action == "delete"),
        delete_users=tuple(c.name for c in plan.changes if c.kind == "user" and c.action == "delete"),
    )


def _put(kind: str, plan: Plan) -> tuple[dict[str, Any], ...]:
    return tuple(dict(c.after) for c in plan.changes if c.kind == kind and c.action != "delete" and c.after)


def execute(
    plan: Plan,
    client: ManagementClient,
    *,
    progress: Progress = NO_PROGRESS,
    chunk_size: int = CHUNK_SIZE,
    in_flight: int = IN_FLIGHT,
    mover: Mover | None = None,
    depths: QueueDepths | None = None,
) -> ApplyResult:
    """Run the plan's steps against the broker. Does not verify: see `live.apply_plan`.

    With `depths` (an AMQP connection), the queues the plan deletes without --allow-data-loss
    are read again before the first change, and a queue that holds messages by now (ready, or
    unacknowledged by a consumer) stops the apply before it starts (topology.apply.emptiness)."""
    started = time.monotonic()
    steps = schedule(plan)
    if steps.moves and mover is None:
        raise ApplyError("this plan moves messages between queues, which needs an AMQP connection to the broker")
    vhost = plan.vhost
    if_empty = not plan.allow_data_loss
    if if_empty and steps.delete_queues and depths is not None:
        found = still_held(client, vhost, depths, steps.delete_queues)
        if found:
            raise ApplyError(str(not_empty_error(vhost, found, started=False)))
    queue_type = CLASSIC
    if steps.create_vhost:
        create_vhost(client, vhost)
    else:
        queue_type = default_queue_type(read_vhost(client, vhost))
    unconditional = {
        c.name
        for c in plan.changes
        if c.kind == "queue" and c.action in ("delete", "replace") and _queue_type(c.before, queue_type) != CLASSIC
    }
    # policies first: queues created below get their settings at once
    run_phase("Setting policies", steps.put_policies, lambda p: put_policy(client, vhost, p), progress, 1)
    run_phase(
        "Deleting bindings", steps.delete_bindings, lambda b: delete_binding(client, vhost, b), progress, in_flight
    )
    run_phase(
        "Deleting queues",
        steps.delete_queues,
        lambda name: delete_queue(
            client, vhost, name, if_empty=if_empty, depths=depths if name in unconditional else None
        ),
        progress,
        in_flight,
    )
    run_phase(
        "Deleting exchanges",
        steps.delete_exchanges,
        lambda n: client.delete("exchanges", vhost, n),
        progress,
        in_flight,
    )
    creating = sum(len(items) for items in steps.create.values())
    if creating:
        progress.phase("Creating objects", creating)
        done = 0
        for chunk in chunks(steps.create, chunk_size, queue_type):
            try:
                client.post("definitions", vhost, body=chunk)
            except RequestRejected as exc:
                raise ApplyError(
                    f"the broker refused to create objects on vhost {vhost!r}: {exc.reason}; "
                    "nothing else was changed after this step: fix the cause and run apply again"
                ) from None
            done += sum(len(items) for items in chunk.values())
            progress.advance(done)
        progress.finish(f"created {creating}")
    assert mover is not None or not steps.moves
    run_phase("Moving messages", steps.moves, lambda move: mover(move[0], list(move[1])), progress, 1)  # type: ignore[misc]
    # credentials once what they grant exists
    run_phase("Setting users", steps.put_users, lambda u: put_user(client, u), progress, 1)
    run_phase("Setting permissions", steps.put_permissions, lambda p: put_permission(client, vhost, p), progress, 1)
    run_phase(
        "Clearing topic permissions",
        steps.clear_topic_permissions,
        lambda n: client.delete("topic-permissions", vhost, n),
        progress,
        1,
    )
    run_phase(
        "Setting topic permissions",
        steps.put_topic_permissions,
        lambda t: put_topic_permissions(client, vhost, t),
        progress,
        1,
    )
    run_phase(
        "Revoking permissions",
        steps.delete_permissions,
        lambda n: client.delete("permissions", vhost, n),
        progress,
        1,
    )
    run_phase("Deleting users", steps.delete_users, lambda n: client.delete("users", n), progress, 1)
    # policies last: the queues they governed are gone or re-set by now
    run_phase("Deleting policies", steps.delete_policies, lambda n: client.delete("policies", vhost, n), progress, 1)
    summary = plan.summary
    return ApplyResult(summary.add, summary.replace, summary.destroy, time.monotonic() - started, summary.update)


def run_phase(
    name: str, items: Sequence[Any], action: Callable[[Any], object], progress: Progress, in_flight: int
) -> None:
    """`action` on every item, `in_flight` at a time, as one reported phase."""
    if not items:
        return
    progress.phase(name, len(items))
    run_bounded(items, action, in_flight=in_flight, on_done=progress.advance)
    progress.finish(f"{len(items)} done")


def chunks(
    create: dict[str, list[dict[str, Any]]], size: int, queue_type: str = CLASSIC
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Definitions documents of at most `size` objects, exchanges before queues before bindings.

    A queue without `x-queue-type` takes the vhost's default type: when that default is not
    classic, classic queues say so explicitly.
    """
    chunk: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for section in SECTIONS:
        for item in create.get(section, []):
            if section == "queues":
                item = wire_queue(item, queue_type)
            chunk.setdefault(section, []).append(item)
            count += 1
            if count >= size:
                yield chunk
                chunk, count = {}, 0
    if chunk:
        yield chunk


def wire_queue(item: dict[str, Any], vhost_default_type: str) -> dict[str, Any]:
    arguments = dict(item.get("arguments") or {})
    if vhost_default_type != CLASSIC and "x-queue-type" not in arguments:
        arguments["x-queue-type"] = CLASSIC
    return {**item, "durable": item.get("durable", True), "arguments": arguments}


def put_policy(client: ManagementClient, vhost: str, policy: dict[str, Any]) -> None:
    """Create or update a policy in place (`PUT /api/policies/{vhost}/{name}`)."""
    body = {key: value for key, value in policy.items() if key not in ("name", "vhost")}
    _put_or_refused(client, f"policy {policy['name']} on vhost {vhost!r}", "policies", vhost, policy["name"], body=body)


def put_user(client: ManagementClient, user: dict[str, Any]) -> None:
    """Create or update a user from its salted hash (the password never travels), no tags."""
    body = {
        "password_hash": user["password_hash"],
        "hashing_algorithm": user["hashing_algorithm"],
        "tags": user.get("tags", ""),
    }
    # the refusal's reason never holds the hash: RabbitMQ does not echo it
    _put_or_refused(client, f"user {user['name']}", "users", user["name"], body=body)


def put_permission(client: ManagementClient, vhost: str, permission: dict[str, Any]) -> None:
    body = {key: permission[key] for key in ("configure", "write", "read")}
    what = f"permissions of {permission['user']} on vhost {vhost!r}"
    _put_or_refused(client, what, "permissions", vhost, permission["user"], body=body)


def put_topic_permissions(client: ManagementClient, vhost: str, topics: dict[str, Any]) -> None:
    for item in topics.get("exchanges", []):
        body = {key: item[key] for key in ("exchange", "write", "read")}
        what = f"topic permissions of {topics['user']} on {item['exchange']} in vhost {vhost!r}"
        _put_or_refused(client, what, "topic-permissions", vhost, topics["user"], body=body)


def _put_or_refused(client: ManagementClient, what: str, *segments: str, body: dict[str, Any]) -> None:
    """PUT; a refusal is one line naming `what` the broker refused, and why."""
    try:
        client.put(*segments, body=body)
    except RequestRejected as exc:
        raise ApplyError(f"the broker refused {what}: {exc.reason}") from None


def create_vhost(client: ManagementClient, vhost: str) -> None:
    """Create the vhost and give the connecting user full permissions on it."""
    client.put("vhosts", vhost)
    client.put("permissions", vhost, client.user, body={"configure": ".*", "write": ".*", "read": ".*"})


def _queue_type(definition: dict[str, Any] | None, vhost_default: str) -> str:
    arguments = (definition or {}).get("arguments") or {}
    return str(arguments.get("x-queue-type") or vhost_default)


def delete_queue(
    client: ManagementClient, vhost: str, name: str, *, if_empty: bool, depths: QueueDepths | None = None
) -> None:
    """Delete a queue; with `if_empty`, only when empty. A quorum queue (given `depths`) is read
    over AMQP just before an unconditional delete: RabbitMQ 3.x refuses `if-empty` for it."""
    if if_empty and depths is not None:
        found = still_held(client, vhost, depths, [name])
        if found:
            raise ApplyError(str(not_empty_error(vhost, found, started=True)))
        client.delete("queues", vhost, name)
        return
    params = {"if-empty": "true"} if if_empty else None
    try:
        client.delete("queues", vhost, name, params=params)
    except RequestRejected as exc:
        if exc.status == 400 and if_empty:
            raise ApplyError(
                f"queue {name} on vhost {vhost!r} is not empty ({exc.reason}): refusing to delete it and lose its "
                "messages; drain it, or plan again with --allow-data-loss"
            ) from None
        raise


def delete_binding(client: ManagementClient, vhost: str, binding: Binding) -> None:
    """Bindings have no name: find this one's `properties_key` among the bindings of its pair."""
    kind = "q" if binding.destination_type == "queue" else "e"
    listed = client.get("bindings", vhost, "e", binding.source, kind, binding.destination, missing_ok=True) or []
    wanted = freeze_arguments(binding.arguments)
    for item in listed:
        if item.get("routing_key") == binding.routing_key and freeze_arguments(item.get("arguments")) == wanted:
            client.delete("bindings", vhost, "e", binding.source, kind, binding.destination, item["properties_key"])


def describe(changes: list[Change], limit: int = 5) -> str:
    """A short list of changes for error messages."""
    shown = ", ".join(f"{c.action} {c.kind} {c.name}" for c in changes[:limit])
    more = len(changes) - limit
    return shown + (f" and {more} more" if more > 0 else "")
