"""`status` as a table for people, or as JSON. Unknown counts print as `?`."""

from __future__ import annotations

import json

from topology.status.model import QueueState, StatusReport


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _rate(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _cell(queue: QueueState, value: int | None) -> str:
    return "missing" if not queue.exists else _count(value)


def render_status_text(report: StatusReport) -> str:
    header = ("subscriber", "ready", "unacked", "retrying", "dead", "consumers", "publish/s", "deliver/s", "ack/s")
    rows = [header]
    for sub in report.subscribers:
        queue = sub.queue
        rows.append(
            (
                sub.label + (" (paused)" if sub.paused else ""),
                _cell(queue, queue.ready),
                _cell(queue, queue.unacked),
                _cell(sub.retry, sub.retrying),
                _cell(sub.dead_letter, sub.dead_letter.messages),
                _cell(queue, queue.consumers),
                _rate(queue.publish_rate) if queue.exists else "-",
                _rate(queue.deliver_rate) if queue.exists else "-",
                _rate(queue.ack_rate) if queue.exists else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f'rabbitform status of vhost "{report.vhost}"', ""]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(widths[i]) for i, cell in enumerate(row) if i]
        lines.append("  ".join(cells).rstrip())
    if report.events:
        lines.append("")
        for event in report.events:
            if not event.exchange_exists:
                where = "exchange missing"
            elif event.queues:
                where = f"bound to {len(event.queues)} queue(s)"
            else:
                where = "NOTHING BOUND"
            lines.append(f"{event.exchange}: {event.message_class} [{event.routing_key}]: {where}")
    for warning in report.warnings:
        lines.append(f"Warning: {warning}")
    return "\n".join(lines) + "\n"


def render_status_json(report: StatusReport, problems: list[str] | None = None) -> str:
    data = report.to_dict()
    if problems is not None:
        data["problems"] = problems
    return json.dumps(data, indent=2) + "\n"
