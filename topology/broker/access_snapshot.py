"""Read the users a spec's `access:` names, with their permissions in one vhost.

Vhost definitions do not hold users or permissions, and listing every user of a cluster would
grow with the cluster: only the named users are read, three GETs each, and only when the spec
has an `access:` section. The stored salted hash is read so the plan can tell whether a
password changed; it is never shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from topology.broker.management import ManagementClient
from topology.compile.definitions import permission_from_definition, user_from_definition
from topology.compile.objects import Permission, TopicPermissions, Topology, User


def read_access(
    client: ManagementClient, vhost: str, users: Iterable[str]
) -> tuple[list[User], list[Permission], list[TopicPermissions]]:
    """The named users that exist, and their permissions and topic permissions in `vhost`."""
    found: list[User] = []
    permissions: list[Permission] = []
    topics: list[TopicPermissions] = []
    for name in users:
        info = client.get("users", name, missing_ok=True)
        if not isinstance(info, dict):
            continue  # 404: the user does not exist yet
        found.append(user_from_definition(info))
        permission = client.get("permissions", vhost, name, missing_ok=True)
        if isinstance(permission, dict):
            permissions.append(permission_from_definition(permission))
        listed: Any = client.get("topic-permissions", vhost, name, missing_ok=True) or []
        exchanges = tuple(
            sorted((item["exchange"], item["write"], item["read"]) for item in listed if isinstance(item, dict))
        )
        if exchanges:
            topics.append(TopicPermissions(name, exchanges))
    return found, permissions, topics


def with_access(topology: Topology | None, client: ManagementClient, users: Iterable[str]) -> Topology | None:
    """`topology` (a vhost's, None when the vhost is missing) with the named users' access read in."""
    names = sorted(users)
    if topology is None or not names:
        return topology
    found, permissions, topics = read_access(client, topology.vhost, names)
    return replace(topology, users=tuple(found), permissions=tuple(permissions), topic_permissions=tuple(topics))
