"""Least-privilege credentials: compile a spec's `access:` users into RabbitMQ permissions.

Pure. Each user gets, in the spec's vhost:
- configure `^$`: services never declare or delete anything (apply creates the topology; the
  runtime's passive declares need no permission);
- write: its own service's exchanges (main, retry, dead-letter), where it publishes events and
  commands and where its consumer republishes retry and dead-letter copies;
- read: its own subscribers' queues (the main queues; retry and dead-letter queues are moved by
  the broker, not read by services), and the store's queue for the store's user;
- topic permissions on each writable exchange, narrowing routing keys to the user's own names.
The store's user republishes retries through every service's retry and dead-letter exchange, so
it may write to those too (under `layout: petisco`, to the two store exchanges instead), with
routing keys narrowed to the store's own `retry.`/`dead_letter.` keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from pydantic import SecretStr

from topology import naming
from topology.compile.objects import NOTHING, Permission, TopicPermissions, Topology, User
from topology.compile.passwords import hash_password
from topology.spec.model import Access, Spec

__all__ = ["NOTHING", "Grant", "TopicPermission", "compile_access", "with_access"]


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str = NOTHING


@dataclass(frozen=True)
class Grant:
    """One user's permissions in one vhost. The password travels as a secret, never in repr."""

    user: str
    vhost: str
    password: SecretStr
    configure: str
    write: str
    read: str
    topic_permissions: tuple[TopicPermission, ...]


def compile_access(spec: Spec) -> tuple[Grant, ...]:
    """The grants of every `access:` user, sorted by user name."""
    return tuple(_grant(spec, user, spec.access[user]) for user in sorted(spec.access))


def with_access(topology: Topology, spec: Spec, salt: Callable[[], bytes]) -> Topology:
    """`topology` plus the users, permissions and topic permissions of the spec's `access:`.

    Each user carries its password (a secret) and a hash of it salted by `salt()` (pass
    `passwords.fresh_salt`): apply sends that hash, so the plan never holds the password."""
    grants = compile_access(spec)
    users = [
        User(
            name=grant.user,
            password_hash=hash_password(grant.password.get_secret_value(), salt()),
            password=grant.password,
            adopt=spec.access[grant.user].adopt,
        )
        for grant in grants
    ]
    permissions = [Permission(grant.user, grant.configure, grant.write, grant.read) for grant in grants]
    topics = [
        TopicPermissions(grant.user, tuple((t.exchange, t.write, t.read) for t in grant.topic_permissions))
        for grant in grants
        if grant.topic_permissions
    ]
    return replace(topology, users=tuple(users), permissions=tuple(permissions), topic_permissions=tuple(topics))


def _grant(spec: Spec, user: str, entry: Access) -> Grant:
    org = spec.organization
    writable: dict[str, list[str]] = {}  # exchange -> routing-key patterns the user may write
    readable: list[str] = []
    if entry.service is not None:
        main, retry, dead = naming.service_exchanges(org, entry.service)
        own = _escape(naming.exchange(org, entry.service)) + r"\."
        writable.setdefault(main, []).append(own)
        writable.setdefault(retry, []).append(_escape(naming.RETRY_PREFIX) + own)
        writable.setdefault(dead, []).append(_escape(naming.DEAD_LETTER_PREFIX) + own)
        queues = sorted({sub.queue for sub in spec.subscribers() if sub.service == entry.service})
        readable.extend(_exact(queue) for queue in queues)
    store = spec.resolved_store()
    if entry.store and store is not None:
        readable.append(_exact(store.queue))
        # layout petisco routes the store's retries through two exchanges of its own
        pairs = (
            [naming.petisco_store_exchanges(org)]
            if spec.layout == "petisco"
            else [
                (naming.retry_exchange(org, service), naming.dead_letter_exchange(org, service))
                for service in sorted(spec.services)
            ]
        )
        for retry, dead in pairs:
            writable.setdefault(retry, []).append(_escape(naming.retry_queue(store.queue)) + r"\Z")
            writable.setdefault(dead, []).append(_escape(naming.dead_letter_queue(store.queue)) + r"\Z")
    exchanges = sorted(writable)
    return Grant(
        user=user,
        vhost=spec.vhost,
        password=entry.password or SecretStr(""),  # the loader refuses a user without one
        configure=NOTHING,
        write=_any_of(_exact(name) for name in exchanges),
        read=_any_of(readable),
        topic_permissions=tuple(
            TopicPermission(exchange, write=_any_of(f"^{pattern}" for pattern in writable[exchange]))
            for exchange in exchanges
        ),
    )


def _escape(name: str) -> str:
    """Names hold letters, digits, `_`, `-` and `.`: only the dot is special in a regex."""
    return name.replace(".", r"\.")


def _exact(name: str) -> str:
    return f"^{_escape(name)}$"


def _any_of(patterns: Iterable[str]) -> str:
    """One regex matching any of `patterns` (each anchored), or nothing at all."""
    return "|".join(patterns) or NOTHING
