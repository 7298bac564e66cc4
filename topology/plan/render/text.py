"""Render a plan as Terraform-like text. Prints; never decides."""

from __future__ import annotations

from topology.plan.model import Change, Plan
from topology.plan.render import change_details, queue_counts, summary_counts

__all__ = ["queue_counts", "render_text"]

_SYMBOL = {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}
_COLOR = {"create": "\033[32m", "update": "\033[33m", "delete": "\033[31m", "replace": "\033[33m"}
_BOLD = "\033[1m"
_RESET = "\033[0m"


def render_text(plan: Plan, color: bool = False) -> str:
    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    lines: list[str] = []
    if plan.has_changes:
        lines.append(f'rabbitform will perform the following actions on vhost "{plan.vhost}":')
        lines.append("")
        for change in plan.changes:
            symbol = _SYMBOL[change.action].rjust(3)
            lines.append(f" {paint(_COLOR[change.action], symbol)} {change.kind} {change.name}{_detail(change)}")
        lines.append("")
    else:
        lines.append(f'No changes. The broker matches the spec on vhost "{plan.vhost}".')
    for warning in plan.warnings:
        lines.append(paint("\033[33m", f"Warning: {warning}"))
    for error in plan.errors:
        lines.append(paint("\033[31m", f"Error: {error}"))
    if plan.warnings or plan.errors:
        lines.append("")
    summary = plan.summary
    if plan.has_changes:
        lines.append(
            paint(
                _BOLD,
                f"Plan: {summary_counts(summary)}.",
            )
        )
    return "\n".join(lines) + "\n"


def _detail(change: Change) -> str:
    parts = change_details(change)
    return f"  ({'; '.join(parts)})" if parts else ""
