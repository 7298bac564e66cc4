"""Read a vhost's state from the management API: the shell around `definitions.from_definitions`.

Two read paths give the same snapshot (the same normalised `Topology`):

- `listings`: `GET /api/queues/{vh}` and `GET /api/exchanges/{vh}` (only the columns the
  diff needs, `disable_stats=true`), then each exchange's bindings
  (`/api/exchanges/{vh}/{x}/bindings/source`), all concurrently with a bounded number in
  flight. The export below builds the whole document in the broker before sending a byte,
  and so does the vhost-wide bindings listing: on a loaded broker both ran past the
  broker's 60 s HTTP idle timeout at 10,000 subscribers and were cut, while the
  per-exchange reads are small and each answers quickly (docs/performance.md).
- `definitions`: one `GET /api/definitions/{vh}`, one round trip.

`read_snapshot` chooses by measurement (`AUTO`); both paths end in `from_definitions`, so
the argument types, durability, exchange types, binding arguments and the filtering of
system exchanges and default-exchange bindings are decided in one place. Queue counters are
read only for the queues a plan could lose messages from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from topology.broker.concurrency import run_bounded
from topology.broker.management import ManagementClient
from topology.compile.definitions import CLASSIC, default_queue_type, from_definitions
from topology.compile.objects import QueueStats, Topology
from topology.progress import NO_PROGRESS, Progress
from topology.state.record import OwnershipRecord
from topology.state.store import decode_records

ReadPath = Literal["auto", "listings", "definitions"]
AUTO: ReadPath = "auto"
QUEUE_COLUMNS = "name,durable,auto_delete,exclusive,arguments"
EXCHANGE_COLUMNS = "name,type,durable,auto_delete,internal,arguments"
NO_STATS = {"disable_stats": "true"}

Read = Callable[[ManagementClient], Any]
"""One GET of the snapshot: given the client, its decoded JSON answer."""


@dataclass(frozen=True)
class Snapshot:
    """A vhost as the broker reports it, normalised; `topology` is None when the vhost is missing.

    `records` are the vhost's ownership records (none for a missing vhost: records left by a
    deleted vhost describe objects that are gone)."""

    vhost: str
    topology: Topology | None
    default_queue_type: str = CLASSIC
    records: tuple[OwnershipRecord, ...] = ()

    @property
    def exists(self) -> bool:
        return self.topology is not None


def read_vhost(client: ManagementClient, vhost: str) -> dict[str, Any] | None:
    """The vhost's description, or None when it does not exist."""
    info = client.get("vhosts", vhost, missing_ok=True)
    return info if isinstance(info, dict) else None


def snapshot_reads(vhost: str, path: ReadPath) -> dict[str, Read]:
    """The GETs one snapshot is made of, run concurrently by `read_snapshot`.

    This is the one place to add a read that belongs to the snapshot (e.g. a runtime
    parameter): add it here and use its answer in `assemble`.
    """
    records: dict[str, Read] = {"records": lambda c: c.get("global-parameters") or []}  # ownership (state/)
    if path == "definitions":
        return {"definitions": lambda c: c.get("definitions", vhost, missing_ok=True), **records}
    return {
        "queues": lambda c: c.get("queues", vhost, params={"columns": QUEUE_COLUMNS, **NO_STATS}, missing_ok=True),
        "exchanges": lambda c: read_exchanges_and_bindings(c, vhost),
        "policies": lambda c: c.get("policies", vhost, missing_ok=True),
        **records,
    }


def read_exchanges_and_bindings(client: ManagementClient, vhost: str) -> dict[str, Any] | None:
    """The vhost's exchanges, and the bindings of each (as source), a few reads at a time.

    Every exchange but the default one: a binding from `amq.topic` to an owned queue is
    not ours, but the plan warns when deleting the queue would take it along.
    """
    exchanges = client.get("exchanges", vhost, params={"columns": EXCHANGE_COLUMNS, **NO_STATS}, missing_ok=True)
    if exchanges is None:
        return None
    sources = [e["name"] for e in exchanges if e.get("name")]
    lists = run_bounded(
        sources, lambda name: client.get("exchanges", vhost, name, "bindings", "source", missing_ok=True) or []
    )
    return {"exchanges": exchanges, "bindings": [binding for listed in lists for binding in listed]}


