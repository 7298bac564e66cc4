"""Dead letters for people (text) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bus_runtime.deadletters.model import DeadLetter, Summary
from bus_runtime.deadletters.ops import Outcome
from bus_runtime.retry import TRACEBACK


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "-"


def render_summaries(summaries: Sequence[Summary], vhost: str) -> str:
    header = ("subscriber", "dead", "oldest", "newest", "by error type", "by reason")
    rows = [header] + [
        (
            s.subscriber,
            str(s.count),
            _time(s.oldest),
            _time(s.newest),
            _counts(s.by_error_type),
            _counts(s.by_reason),
        )
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f'dead letters on vhost "{vhost}"', ""]
    for row in rows:
        lines.append(
            "  ".join(cell.rjust(widths[i]) if i == 1 else cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        )
    return "\n".join(lines) + "\n"


def render_letter(letter: DeadLetter) -> str:
    lines = [f"#{letter.position} {letter.message_type or '(no type)'} {letter.message_id or '(no id)'}"]
    lines.append(f"    routing key  {letter.routing_key}")
    lines.append(f"    error        {letter.error_type or '-'}: {letter.error_message or '-'}")
    lines.append(
        f"    reason       {letter.reason or '-'} after {letter.retry_count} retries, at {_time(letter.dead_lettered_at)}"
        + (f" (replayed {letter.replay_count}x)" if letter.replay_count else "")
    )
    if letter.handler or letter.host:
        where = f" on {letter.host}" + (f" (pid {letter.pid})" if letter.pid else "") if letter.host else ""
        lines.append(f"    handler      {letter.handler or '-'}{where}")
    if letter.first_failed_at:
        lines.append(f"    failed       first {_time(letter.first_failed_at)}, last {_time(letter.dead_lettered_at)}")
    if letter.attributes is not None:
        lines.append(f"    attributes   {json.dumps(letter.attributes, sort_keys=True, default=str)}")
    else:
        lines.append(f"    body         {letter.body_size} bytes, not a rabbitform message")
    for key, value in letter.rabbitform_headers().items():
        if key != TRACEBACK:
            lines.append(f"    {key}: {value}")
    if letter.traceback:
        lines.append("    traceback (last 4 KB):")
        lines.extend(f"      {line}" for line in letter.traceback.rstrip("\n").splitlines())
    return "\n".join(lines)


def render_letters(letters: Sequence[DeadLetter], queue: str) -> str:
    if not letters:
        return f"no matching dead letters in {queue}\n"
    return "\n".join(render_letter(letter) for letter in letters) + f"\n\n{len(letters)} dead letter(s) in {queue}\n"


def _listing(outcome: Outcome) -> str:
    return "".join(
        f"  {letter.message_type or '(no type)'} {letter.message_id or '(no id)'} "
        f"({letter.error_type or '-'}, {letter.reason or '-'})\n"
        for letter in outcome.selected
    )


def render_preview(outcome: Outcome, verb: str) -> str:
    """What a confirmation prompt shows: what would be done, from a dry run."""
    target = outcome.target
    where = f" to {target.queue}" if verb == "replay" else ""
    return f"This will {verb} {outcome.count} dead letter(s) of {target.label}{where}:\n" + _listing(outcome)


def render_outcome(outcome: Outcome, verb: str) -> str:
    """`verb` is `replay` or `purge`."""
    target = outcome.target
    where = f" to {target.queue}" if verb == "replay" else ""
    ids = _listing(outcome)
    if outcome.dry_run:
        head = f"Dry run: would {verb} {outcome.count} dead letter(s) of {target.label}{where}; nothing was moved.\n"
        return head + ids
    done = "Replayed" if verb == "replay" else "Purged"
    return (
        ids
        + f"{done} {outcome.count} dead letter(s) of {target.label}{where}; {outcome.left} left in {target.dead_letter_queue}.\n"
    )


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"
