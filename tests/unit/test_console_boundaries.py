"""Whatever a client sends the console's API, it answers a JSON error or a result, never a
500 or a traceback (hypothesis drives the WSGI app with a stand-in for the broker)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bus_runtime.console.app import ConsoleApp
from bus_runtime.console.audit import AuditLog
from bus_runtime.console.broker import BrokerConfig, ConsoleError
from bus_runtime.deadletters.targets import resolve
from topology.spec.loader import load_spec

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
SPEC = load_spec(ALICE)


class StandInBroker:
    """Answers like UserBroker for a spec, without a broker."""

    def __init__(self, config: BrokerConfig, user: str, password: str) -> None:
        self.spec = config.spec

    def target(self, subscriber: str) -> Any:
        try:
            return resolve(self.spec, subscriber)
        except Exception as exc:
            raise ConsoleError(404, str(exc)) from None

    def name_of(self, target: Any) -> str:
        return str(target.label)

    def replay(self, subscriber: str, error_type: str, ids: Any = ()) -> int:
        self.target(subscriber)
        return len(list(ids))

    purge = replay

    def messages(self, subscriber: str, error_type: str | None, limit: int) -> dict[str, Any]:
        self.target(subscriber)
        return {"messages": []}

    def status(self) -> dict[str, Any]:
        return {"subscribers": []}

    def groups(self) -> list[dict[str, Any]]:
        return []

    def graph(self) -> dict[str, Any]:
        return {"nodes": [], "edges": []}

    def close(self) -> None:
        pass


def call(app: ConsoleApp, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, bytes]:
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        **{"HTTP_" + k.upper(): v for k, v in headers.items()},
    }
    seen: list[str] = []
    chunks = app(environ, lambda status, _headers: seen.append(status))
    return int(seen[0].split()[0]), b"".join(chunks)


def make_app(tmp: Path) -> tuple[ConsoleApp, str, str]:
    app = ConsoleApp(BrokerConfig(SPEC, "http://127.0.0.1:1", "amqp://127.0.0.1:1"), AuditLog(tmp / "a.jsonl"))
    app.broker_factory = StandInBroker  # type: ignore[assignment]
    session = app.sessions.create("alice", "secret")
    return app, f"rabbitform_session={session.token}", session.csrf_token


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"subscriber": json_values | st.sampled_from(["send_mail_handler", "store", "petisco/nope"])},
        optional={"error_type": json_values, "message_ids": json_values},
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(["replay", "purge"]), body=bodies)
def test_changes_answer_a_result_or_a_json_error(tmp_path: Path, action: str, body: bytes) -> None:
    app, cookie, csrf = make_app(tmp_path)
    status, answer = call(app, "POST", f"/api/dead-letters/{action}", body, cookie=cookie, x_csrf_token=csrf)
    assert status in (200, 400, 404), answer
    document = json.loads(answer)
    assert set(document) in ({"error"}, {"replayed"}, {"purged"})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(["subscriber", "error_type", "limit"]), st.text(max_size=12)))
@example(query={"limit": "\u00b2"})  # a digit to str.isdigit, not to int()
def test_reads_answer_a_result_or_a_json_error(tmp_path: Path, query: dict[str, str]) -> None:
    app, cookie, _csrf = make_app(tmp_path)
    for path in ("/api/dead-letters/messages", "/api/audit", "/api/status", "/api/dead-letters"):
        status, answer = call(app, "GET", f"{path}?{urlencode(query)}", cookie=cookie)
        assert status in (200, 400, 404), answer
        json.loads(answer)
    status, _ = call(app, "GET", "/api/dead-letters", cookie="rabbitform_session=" + query.get("limit", "x"))
    assert status == 401


def test_a_post_from_another_sites_page_is_refused(tmp_path: Path) -> None:
    app, cookie, csrf = make_app(tmp_path)
    body = b"username=alice&password=secret"
    status, answer = call(app, "POST", "/login", body, origin="http://evil.example", host="127.0.0.1:8088")
    assert status == 403 and b"another site" in answer
    body = json.dumps({"subscriber": "send_mail_handler", "error_type": "SmtpDown"}).encode()
    same = {"origin": "http://127.0.0.1:8088", "host": "127.0.0.1:8088", "cookie": cookie, "x_csrf_token": csrf}
    assert call(app, "POST", "/api/dead-letters/replay", body, **same)[0] == 200
