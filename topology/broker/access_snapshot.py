"""Read the users a spec's `access:` names, with their permissions in one vhost.

Vhost definitions do not hold users or permissions, and listing every user of a cluster would
grow with the cluster: only the named users are read, three GETs each (the user, its permissions and topic permissions in every vhost), and only when the spec
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
    client: ManagementClient, vhost: str, users: Iterable[str], created: Iterable[str] = ()
) -> tuple[list[User], list[Permission], list[TopicPermissions]]:
    """The named users that exist, and their permissions and topic permissions in `vhost`.

    Each user's permissions are read across all vhosts (`/api/users/{name}/permissions`), so the
    plan knows where else it has rights (`User.other_vhosts`); `created` are the users the
    ownership record says rabbitform created (`User.created_by_spec`)."""
    made = set(created)
    found: list[User] = []
    permissions: list[Permission] = []
    topics: list[TopicPermissions] = []
    for name in users:
        info = client.get("users", name, missing_ok=True)
        if not isinstance(info, dict):
            continue  # 404: the user does not exist yet
        listed: Any = client.get("users", name, "permissions", missing_ok=True) or []
        listed_topics: Any = client.get("users", name, "topic-permissions", missing_ok=True) or []
        elsewhere = {item.get("vhost") for item in [*listed, *listed_topics] if isinstance(item, dict)} - {vhost}
        user = user_from_definition(info)
        found.append(replace(user, created_by_spec=name in made, other_vhosts=tuple(sorted(map(str, elsewhere)))))
        for item in listed:
            if isinstance(item, dict) and item.get("vhost") == vhost:
                permissions.append(permission_from_definition(item))
        exchanges = tuple(
            sorted(
                (item["exchange"], item["write"], item["read"])
                for item in listed_topics
                if isinstance(item, dict) and item.get("vhost") == vhost
            )
        )
        if exchanges:
            topics.append(TopicPermissions(name, exchanges))
    return found, permissions, topics


def with_access(
    topology: Topology | None, client: ManagementClient, users: Iterable[str], created: Iterable[str] = ()
) -> Topology | None:
    """`topology` (a vhost's, None when the vhost is missing) with the named users' access read in."""
    names = sorted(users)
    if topology is None or not names:
        return topology
    found, permissions, topics = read_access(client, topology.vhost, names, created)
    return replace(topology, users=tuple(found), permissions=tuple(permissions), topic_permissions=tuple(topics))
