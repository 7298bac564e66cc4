"""The audit trail: who replayed or purged what, when, and how it went. One JSON object a line,
appended and flushed per entry, so it outlives restarts and a crash loses at most the line
being written."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "RABBITFORM_STATE_DIR"
AUDIT_FILE = "console-audit.jsonl"


def default_state_dir(environ: dict[str, str] | None = None) -> Path:
    """$RABBITFORM_STATE_DIR, else $XDG_STATE_HOME/rabbitform, else ~/.local/state/rabbitform."""
    env = dict(os.environ) if environ is None else environ
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "rabbitform"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AuditLog:
    FIELDS = ("at", "user", "action", "subscriber", "error_type", "count", "result")

    def __init__(self, path: str | os.PathLike[str], now: Callable[[], datetime] = _utc_now) -> None:
        self.path = Path(path)
        self._now = now
        self._lock = threading.Lock()

    def check_writable(self) -> None:
        """At start-up: a trail we cannot write is an error now, not after the first replay."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8"):
            pass

    def record(
        self, user: str, action: str, subscriber: str, error_type: str | None, count: int | None, result: str
    ) -> dict[str, Any]:
        entry = {
            "at": self._now().isoformat(),
            "user": user,
            "action": action,
            "subscriber": subscriber,
            "error_type": error_type,
            "count": count,
            "result": result,
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as stream:
                stream.write(line)
                stream.flush()
                os.fsync(stream.fileno())
        return entry

    def entries(self, limit: int = 500) -> list[dict[str, Any]]:
        """The newest `limit` entries, newest first; a damaged line is skipped, never fatal."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found: list[dict[str, Any]] = []
        for line in reversed(lines):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                found.append({name: item.get(name) for name in self.FIELDS})
            if len(found) >= limit:
                break
        return found
