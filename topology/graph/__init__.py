"""The topology as a picture: a pure function from compiled objects to Mermaid or DOT.

```python
from topology.graph import build_graph, to_mermaid
print(to_mermaid(build_graph(compile_spec(spec))))
```
"""

from topology.graph.dot import to_dot
from topology.graph.mermaid import to_mermaid
from topology.graph.model import Edge, Graph, Node, Status, build_graph, graph_of_plan, only_service

__all__ = ["Edge", "Graph", "Node", "Status", "build_graph", "graph_of_plan", "only_service", "to_dot", "to_mermaid"]
