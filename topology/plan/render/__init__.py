"""Renderers of a plan (text, Markdown). They print; they never decide."""

from __future__ import annotations

from topology.plan.model import Change, Summary


def summary_counts(summary: Summary) -> str:
    """`1 to add, 2 to replace, 0 to destroy`; `N to update` appears only when something updates in place."""
    update = f"{summary.update} to update, " if summary.update else ""
    return f"{summary.add} to add, {update}{summary.replace} to replace, {summary.destroy} to destroy"


def change_details(change: Change) -> list[str]:
    """What a change line says after the object's name (shared by text and Markdown)."""
    parts: list[str] = []
    if change.kind == "user" and change.action == "create":
        parts.append(f"password: {change.password_shown}")  # never the password, nor its hash
    if change.action == "replace" and change.reason:
        forced = change.reason if change.kind == "binding" or change.moving else f"{change.reason} forces replacement"
        parts.append(forced)
    elif change.action == "update" and change.reason:
        parts.append(f"{change.reason}, in place")
    if change.move:
        parts.append("messages moved")
    if change.messages is not None or change.consumers is not None:
        parts.append(queue_counts(change))
    return parts


def queue_counts(change: Change) -> str:
    """`1 message, 2 consumers`; a count the broker did not report is "unknown", never 0."""
    return f"{_count(change.messages, 'message')}, {_count(change.consumers, 'consumer')}"


def _count(n: int | None, noun: str) -> str:
    if n is None:
        return f"unknown {noun}s"
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
