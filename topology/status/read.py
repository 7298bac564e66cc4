"""Read what `status` needs from the management API: one `GET /api/queues` (only the columns
it shows) and the bindings of each service exchange as a source."""

from __future__ import annotations

from typing import Any

from topology import naming
from topology.broker.management import ManagementClient
from topology.errors import RabbitformError
from topology.spec.model import Spec
from topology.status.model import QUEUE_COLUMNS, StatusReport, build_status


def read_status(spec: Spec, client: ManagementClient) -> StatusReport:
    if client.get("vhosts", spec.vhost, missing_ok=True) is None:
        raise RabbitformError(
            f"vhost {spec.vhost!r} does not exist on {client.display_url}: run `rabbitform apply` first"
        )
    rows = client.get("queues", spec.vhost, params={"columns": ",".join(QUEUE_COLUMNS)}) or []
    bindings: dict[str, list[dict[str, Any]] | None] = {}
    for service in sorted(spec.services):
        exchange = naming.exchange(spec.organization, service)
        bindings[exchange] = client.get("exchanges", spec.vhost, exchange, "bindings", "source", missing_ok=True)
    return build_status(spec, rows, bindings)
