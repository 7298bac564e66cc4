"""What the picture shows, as plain data: nodes (exchanges, queues) and edges (bindings, and
the dead-letter routes that queue arguments declare), each with a status for plan diagrams.

Pure: a `Topology` (or a plan's changes) in, a `Graph` out. The renderers only lay it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from topology import naming
from topology.compile.definitions import binding_from_definition, exchange_from_definition, queue_from_definition
from topology.compile.objects import Binding, Exchange, Queue, Topology
from topology.compile.policies import effective_arguments

Status = Literal["unchanged", "added", "updated", "replaced", "deleted"]
NodeKind = Literal["exchange", "queue"]
EdgeKind = Literal["binding", "dead_letter"]
DEFAULT_EXCHANGE = ""


@dataclass(frozen=True)
class Node:
    """An exchange or a queue; `role` says which part of the convention it plays."""

    kind: NodeKind
    name: str
    role: str  # exchange: main | retry | dead_letter; queue: subscriber | retry | dead_letter | store
    status: Status = "unchanged"

    @property
    def id(self) -> str:
        return ("x:" if self.kind == "exchange" else "q:") + self.name


@dataclass(frozen=True)
class Edge:
    """A binding (exchange -> queue, labelled with its routing key) or a dead-letter route
    (queue -> exchange or, through the default exchange, queue -> queue)."""

    source: str  # node id
    target: str  # node id
    label: str
    kind: EdgeKind = "binding"
    status: Status = "unchanged"


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node_names(self) -> set[str]:
        return {node.name for node in self.nodes}


def exchange_role(name: str) -> str:
    if name.startswith(naming.RETRY_PREFIX):
        return "retry"
    if name.startswith(naming.DEAD_LETTER_PREFIX):
        return "dead_letter"
    return "main"


def queue_role(queue: Queue, arguments: Mapping[str, Any] | None = None) -> str:
    name = queue.name
    effective = queue.arguments if arguments is None else arguments
    if name.startswith(naming.RETRY_PREFIX):
        return "retry"
    if name.startswith(naming.DEAD_LETTER_PREFIX):
        return "dead_letter"
    if effective.get("x-dead-letter-exchange") == DEFAULT_EXCHANGE:
        return "store"
    return "subscriber"


def build_graph(
    topology: Topology,
    status: Mapping[tuple[str, str], Status] | None = None,
    edge_status: Mapping[tuple[str, str, str], Status] | None = None,
) -> Graph:
    """The graph of a topology. `status` marks nodes by (kind, name); `edge_status` marks
    bindings by (source, destination, routing key); everything else is unchanged."""
    marks = status or {}
    edge_marks = edge_status or {}
    # With `queue_settings: policies` the TTL and dead-letter routes live in policies.
    arguments = {queue.name: effective_arguments(queue, topology.policies) for queue in topology.queues}
    nodes: dict[str, Node] = {}
    for exchange in topology.exchanges:
        node = Node(
            "exchange", exchange.name, exchange_role(exchange.name), marks.get(("exchange", exchange.name), "unchanged")
        )
        nodes[node.id] = node
    for queue in topology.queues:
        node = Node(
            "queue", queue.name, queue_role(queue, arguments[queue.name]), marks.get(("queue", queue.name), "unchanged")
        )
        nodes[node.id] = node
    edges: list[Edge] = []
    for binding in topology.bindings:
        source = _ensure_exchange(nodes, binding.source)
        target = (
            _ensure_queue(nodes, binding.destination)
            if binding.destination_type == "queue"
            else _ensure_exchange(nodes, binding.destination)
        )
        mark = edge_marks.get((binding.source, binding.destination, binding.routing_key), "unchanged")
        edges.append(Edge(source, target, binding.routing_key, "binding", mark))
    for queue in topology.queues:
        mark = marks.get(("queue", queue.name), "unchanged")
        edges.extend(_dead_letter_edges(queue.name, arguments[queue.name], nodes, mark))
    return Graph(tuple(nodes.values()), tuple(edges))


def _dead_letter_edges(
    queue: str, arguments: Mapping[str, Any], nodes: dict[str, Node], status: Status
) -> Iterable[Edge]:
    """A queue's `x-dead-letter-exchange` is an edge too: the retry loop is what the seed draws."""
    if "x-dead-letter-exchange" not in arguments:
        return []
    exchange = str(arguments["x-dead-letter-exchange"])
    routing_key = str(arguments.get("x-dead-letter-routing-key", ""))
    route = routing_key or "its own routing key"  # without the key, a dead letter keeps the one it had
    ttl = arguments.get("x-message-ttl")
    label = f"TTL {ttl} ms, {route}" if ttl is not None else route
    source = "q:" + queue
    if exchange == DEFAULT_EXCHANGE:  # routes by queue name: straight to that queue
        target = _ensure_queue(nodes, routing_key)
        label = f"{label} (default exchange)"
    else:
        target = _ensure_exchange(nodes, exchange)
    return [Edge(source, target, label, "dead_letter", status)]


def _ensure_exchange(nodes: dict[str, Node], name: str) -> str:
    node_id = "x:" + name
    nodes.setdefault(node_id, Node("exchange", name, exchange_role(name)))
    return node_id


def _ensure_queue(nodes: dict[str, Node], name: str) -> str:
    node_id = "q:" + name
    nodes.setdefault(node_id, Node("queue", name, queue_role(Queue(name))))
    return node_id


def only_service(topology: Topology, organization: str, service: str) -> Topology:
    """The part of a topology that belongs to one service: its three exchanges, the queues
    bound to them (the store included), and those bindings."""
    exchanges = set(naming.service_exchanges(organization, service))
    bindings = [b for b in topology.bindings if b.source in exchanges]
    queues = {b.destination for b in bindings if b.destination_type == "queue"}
    return Topology.of(
        topology.vhost,
        [e for e in topology.exchanges if e.name in exchanges],
        [q for q in topology.queues if q.name in queues],
        bindings,
    )


_ACTION_STATUS: dict[str, Status] = {
    "create": "added",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
}


def graph_of_plan(changes: Iterable[Any]) -> Graph:
    """The part of the topology a plan changes: every changed object, styled by its action,
    with the exchanges and queues at the ends of changed bindings as unchanged context.

    `changes` are `topology.plan.model.Change` values (duck-typed: action, kind, before, after).
    """
    exchanges: list[Exchange] = []
    queues: list[Queue] = []
    bindings: list[Binding] = []
    status: dict[tuple[str, str], Status] = {}
    edge_status: dict[tuple[str, str, str], Status] = {}
    for change in changes:
        data = change.after if change.after is not None else change.before
        if data is None or change.kind not in ("exchange", "queue", "binding"):
            continue  # the vhost, and policies (settings of queues, not places a message goes)
        mark = _ACTION_STATUS[change.action]
        if change.kind == "exchange":
            exchanges.append(exchange_from_definition(data))
            status[("exchange", data["name"])] = mark
        elif change.kind == "queue":
            queue = queue_from_definition(data)
            queues.append(queue)
            status[("queue", queue.name)] = mark
        elif change.kind == "binding":
            binding = binding_from_definition(data)
            bindings.append(binding)
            edge_status[(binding.source, binding.destination, binding.routing_key)] = mark
    topology = Topology.of("", exchanges, queues, bindings)
    graph = build_graph(topology, status, edge_status)
    # Dead-letter routes of unchanged context are not part of the change: keep the changed ones.
    edges = tuple(e for e in graph.edges if e.kind == "binding" or e.status != "unchanged")
    return Graph(graph.nodes, edges)
