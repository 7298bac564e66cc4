"""Mermaid `flowchart` text of a graph: GitHub and GitLab render it in Markdown.

Exchanges are hexagons, queues cylinders; bindings are solid arrows labelled with their
routing key, dead-letter routes (retry TTLs, dead letters) dashed. Plan diagrams colour
added, replaced and deleted objects.
"""

from __future__ import annotations

from topology.graph.model import Graph, Node

_CLASSES = {
    "added": "fill:#dafbe1,stroke:#1a7f37,color:#1a7f37",
    "updated": "fill:#fff8c5,stroke:#9a6700,color:#9a6700",
    "replaced": "fill:#fff8c5,stroke:#9a6700,color:#9a6700",
    "deleted": "fill:#ffebe9,stroke:#cf222e,color:#cf222e,stroke-dasharray:4 3",
}
_EDGE_COLOURS = {"added": "#1a7f37", "updated": "#9a6700", "replaced": "#9a6700", "deleted": "#cf222e"}


def _text(value: str) -> str:
    """Mermaid labels sit in double quotes; it has entity codes for what would break them."""
    escaped = value.replace("#", "#35;")  # first: the entity codes below start with '#'
    return escaped.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _shape(node: Node) -> str:
    label = _text(node.name)
    return f'{{{{"{label}"}}}}' if node.kind == "exchange" else f'[("{label}")]'


def to_mermaid(graph: Graph, direction: str = "LR") -> str:
    """The graph as a Mermaid flowchart; the text starts with `flowchart`."""
    ids = {node.id: f"n{index}" for index, node in enumerate(graph.nodes)}
    lines = [f"flowchart {direction}"]
    for node in graph.nodes:
        lines.append(f"    {ids[node.id]}{_shape(node)}")
    styled: dict[str, list[str]] = {}
    for index, edge in enumerate(graph.edges):
        arrow = "-.->" if edge.kind == "dead_letter" else "-->"
        lines.append(f'    {ids[edge.source]} {arrow}|"{_text(edge.label)}"| {ids[edge.target]}')
        if edge.status in _EDGE_COLOURS:
            styled.setdefault(edge.status, []).append(str(index))
    for status, indices in sorted(styled.items()):
        lines.append(f"    linkStyle {','.join(indices)} stroke:{_EDGE_COLOURS[status]},stroke-width:2px")
    used = sorted({node.status for node in graph.nodes} & set(_CLASSES))
    for status in used:
        lines.append(f"    classDef {status} {_CLASSES[status]}")
        members = ",".join(ids[node.id] for node in graph.nodes if node.status == status)
        lines.append(f"    class {members} {status}")
    return "\n".join(lines) + "\n"