def assemble(vhost: str, queue_type: str, answers: Mapping[str, Any]) -> Snapshot:
    """The snapshot from the answers of `snapshot_reads` (pure). A 404 anywhere means the
    vhost was deleted while it was being read."""
    if any(answer is None for answer in answers.values()):
        return Snapshot(vhost, None, queue_type)
    if "definitions" in answers:
        definitions = answers["definitions"]
    else:
        listed = answers["exchanges"]
        definitions = definitions_from_listings(
            listed["exchanges"], answers["queues"], listed["bindings"], answers.get("policies") or []
        )
    records = tuple(sorted(decode_records(answers.get("records") or [], vhost), key=lambda r: r.owner))
    return Snapshot(vhost, from_definitions(definitions, vhost, queue_type), queue_type, records)


def definitions_from_listings(
    exchanges: Iterable[Mapping[str, Any]],
    queues: Iterable[Mapping[str, Any]],
    bindings: Iterable[Mapping[str, Any]],
    policies: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The listings in the shape of a definitions export, with what the export leaves out
    left out here too: exclusive queues (they die with their connection) and their bindings."""
    kept_queues, exclusive = [], set()
    for queue in queues:
        if queue.get("exclusive"):
            exclusive.add(queue.get("name"))
        else:
            kept_queues.append(queue)
    return {
        "exchanges": list(exchanges),
        "queues": kept_queues,
        "bindings": [
            b for b in bindings if not (b.get("destination_type") == "queue" and b.get("destination") in exclusive)
        ],
        "policies": list(policies),
    }


def choose_path(path: ReadPath) -> ReadPath:
    """`auto` is the listings: at every size measured they were as fast as or faster than the
    export (docs/performance.md), so one path serves small and large vhosts alike."""
    return "listings" if path == AUTO else path


def read_snapshot(
    client: ManagementClient, vhost: str, *, path: ReadPath = AUTO, progress: Progress = NO_PROGRESS
) -> Snapshot:
    info = read_vhost(client, vhost)
    if info is None:
        return Snapshot(vhost, None)
    queue_type = default_queue_type(info)
    reads = snapshot_reads(vhost, choose_path(path))
    progress.phase(f"Reading vhost {vhost!r}", len(reads))
    answers = run_bounded(list(reads.items()), lambda item: (item[0], item[1](client)), on_done=progress.advance)
    snapshot = assemble(vhost, queue_type, dict(answers))
    count = snapshot.topology.object_count if snapshot.topology else 0
    progress.finish(f"read {count} objects")
    return snapshot


def read_queue_stats(client: ManagementClient, vhost: str, names: Iterable[str]) -> dict[str, QueueStats]:
    """Message and consumer counts of the named queues (missing queues are left out).

    The management API refreshes these counters every few seconds; they inform the plan,
    while `if-empty` on delete is what actually protects messages.
    """
    wanted = set(names)
    if not wanted:
        return {}
    columns = {"columns": "name,messages,consumers"}
    # One GET per queue, a few at a time: a whole listing with counters costs the broker every
    # queue of the vhost (paging included, in 3.10) and is cut at 60 s on a vhost of 30,000
    # queues, while a queue's own GET stays cheap at any size.
    answers = run_bounded(
        sorted(wanted), lambda name: client.get("queues", vhost, name, params=columns, missing_ok=True)
    )
    rows: list[dict[str, Any]] = [row for row in answers if isinstance(row, dict)]
    return {
        row["name"]: QueueStats(messages=int(row.get("messages") or 0), consumers=int(row.get("consumers") or 0))
        for row in rows
        if row.get("name") in wanted
    }
