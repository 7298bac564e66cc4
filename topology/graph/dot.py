"""Graphviz DOT text of a graph (`rabbitform graph --format dot | dot -Tsvg > topology.svg`)."""

from __future__ import annotations

from topology.graph.model import Graph, Node

_FILL = {"added": "#dafbe1", "updated": "#fff8c5", "replaced": "#fff8c5", "deleted": "#ffebe9"}
_COLOUR = {"added": "#1a7f37", "updated": "#9a6700", "replaced": "#9a6700", "deleted": "#cf222e"}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _node(node: Node) -> str:
    attributes = [f"label={_quote(node.name)}", "shape=hexagon" if node.kind == "exchange" else "shape=cylinder"]
    if node.status in _FILL:
        style = '"filled,dashed"' if node.status == "deleted" else "filled"
        attributes += [
            f"style={style}",
            f"fillcolor={_quote(_FILL[node.status])}",
            f"color={_quote(_COLOUR[node.status])}",
        ]
    return f"  {_quote(node.id)} [{', '.join(attributes)}];"


def to_dot(graph: Graph, name: str = "rabbitform") -> str:
    lines = [
        f"digraph {_quote(name)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    lines.extend(_node(node) for node in graph.nodes)
    for edge in graph.edges:
        attributes = [f"label={_quote(edge.label)}"]
        if edge.kind == "dead_letter":
            attributes.append("style=dashed")
        if edge.status in _COLOUR:
            attributes.append(f"color={_quote(_COLOUR[edge.status])}")
        lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
