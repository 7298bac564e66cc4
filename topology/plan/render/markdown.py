"""Render a plan as Markdown for a pull-request comment (jinja2 template `templates/plan.md.j2`).

The summary comes first so reviewers see the size of the change at a glance; the list of
changes is folded in a `<details>` block, as a `diff` code block that forges colour.
"""

from __future__ import annotations

from functools import cache

import jinja2

from topology.plan.model import ACTIONS, KINDS, Change, Plan
from topology.plan.render.text import queue_counts

_SYMBOL = {"create": "+", "delete": "-", "replace": "!"}  # diff highlighting: green, red, orange
_LABEL = {"create": "add", "replace": "replace", "delete": "destroy"}


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
    text = _template().render(
        plan=plan,
        summary=plan.summary,
        kinds=KINDS,
        actions=[(action, _LABEL[action]) for action in ("create", "replace", "delete")],
        counts=counts,
        symbols=_SYMBOL,
        details=_details,
    )
    return text.rstrip("\n") + "\n"


def _details(change: Change) -> str:
    parts: list[str] = []
    if change.action == "replace" and change.reason:
        parts.append(change.reason if change.kind == "binding" else f"{change.reason} forces replacement")
    if change.messages is not None or change.consumers is not None:
        parts.append(queue_counts(change))
    return f"  ({'; '.join(parts)})" if parts else ""
