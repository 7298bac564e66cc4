"""A vhost of the benchmark's own, created through the same client `rabbitform` uses."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from topology.apply.executor import create_vhost
from topology.broker.management import ManagementClient


@contextlib.contextmanager
def scratch_vhost(client: ManagementClient, label: str, create: bool = False) -> Iterator[str]:
    """A vhost name of our own (created with permissions when `create`); deleted afterwards
    whatever happens."""
    name = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    if create:
        create_vhost(client, name)
    try:
        yield name
    finally:
        client.delete("vhosts", name)
