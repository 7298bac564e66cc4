"""The console's pure parts: sessions, cookies, the audit trail, where it may listen, groups."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bus_runtime import retry
from bus_runtime.console.audit import AuditLog, default_state_dir
from bus_runtime.console.broker import GroupSelection, groups_of, message_view
from bus_runtime.console.server import check_binding
from bus_runtime.console.sessions import SessionStore, session_cookie, token_from_cookies
from bus_runtime.deadletters.model import DeadLetter
from bus_runtime.deadletters.targets import Target
from topology.errors import RabbitformError


def letter(position: int, error: str | None, at: str | None = None, message_id: str = "") -> DeadLetter:
    headers = {} if error is None else {retry.ERROR_TYPE: error}
    if at:
        headers[retry.LAST_FAILURE_AT] = at
    return DeadLetter(position, message_id or f"m{position}", "user.created", "rk", headers, body=b"<b>x</b>")


def test_sessions_expire_when_idle_and_check_their_csrf_token() -> None:
    now = [0.0]
    store = SessionStore(idle_timeout=60, clock=lambda: now[0])
    session = store.create("alice", "secret")
    assert store.get(session.token) is session
    assert session.csrf_ok(session.csrf_token) and not session.csrf_ok("x") and not session.csrf_ok(None)
    now[0] = 59
    assert store.get(session.token) is session  # seen: the idle clock restarts
    now[0] = 120
    assert store.get(session.token) is None
    assert "secret" not in repr(session)


def test_the_cookie_is_http_only_same_site_strict_and_secure_over_tls() -> None:
    assert session_cookie("t", secure=False) == "rabbitform_session=t; Path=/; HttpOnly; SameSite=Strict"
    assert session_cookie("t", secure=True).endswith("; Secure")
    assert token_from_cookies("a=b; rabbitform_session=tok; c=d") == "tok"
    assert token_from_cookies(None) is None


def test_the_audit_trail_survives_a_restart_and_a_damaged_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.jsonl"
    at = datetime(2026, 12, 4, 3, 0, tzinfo=timezone.utc)
    AuditLog(path, now=lambda: at).record("alice", "replay", "petisco/mail", "SmtpDown", 3, "ok")
    with path.open("a") as stream:
        stream.write("{not json\n")
    AuditLog(path, now=lambda: at).record("bob", "purge", "petisco/mail", "SmtpDown", None, "refused: no")
    entries = AuditLog(path).entries()
    assert [e["user"] for e in entries] == ["bob", "alice"]
    assert entries[1] == json.loads(path.read_text().splitlines()[0])
    assert default_state_dir({"RABBITFORM_STATE_DIR": "/srv/rf"}) == Path("/srv/rf")
    assert default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/rabbitform")


def test_it_listens_on_loopback_unless_tls_or_insecure_http_is_chosen() -> None:
    assert check_binding("127.0.0.1", tls=False, insecure_http=False) is None
    assert check_binding("::1", tls=False, insecure_http=False) is None
    assert check_binding("0.0.0.0", tls=True, insecure_http=False) is None
    with pytest.raises(RabbitformError, match="--tls-cert and --tls-key, or --insecure-http"):
        check_binding("0.0.0.0", tls=False, insecure_http=False)
    assert "unencrypted" in (check_binding("10.0.0.5", tls=False, insecure_http=True) or "")


def test_groups_by_error_type_with_oldest_and_newest() -> None:
    target = Target("send_mail_handler", "petisco", "q")
    letters = [
        letter(0, "SmtpDown", "2026-12-04T03:00:00+00:00"),
        letter(1, "SmtpDown", "2026-12-04T04:00:00+00:00"),
        letter(2, None),
    ]
    rows = groups_of(target, letters)
    assert [(r["error_type"], r["count"], r["oldest"], r["newest"]) for r in rows] == [
        ("SmtpDown", 2, "2026-12-04T03:00:00+00:00", "2026-12-04T04:00:00+00:00"),
        ("unknown", 1, None, None),
    ]
    assert rows[0]["subscriber"] == "petisco/send_mail_handler"
    only = GroupSelection(ids=frozenset({"m1"}), group="SmtpDown")
    assert [x.message_id for x in letters if only.matches(x)] == ["m1"]
    assert [x.message_id for x in letters if GroupSelection(group="unknown").matches(x)] == ["m2"]
    assert message_view(letters[0])["body"] == "<b>x</b>"  # text: the page puts it in with textContent


def test_a_snapshot_is_served_at_once_refreshed_when_old_and_raises_a_failed_read() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bus_runtime.console.snapshots import Snapshot

    now = [0.0]
    reads: list[int] = []
    failing = [False]

    def load() -> int:
        if failing[0]:
            raise ConnectionError("broker down")
        reads.append(1)
        return len(reads)

    with ThreadPoolExecutor(1) as pool:
        snapshot = Snapshot(load, pool, max_age=2, clock=lambda: now[0])
        assert snapshot.get() == (1, 0.0)  # the first read waits
        now[0] = 1
        assert snapshot.get() == (1, 1.0)  # young enough: no read
        now[0] = 3
        assert snapshot.get()[0] == 1  # old: served at once, a read starts
        snapshot.refresh().result()
        assert snapshot.get()[0] == 2
        failing[0] = True
        now[0] = 6
        with pytest.raises(ConnectionError):
            snapshot.get()  # the read it starts fails...
            snapshot.refresh().exception()
            snapshot.get()  # ...and says so
        failing[0] = False
        with pytest.raises(ConnectionError):
            snapshot.get()  # still the last word, while the next read runs
        snapshot.refresh().result()
        assert snapshot.get()[0] == 3  # recovered by itself


def test_ui_refuses_a_network_address_without_tls_and_half_a_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    from topology.cli.main import main

    alice = str(Path(__file__).resolve().parents[2] / "specs" / "alice.yaml")
    assert main(["ui", alice, "--host", "0.0.0.0"]) == 1
    assert "give --tls-cert and --tls-key, or --insecure-http" in capsys.readouterr().err
    assert main(["ui", alice, "--tls-cert", "cert.pem"]) == 1
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
