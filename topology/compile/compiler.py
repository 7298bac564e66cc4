"""Compile a spec into the exchanges, queues and bindings that realise it.

Pure: a `Spec` in, a `Topology` out. The README's naming table documents the result.
"""

from __future__ import annotations

from topology import naming
from topology.compile.layouts.rabbitform import store_objects, subscriber_objects
from topology.compile.objects import Binding, Exchange, Queue, Topology
from topology.spec.model import Spec


def compile_spec(spec: Spec) -> Topology:
    exchanges: list[Exchange] = []
    queues: list[Queue] = []
    bindings: list[Binding] = []
    org = spec.organization
    for service in spec.services:
        exchanges.extend(Exchange(name) for name in naming.service_exchanges(org, service))
    for subscriber in spec.subscribers():
        q, b = subscriber_objects(org, subscriber)
        queues.extend(q)
        bindings.extend(b)
    store = spec.resolved_store()
    if store is not None:
        q, b = store_objects(org, sorted(spec.services), store)
        queues.extend(q)
        bindings.extend(b)
    return Topology.of(spec.vhost, exchanges, queues, bindings)
