"""Signed-in users: an unguessable token in an HttpOnly, SameSite=Strict cookie names a session
held in server memory (never on disk) with the user's credentials and a CSRF token."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COOKIE = "rabbitform_session"
IDLE_TIMEOUT = 8 * 3600.0  # seconds without a request before a session ends


@dataclass
class Session:
    token: str
    user: str
    password: str = field(repr=False)
    tags: tuple[str, ...]
    csrf_token: str
    last_seen: float
    resources: dict[str, Any] = field(default_factory=dict, repr=False)  # per-user clients, closed at the end

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given), self.csrf_token)

    def close(self) -> None:
        for resource in self.resources.values():
            close = getattr(resource, "close", None)
            if close is not None:
                close()
        self.resources.clear()


class SessionStore:
    """Thread-safe; a session idle longer than `idle_timeout` is gone."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str, password: str, tags: tuple[str, ...] = ()) -> Session:
        session = Session(secrets.token_urlsafe(32), user, password, tags, secrets.token_urlsafe(32), self._clock())
        with self._lock:
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout:
                del self._sessions[token]
                expired = session
            else:
                session.last_seen = now
                return session
        expired.close()
        return None

    def end(self, token: str | None) -> None:
        with self._lock:
            session = self._sessions.pop(token or "", None)
        if session is not None:
            session.close()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def session_cookie(token: str, secure: bool) -> str:
    """The Set-Cookie value: HttpOnly (no script reads it), SameSite=Strict (no other site sends it)."""
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


def cleared_cookie(secure: bool) -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" + ("; Secure" if secure else "")


def token_from_cookies(header: str | None) -> str | None:
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None
