"""Render a plan as Markdown for a pull-request comment (jinja2 template `templates/plan.md.j2`).

The summary comes first so reviewers see the size of the change at a glance; the list of
changes is folded in a `<details>` block, as a `diff` code block that forges colour.
"""

from __future__ import annotations

from functools import cache

import jinja2

from topology.graph import graph_of_plan, to_mermaid
from topology.plan.model import ACCESS_KINDS, ACTIONS, KINDS, Change, Plan
from topology.plan.render import change_details, summary_counts

_SYMBOL = {"create": "+", "update": "!", "delete": "-", "replace": "!"}  # diff highlighting: green, red, orange
_LABEL = {"create": "add", "update": "update", "replace": "replace", "delete": "destroy"}


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("topology.plan.render", "templates"),
        autoescape=False,  # Markdown, not HTML; names sit in code spans and code blocks
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("plan.md.j2")


def render_markdown(plan: Plan, color: bool = False) -> str:
    """`color` is ignored: Markdown colours the diff block itself."""
    counts = {action: dict.fromkeys(KINDS, 0) for action in ACTIONS}
    for change in plan.changes:
        counts[change.action][change.kind] += 1
    # Policies and access objects (and updates, which only they have) get a column (a row) when
    # the plan has some.
    optional = ("policy", *ACCESS_KINDS)
    kinds = [kind for kind in KINDS if kind not in optional or any(counts[a][kind] for a in ACTIONS)]
    shown = [a for a in ("create", "update", "replace", "delete") if a != "update" or plan.summary.update]
    text = _template().render(
        plan=plan,
        summary=plan.summary,
        summary_counts=summary_counts(plan.summary),
        kinds=kinds,
        actions=[(action, _LABEL[action]) for action in shown],
        counts=counts,
        symbols=_SYMBOL,
        details=_details,
        diagram=to_mermaid(graph_of_plan(plan.changes)) if plan.has_changes else "",
    )
    return text.rstrip("\n") + "\n"


def _details(change: Change) -> str:
    parts = change_details(change)
    return f"  ({'; '.join(parts)})" if parts else ""
