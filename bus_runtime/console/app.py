"""The console as a WSGI application: the JSON API and the pages that use it.

Authentication: `POST /login` checks the credentials with the broker (`/api/whoami`) and opens a
session; the API answers 401 without one. Every change (`POST` other than `/login`) carries the
session's CSRF token in `X-CSRF-Token` (403 without it). Pages are shells: console.js fills them
from the API with `textContent`, so nothing a message holds is ever parsed as HTML.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import jinja2

from bus_runtime.console.audit import AuditLog
from bus_runtime.console.broker import MAX_MESSAGES, BrokerConfig, ConsoleError, UserBroker, whoami
from bus_runtime.console.sessions import Session, SessionStore, cleared_cookie, session_cookie, token_from_cookies
from bus_runtime.console.snapshots import Snapshot

StartResponse = Callable[..., Any]
MAX_BODY = 1 << 20
PAGES = {
    "/": ("bus.html.j2", "Bus"),
    "/dead-letters": ("dead_letters.html.j2", "Dead letters"),
    "/dead-letters/group": ("group.html.j2", "Dead-letter group"),
    "/audit": ("audit.html.j2", "Audit trail"),
}
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, document: Any) -> Response:
    return Response(status, json.dumps(document, ensure_ascii=False).encode(), headers=[("Cache-Control", "no-store")])


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _redirect(location: str, *cookies: str) -> Response:
    return Response(303, b"", "text/plain", [("Location", location), *(("Set-Cookie", c) for c in cookies)])


_REASONS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ConsoleApp:
    """`config` says where the broker is; `audit` keeps the trail; `secure` marks cookies Secure (TLS)."""

    def __init__(
        self,
        config: BrokerConfig,
        audit: AuditLog,
        *,
        secure: bool = False,
        sessions: SessionStore | None = None,
        broker_factory: Callable[[BrokerConfig, str, str], UserBroker] = UserBroker,
    ) -> None:
        self.config = config
        self.audit = audit
        self.secure = secure
        self.sessions = sessions or SessionStore()
        self.broker_factory = broker_factory
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="console-snapshot")
        self._graph: dict[str, Any] | None = None
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("bus_runtime.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.handle(environ)
        except ConsoleError as exc:
            response = _error(exc.status, str(exc))
        except Exception as exc:  # a bug must not leak a traceback or a secret to the page
            response = _error(500, f"unexpected {type(exc).__name__} in the console (see its log)")
            environ["wsgi.errors"].write(f"console: unexpected {type(exc).__name__}: {exc}\n")
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))]
        headers += SECURITY_HEADERS + response.headers
        start_response(f"{response.status} {_REASONS.get(response.status, 'Error')}", headers)
        return [response.body]

    def handle(self, environ: dict[str, Any]) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        session = self.sessions.get(token_from_cookies(environ.get("HTTP_COOKIE")))
        if method == "POST" and not _same_origin(environ):
            return _error(403, "a request from another site's page is refused")
        if path.startswith("/static/") and method == "GET":
            return self._static(path.removeprefix("/static/"))
        if path == "/login":
            if method == "POST":
                return self._login(environ)
            return self._page_login(None, 200) if session is None else _redirect("/")
        if path == "/logout" and method == "POST":
            return self._logout(environ, session)
        if path in PAGES and method == "GET":
            return self._page(path, session)
        if path.startswith("/api/"):
            return self._api(method, path.removeprefix("/api"), query, environ, session)
        return _error(404, f"no page {path}")

    # ------------------------------------------------------------------ sign-in

    def _login(self, environ: dict[str, Any]) -> Response:
        form = {k: v[-1] for k, v in parse_qs(_read_body(environ).decode("utf-8", "replace")).items()}
        user, password = form.get("username", ""), form.get("password", "")
        if not user or not password:
            return self._page_login("Give a user name and a password.", 401)
        try:
            tags = whoami(self.config, user, password)
        except ConsoleError as exc:
            message = "Wrong user name or password (the broker refused them)." if exc.status == 401 else str(exc)
            return self._page_login(message, exc.status)
        session = self.sessions.create(user, password, tags)
        self._snapshot(session, "status").refresh()  # the bus page asks for both next
        self._snapshot(session, "groups").refresh()
        return _redirect("/", session_cookie(session.token, self.secure))

    def _logout(self, environ: dict[str, Any], session: Session | None) -> Response:
        if session is not None:
            given = environ.get("HTTP_X_CSRF_TOKEN")
            if given is None:
                form = parse_qs(_read_body(environ).decode("utf-8", "replace"))
                given = form.get("csrf_token", [""])[-1]
            if not session.csrf_ok(given):
                return _error(403, "missing or wrong CSRF token")
            self.sessions.end(session.token)
        return _redirect("/login", cleared_cookie(self.secure))

    # ------------------------------------------------------------------ pages

    def _render(self, template: str, status: int, **values: Any) -> Response:
        context = {"vhost": self.config.spec.vhost, "broker": self.config.management_url, **values}
        body = self.templates.get_template(template).render(**context).encode()
        return Response(status, body, "text/html; charset=utf-8", [("Cache-Control", "no-store")])

    def _page_login(self, error: str | None, status: int) -> Response:
        return self._render("login.html.j2", status, error=error, title="Sign in", user=None)

    def _page(self, path: str, session: Session | None) -> Response:
        if session is None:
            return _redirect("/login")
        template, title = PAGES[path]
        return self._render(template, 200, title=title, user=session.user)

    def _static(self, name: str) -> Response:
        if "/" in name or name.startswith("."):
            return _error(404, "no such asset")
        try:
            data = resources.files("bus_runtime.console").joinpath("static").joinpath(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return _error(404, "no such asset")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return Response(200, data, kind, [("Cache-Control", "max-age=300")])

    # ------------------------------------------------------------------ JSON API

    def _broker(self, session: Session) -> UserBroker:
        broker: UserBroker | None = session.resources.get("broker")
        if broker is None:
            broker = session.resources["broker"] = self.broker_factory(self.config, session.user, session.password)
        return broker

    def _snapshot(self, session: Session, name: str) -> Snapshot[Any]:
        """The session's latest status or groups (read as its user), refreshed in the background."""
        snapshot: Snapshot[Any] | None = session.resources.get(name)
        if snapshot is None:
            broker = self._broker(session)
            load = broker.status if name == "status" else broker.groups
            snapshot = session.resources[name] = Snapshot(load, self.executor)
        return snapshot

    def graph(self, broker: UserBroker) -> dict[str, Any]:
        if self._graph is None:
            self._graph = broker.graph()
        return self._graph

    def _api(
        self, method: str, path: str, query: dict[str, str], environ: dict[str, Any], session: Session | None
    ) -> Response:
        if session is None:
            return _error(401, "sign in first (POST /login)")
        if method == "POST":
            if not session.csrf_ok(environ.get("HTTP_X_CSRF_TOKEN")):
                return _error(403, "missing or wrong CSRF token (send the session's csrf_token in X-CSRF-Token)")
            if path in ("/dead-letters/replay", "/dead-letters/purge"):
                return self._change(session, path.rsplit("/", 1)[1], _json_body(environ))
            return _error(404, f"no API POST /api{path}")
        if method != "GET":
            return _error(405, f"{method} is not allowed here")
        broker = self._broker(session)
        if path == "/session":
            return _json(200, {"user": session.user, "csrf_token": session.csrf_token, "tags": list(session.tags)})
        if path == "/status":
            report, age = self._snapshot(session, "status").get()
            return _json(200, {**report, "graph": self.graph(broker), "age_seconds": round(age, 1)})
        if path == "/dead-letters":
            groups, age = self._snapshot(session, "groups").get()
            return _json(200, {"groups": groups, "age_seconds": round(age, 1)})
        if path == "/dead-letters/messages":
            subscriber = query.get("subscriber") or ""
            if not subscriber:
                return _error(400, "give ?subscriber=")
            limit = _limit(query.get("limit"))
            return _json(200, broker.messages(subscriber, query.get("error_type") or None, limit))
        if path == "/audit":
            return _json(200, {"entries": self.audit.entries(_limit(query.get("limit"), 500, 10_000))})
        return _error(404, f"no API GET /api{path}")

    def _change(self, session: Session, action: str, body: dict[str, Any]) -> Response:
        subscriber, error_type, ids = body.get("subscriber"), body.get("error_type"), body.get("message_ids")
        if not isinstance(subscriber, str) or not subscriber or not isinstance(error_type, str) or not error_type:
            raise ConsoleError(400, 'give {"subscriber": ..., "error_type": ...} (and "message_ids": [...] for some)')
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids):
            raise ConsoleError(400, '"message_ids" must be a non-empty list of message ids')
        broker = self._broker(session)
        label = subscriber
        try:
            label = broker.name_of(broker.target(subscriber))
            run = broker.replay if action == "replay" else broker.purge
            count = run(subscriber, error_type, ids or ())
        except ConsoleError as exc:
            verdict = "refused" if exc.status in (401, 403) else "failed"
            self.audit.record(session.user, action, label, error_type, len(ids) if ids else None, f"{verdict}: {exc}")
            raise
        self.audit.record(session.user, action, label, error_type, count, "ok")
        self._snapshot(session, "groups").update(lambda rows: _taken(rows, label, error_type, count))
        return _json(200, {"replayed" if action == "replay" else "purged": count})


def _taken(rows: list[dict[str, Any]], subscriber: str, error_type: str, count: int) -> list[dict[str, Any]]:
    """The groups once `count` dead letters of one group are gone (until the next read says more)."""
    kept = []
    for row in rows:
        if row["subscriber"] == subscriber and row["error_type"] == error_type:
            row = {**row, "count": row["count"] - count}
            if row["count"] <= 0:
                continue
        kept.append(row)
    return kept


def _same_origin(environ: dict[str, Any]) -> bool:
    """Browsers name the page a POST comes from: another site's page may not sign anyone in
    (login CSRF) or act; clients that send no Origin (scripts) are judged by their cookie and token."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin:
        return True
    return origin.partition("://")[2].rstrip("/") == environ.get("HTTP_HOST", "")


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise ConsoleError(413, "request body too large")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(_read_body(environ) or b"{}")
    except ValueError:
        raise ConsoleError(400, "the body is not JSON") from None
    if not isinstance(document, dict):
        raise ConsoleError(400, "the body must be a JSON object")
    return document


def _limit(value: str | None, default: int = 100, most: int = MAX_MESSAGES) -> int:
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= most:
        raise ConsoleError(400, f"limit must be a whole number from 1 to {most}")
    return int(value)
