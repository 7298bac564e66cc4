"""The rules that keep `access:` from locking anyone out or taking over an account.

Pure: the users a spec wants (compiled), the users and permissions the broker has (read for the
names in scope), and the user rabbitform connects as, in; the reasons to refuse the plan out.

- The user the planner connects as is never managed by a spec: narrowing its permissions or
  clearing its tags would lock the operator out mid-apply.
- An existing user that rabbitform did not create (the ownership record lists the ones it did)
  is refused when it has tags, permissions on another vhost, or permissions here the spec does
  not grant, unless the spec says `adopt: true` for it; the plan then shows what changes.
"""

from __future__ import annotations

from topology.compile.objects import Topology


def access_problems(desired: Topology, actual: Topology | None, connecting_user: str) -> list[str]:
    problems: list[str] = []
    current_users = {user.name: user for user in actual.users} if actual is not None else {}
    current_permissions = {p.user: p for p in actual.permissions} if actual is not None else {}
    current_topics = {t.user: t for t in actual.topic_permissions} if actual is not None else {}
    wanted_permissions = {p.user: p for p in desired.permissions}
    wanted_topics = {t.user: t for t in desired.topic_permissions}
    for wanted in desired.users:
        if wanted.name == connecting_user:
            problems.append(
                f"access: {wanted.name!r} is the user rabbitform connects as: a spec must not manage it (its tags and "
                "permissions would be narrowed to a service's, locking you out); give the service another user"
            )
            continue
        current = current_users.get(wanted.name)
        if current is None or current.created_by_spec or wanted.adopt:
            continue
        reasons = []
        if current.tags:
            reasons.append(f"tags {current.tags!r}")
        if current.other_vhosts:
            reasons.append(f"permissions on vhost(s) {', '.join(repr(v) for v in current.other_vhosts)}")
        permission = current_permissions.get(wanted.name)
        if permission is not None and permission != wanted_permissions.get(wanted.name):
            reasons.append("permissions on this vhost the spec does not grant")
        topics = current_topics.get(wanted.name)
        if topics is not None and topics != wanted_topics.get(wanted.name):
            reasons.append("topic permissions on this vhost the spec does not grant")
        if reasons:
            problems.append(
                f"access: user {wanted.name!r} already exists with {' and '.join(reasons)}, and rabbitform did not "
                f"create it: add `adopt: true` to access.{wanted.name} to let the spec take it over (the plan then "
                "shows what changes), or give the service another user"
            )
    return problems
