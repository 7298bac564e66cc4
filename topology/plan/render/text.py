"""Render a plan as Terraform-like text. Prints; never decides."""

from __future__ import annotations

from topology.plan.model import Change, Plan

_SYMBOL = {"create": "+", "delete": "-", "replace": "-/+"}
_COLOR = {"create": "\033[32m", "delete": "\033[31m", "replace": "\033[33m"}
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
                f"Plan: {summary.add} to add, {summary.replace} to replace, {summary.destroy} to destroy.",
            )
        )
    return "\n".join(lines) + "\n"


def _detail(change: Change) -> str:
    parts: list[str] = []
    if change.action == "replace" and change.reason:
        forced = change.reason if change.kind == "binding" else f"{change.reason} forces replacement"
        parts.append(forced)
    if change.messages is not None or change.consumers is not None:
        parts.append(queue_counts(change))
    return f"  ({'; '.join(parts)})" if parts else ""


def queue_counts(change: Change) -> str:
    """`1 message, 2 consumers`; a count the broker did not report is "unknown", never 0."""
    return f"{_count(change.messages, 'message')}, {_count(change.consumers, 'consumer')}"


def _count(n: int | None, noun: str) -> str:
    if n is None:
        return f"unknown {noun}s"
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
