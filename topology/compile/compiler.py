"""Compile a spec into the exchanges, queues and bindings that realise it.

Pure: a `Spec` in, a `Topology` out, built by the layout the spec names
(`topology.compile.layouts`). docs/naming.md documents the result.
"""

from __future__ import annotations

from topology import naming
from topology.compile.layouts import strategy
from topology.compile.objects import Binding, Exchange, Queue, Topology
from topology.compile.policies import with_policies
from topology.spec.model import Spec


def compile_spec(spec: Spec) -> Topology:
    layout = strategy(spec.layout)
    queues: list[Queue] = []
    bindings: list[Binding] = []
    org = spec.organization
    store = spec.resolved_store()
    names = naming.layout_exchanges(org, sorted(spec.services), store is not None, spec.layout)
    exchanges = [Exchange(name) for name in names]
    for subscriber in spec.subscribers():
        q, b = layout.subscriber_objects(org, subscriber)
        queues.extend(q)
        bindings.extend(b)
    if store is not None:
        q, b = layout.store_objects(org, sorted(spec.services), store)
        queues.extend(q)
        bindings.extend(b)
    topology = Topology.of(spec.vhost, exchanges, queues, bindings)
    if spec.queue_settings == "policies":
        defaults = spec.defaults
        default_tier = (defaults.retry.delay_ms, defaults.queue_type, defaults.retry.delivery_limit)
        return with_policies(topology, org, spec.services, default_tier)
    return topology
