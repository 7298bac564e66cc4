"""Which broker objects a spec owns.

A spec owns the objects its naming rules produce for its organization and services: the
service exchanges and their retry/dead-letter twins, the queues under those prefixes, its
store queues, the policies named like its queues (`queue_settings: policies`), and the bindings
between two owned objects, and the users named in its `access:` section with their
permissions and topic permissions in the vhost. Everything else in the vhost is
never touched, never deleted, and not shown as a change.

Users are cluster-wide and owned by name only while the spec names them: a user dropped from
`access:` leaves the scope and is left on the broker as it is (not deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from topology import naming
from topology.compile.objects import Binding, Topology
from topology.spec.model import Spec


@dataclass(frozen=True)
class Scope:
    organization: str
    services: tuple[str, ...]
    store_queues: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    store_exchanges: tuple[str, ...] = ()  # layout petisco: `retry.<org>.store`, `dead_letter.<org>.store`

    @classmethod
    def of_spec(cls, spec: Spec) -> Scope:
        store = spec.resolved_store()
        return cls(
            organization=spec.organization,
            services=tuple(sorted(spec.services)),
            store_queues=naming.store_queues(store.queue) if store else (),
            users=tuple(sorted(spec.access)),
            store_exchanges=naming.petisco_store_exchanges(spec.organization)
            if store and spec.layout == "petisco"
            else (),
        )

    @cached_property  # computed once: planning asks for every binding of a vhost
    def exchanges(self) -> frozenset[str]:
        return frozenset(
            name for service in self.services for name in naming.service_exchanges(self.organization, service)
        ) | frozenset(self.store_exchanges)

    @cached_property
    def queue_prefixes(self) -> tuple[str, ...]:
        return tuple(
            prefix for service in self.services for prefix in naming.owned_queue_prefixes(self.organization, service)
        )

    def owns_exchange(self, name: str) -> bool:
        return name in self.exchanges

    def owns_queue(self, name: str) -> bool:
        return name in self.store_queues or name.startswith(self.queue_prefixes) or self._store_tier(name)

    def _store_tier(self, name: str) -> bool:
        """`retry.<store>.<k>`: a further tier of the store's retry ladder (k > 1)."""
        if not self.store_queues:
            return False
        tier = naming.retry_tier_of(name)
        return tier is not None and tier[1] > 1 and tier[0] == self.store_queues[0]

    def owns_policy(self, name: str) -> bool:
        """Policies are owned by name, like queues: the spec names them after what they govern."""
        return self.owns_queue(name)

    def owns_binding(self, binding: Binding) -> bool:
        destination_owned = (
            self.owns_queue(binding.destination)
            if binding.destination_type == "queue"
            else self.owns_exchange(binding.destination)
        )
        return self.owns_exchange(binding.source) and destination_owned

    def filter(self, topology: Topology) -> Topology:
        """The part of a topology this scope owns."""
        exchanges = self.exchanges
        return Topology(
            vhost=topology.vhost,
            exchanges=tuple(e for e in topology.exchanges if e.name in exchanges),
            queues=tuple(q for q in topology.queues if self.owns_queue(q.name)),
            bindings=tuple(b for b in topology.bindings if self.owns_binding(b)),
            policies=tuple(p for p in topology.policies if self.owns_queue(p.name)),
            users=tuple(u for u in topology.users if u.name in self.users),
            permissions=tuple(p for p in topology.permissions if p.user in self.users),
            topic_permissions=tuple(t for t in topology.topic_permissions if t.user in self.users),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "organization": self.organization,
            "services": list(self.services),
            "store_queues": list(self.store_queues),
        }
        if self.users:  # only when present, so plans without `access:` keep their form
            data["users"] = list(self.users)
        if self.store_exchanges:
            data["store_exchanges"] = list(self.store_exchanges)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        return cls(
            organization=str(data["organization"]),
            services=tuple(data.get("services", ())),
            store_queues=tuple(data.get("store_queues", ())),
            users=tuple(data.get("users", ())),
            store_exchanges=tuple(data.get("store_exchanges", ())),
        )
