"""A vhost of the benchmark's own, created through the same client `rabbitform` uses."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

from topology.apply.executor import create_vhost
from topology.broker.management import BrokerTimeout, ManagementClient

DELETE_DEADLINE = 1800.0  # deleting a vhost of 60,000 queues takes minutes on a busy broker


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
        delete_vhost(client, name)


def delete_vhost(client: ManagementClient, name: str, deadline: float = DELETE_DEADLINE) -> None:
    """Delete a vhost however long it takes: the broker cuts an HTTP request that has sent
    nothing for 60 s, while a large vhost takes longer than that to delete, so ask again until
    the vhost is gone."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            client.delete("vhosts", name)
            return
        except BrokerTimeout:
            if client.get("vhosts", name, missing_ok=True) is None:
                return
            if time.monotonic() > give_up:
                raise
