"""Ownership records in the broker: one global parameter per (vhost, owner).

RabbitMQ 3.10 refuses vhost-scoped runtime parameters of an unknown component ("component
rabbitform not found"), and vhost metadata is one description shared by every owner (so two
owners would overwrite each other). A global parameter holds any JSON value, is written in one
PUT, and each owner writes only its own: see docs/lifecycle.md.
"""

from __future__ import annotations

from typing import Any

from topology.broker.management import ManagementClient
from topology.errors import RabbitformError
from topology.state.record import PARAMETER_PREFIX, OwnershipRecord, parameter_name


def read_records(client: ManagementClient, vhost: str) -> tuple[OwnershipRecord, ...]:
    """Every ownership record of `vhost`, sorted by owner (one GET of all global parameters)."""
    listed = client.get("global-parameters") or []
    return tuple(sorted(decode_records(listed, vhost), key=lambda r: r.owner))


def decode_records(listed: list[dict[str, Any]], vhost: str) -> list[OwnershipRecord]:
    records = []
    for item in listed:
        name = str(item.get("name", ""))
        if not name.startswith(PARAMETER_PREFIX):
            continue
        try:
            record = OwnershipRecord.from_value(item.get("value"))
        except (KeyError, TypeError, ValueError) as exc:
            raise RabbitformError(f"the ownership record {name!r} in the broker is unreadable: {exc}") from None
        if record is not None and record.vhost == vhost:
            records.append(record)
    return records


def write_record(client: ManagementClient, record: OwnershipRecord) -> None:
    name = record.parameter_name
    client.put("global-parameters", name, body={"name": name, "value": record.to_value()})


def delete_record(client: ManagementClient, vhost: str, owner: str) -> bool:
    """False when there was no record."""
    return client.delete("global-parameters", parameter_name(vhost, owner))


def forget_records(client: ManagementClient, vhost: str) -> int:
    """Delete every record of `vhost`; for a vhost that does not exist (anymore), whose records
    describe objects deleted with it. Returns how many there were."""
    listed = client.get("global-parameters") or []
    stale = decode_records(listed, vhost)
    for record in stale:
        delete_record(client, vhost, record.owner)
    return len(stale)
