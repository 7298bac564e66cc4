"""Read a vhost's state from the management API: the shell around `definitions.from_definitions`.

One definitions export gives every exchange, queue and binding (no per-object GET storm);
queue counters are read only for the queues a plan could lose messages from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from topology.broker.management import ManagementClient
from topology.compile.definitions import CLASSIC, from_definitions
from topology.compile.objects import QueueStats, Topology
from topology.state.record import OwnershipRecord
from topology.state.store import read_records

PAGE_SIZE = 500  # the largest page the management API accepts
FEW_QUEUES = 20  # up to this many, one GET per queue beats paging through the whole vhost


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


def default_queue_type(vhost_info: dict[str, Any] | None) -> str:
    """The vhost's default queue type: 3.10 reports "undefined" when none is set; 4.x also
    keeps it in the vhost metadata."""
    if not vhost_info:
        return CLASSIC
    metadata = vhost_info.get("metadata") or {}
    value = vhost_info.get("default_queue_type") or metadata.get("default_queue_type")
    return str(value) if value and value != "undefined" else CLASSIC


def read_vhost(client: ManagementClient, vhost: str) -> dict[str, Any] | None:
    """The vhost's description, or None when it does not exist."""
    info = client.get("vhosts", vhost, missing_ok=True)
    return info if isinstance(info, dict) else None


def read_snapshot(client: ManagementClient, vhost: str) -> Snapshot:
    info = read_vhost(client, vhost)
    if info is None:
        return Snapshot(vhost, None)
    queue_type = default_queue_type(info)
    definitions = client.get("definitions", vhost, missing_ok=True)
    if definitions is None:  # deleted between the two calls
        return Snapshot(vhost, None, queue_type)
    records = read_records(client, vhost)
    return Snapshot(vhost, from_definitions(definitions, vhost, queue_type), queue_type, records)


def read_queue_stats(client: ManagementClient, vhost: str, names: Iterable[str]) -> dict[str, QueueStats]:
    """Message and consumer counts of the named queues (missing queues are left out).

    The management API refreshes these counters every few seconds; they inform the plan,
    while `if-empty` on delete is what actually protects messages.
    """
    wanted = set(names)
    if not wanted:
        return {}
    columns = {"columns": "name,messages,consumers"}
    rows: list[dict[str, Any]] = []
    if len(wanted) <= FEW_QUEUES:
        for name in sorted(wanted):
            row = client.get("queues", vhost, name, params=columns, missing_ok=True)
            if isinstance(row, dict):
                rows.append(row)
    else:
        page = 1
        while True:
            data = client.get("queues", vhost, params={**columns, "page": page, "page_size": PAGE_SIZE})
            rows.extend(data.get("items", []))
            if page >= int(data.get("page_count", 1)):
                break
            page += 1
    return {
        row["name"]: QueueStats(messages=int(row.get("messages") or 0), consumers=int(row.get("consumers") or 0))
        for row in rows
        if row.get("name") in wanted
    }
