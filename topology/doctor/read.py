"""Reading what `rabbitform doctor` looks at: a few listings per vhost (the shell around
`topology.doctor.checks`).

Queues come from the queue listing, not the definitions export, which leaves out exclusive
queues and keeps no queue type; channels from the vhost's channel listing (the management
API lists a channel after its next stats refresh, about 5 s after it opens).
"""

from __future__ import annotations

from typing import Any

from topology.broker.concurrency import run_bounded
from topology.broker.management import ManagementClient
from topology.doctor.checks import VhostState, connection_of, uses_global_qos

QUEUE_COLUMNS = "name,durable,auto_delete,exclusive,arguments,type"
EXCHANGE_COLUMNS = "name,type"
CHANNEL_COLUMNS = "name,user,prefetch_count,global_prefetch_count,connection_details"


def broker_version(client: ManagementClient) -> str:
    overview = client.get("overview") or {}
    return str(overview.get("rabbitmq_version") or "unknown")


def vhost_names(client: ManagementClient) -> list[str]:
    return sorted(str(v["name"]) for v in client.get("vhosts") or [] if isinstance(v, dict) and "name" in v)


def read_vhost_state(client: ManagementClient, vhost: str) -> VhostState | None:
    """The vhost's queues, exchanges, policies and channels, and the connections of the
    channels that use global QoS; None when the vhost does not exist."""
    if client.get("vhosts", vhost, missing_ok=True) is None:
        return None
    reads = {
        "queues": ("queues", {"columns": QUEUE_COLUMNS, "disable_stats": "true"}),
        "exchanges": ("exchanges", {"columns": EXCHANGE_COLUMNS, "disable_stats": "true"}),
        "policies": ("policies", None),
    }

    def read(item: tuple[str, tuple[str, dict[str, str] | None]]) -> tuple[str, list[dict[str, Any]]]:
        key, (endpoint, params) = item
        return key, _rows(client.get(endpoint, vhost, params=params, missing_ok=True))

    answers = dict(run_bounded(list(reads.items()), read))
    channels = _rows(client.get("vhosts", vhost, "channels", params={"columns": CHANNEL_COLUMNS}, missing_ok=True))
    flagged = sorted({connection_of(c) for c in channels if uses_global_qos(c)})
    listings = run_bounded(flagged, lambda name: client.get("connections", name, missing_ok=True))
    connections = {name: listing for name, listing in zip(flagged, listings, strict=True) if isinstance(listing, dict)}
    return VhostState(
        vhost,
        queues=tuple(answers["queues"]),
        exchanges=tuple(answers["exchanges"]),
        policies=tuple(answers["policies"]),
        channels=tuple(channels),
        connections=connections,
    )


def _rows(answer: Any) -> list[dict[str, Any]]:
    return [row for row in answer or [] if isinstance(row, dict)]
