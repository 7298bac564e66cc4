"""The broker objects a topology is made of, as plain immutable data.

Compiling a spec, reading a definitions file and reading a live broker all produce these
values, so the diff only ever compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from topology.compile.passwords import SHA256

ArgValue = Any  # str | int | bool | float | None: what queue/binding arguments hold on the wire
Arguments = Mapping[str, ArgValue]
DestinationType = Literal["queue", "exchange"]
ObjectKind = Literal["vhost", "exchange", "queue", "binding", "policy", "user", "permission", "topic_permission"]
ApplyTo = Literal["queues", "exchanges", "all"]


FrozenArguments = tuple[tuple[str, str, str], ...]


def freeze_arguments(arguments: Arguments | None) -> FrozenArguments:
    """A hashable, ordered form of an arguments table; keeps value types exact (5000 != "5000")."""
    if not arguments:
        return ()
    return tuple(sorted((key, type(value).__name__, repr(value)) for key, value in arguments.items()))


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str = "topic"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: Mapping[str, ArgValue] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Queue:
    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: Mapping[str, ArgValue] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name

    @property
    def queue_type(self) -> str:
        return str(self.arguments.get("x-queue-type", "classic"))


@dataclass(frozen=True)
class Binding:
    source: str
    destination: str
    routing_key: str
    destination_type: DestinationType = "queue"
    arguments: Mapping[str, ArgValue] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, FrozenArguments]:
        """Bindings have no name: they are identified by all of their fields."""
        return (
            self.source,
            self.destination_type,
            self.destination,
            self.routing_key,
            freeze_arguments(self.arguments),
        )

    @property
    def label(self) -> str:
        return f"{self.source} -> {self.destination} [{self.routing_key}]"


@dataclass(frozen=True)
class Policy:
    """A vhost policy: settings RabbitMQ applies to the queues (or exchanges) whose names match
    `pattern`; of several matching policies only the highest `priority` applies."""

    name: str
    pattern: str
    definition: Mapping[str, ArgValue] = field(default_factory=dict)
    priority: int = 0
    apply_to: ApplyTo = "queues"

    @property
    def key(self) -> str:
        return self.name


NOTHING = "^$"  # a permission regex that matches no name


@dataclass(frozen=True)
class User:
    """A broker user (cluster-wide). Read from the broker it carries the stored salted hash;
    compiled from a spec it also carries the password (a secret, never shown) and a freshly
    salted hash of it, which is what apply sends: the password itself never leaves the process."""

    name: str
    tags: str = ""
    password_hash: str = field(default="", repr=False)
    hashing_algorithm: str = SHA256
    password: SecretStr | None = field(default=None, compare=False, repr=False)
    # Facts for the access safety rules (topology.plan.access_safety), never compared:
    # compiled: the spec adopts this user; read: rabbitform created it (the ownership record
    # says so), and the other vhosts where it has permissions.
    adopt: bool = field(default=False, compare=False)
    created_by_spec: bool = field(default=False, compare=False)
    other_vhosts: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Permission:
    """A user's configure/write/read regexes in the topology's vhost."""

    user: str
    configure: str = NOTHING
    write: str = NOTHING
    read: str = NOTHING

    @property
    def key(self) -> str:
        return self.user


@dataclass(frozen=True)
class TopicPermissions:
    """All of a user's topic permissions in the vhost, as (exchange, write, read), sorted.

    One object per user because the management API clears them per user, not per exchange."""

    user: str
    exchanges: tuple[tuple[str, str, str], ...] = ()

    @property
    def key(self) -> str:
        return self.user


@dataclass(frozen=True)
class Topology:
    """Everything one spec declares (or one vhost holds) that we compare."""

    vhost: str
    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()
    policies: tuple[Policy, ...] = ()
    users: tuple[User, ...] = ()
    permissions: tuple[Permission, ...] = ()
    topic_permissions: tuple[TopicPermissions, ...] = ()

    @classmethod
    def of(
        cls,
        vhost: str,
        exchanges: Iterable[Exchange] = (),
        queues: Iterable[Queue] = (),
        bindings: Iterable[Binding] = (),
        policies: Iterable[Policy] = (),
        users: Iterable[User] = (),
        permissions: Iterable[Permission] = (),
        topic_permissions: Iterable[TopicPermissions] = (),
    ) -> Topology:
        """Build a topology in canonical order (sorted, duplicates dropped)."""
        return cls(
            vhost=vhost,
            exchanges=tuple(sorted({e.name: e for e in exchanges}.values(), key=lambda e: e.name)),
            queues=tuple(sorted({q.name: q for q in queues}.values(), key=lambda q: q.name)),
            bindings=tuple(sorted({b.key: b for b in bindings}.values(), key=_binding_sort_key)),
            policies=tuple(sorted({p.name: p for p in policies}.values(), key=lambda p: p.name)),
            users=tuple(sorted({u.name: u for u in users}.values(), key=lambda u: u.name)),
            permissions=tuple(sorted({p.user: p for p in permissions}.values(), key=lambda p: p.user)),
            topic_permissions=tuple(sorted({t.user: t for t in topic_permissions}.values(), key=lambda t: t.user)),
        )

    @property
    def object_count(self) -> int:
        return (
            len(self.exchanges)
            + len(self.queues)
            + len(self.bindings)
            + len(self.policies)
            + len(self.users)
            + len(self.permissions)
            + len(self.topic_permissions)
        )


def _binding_sort_key(binding: Binding) -> tuple[str, str, str, str, str]:
    return (
        binding.source,
        binding.destination_type,
        binding.destination,
        binding.routing_key,
        repr(freeze_arguments(binding.arguments)),
    )


@dataclass(frozen=True)
class QueueStats:
    """Live counters of a queue, used by the plan's safety rules."""

    messages: int = 0
    consumers: int = 0
