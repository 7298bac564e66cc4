"""The console's JSON API with an HTTP client, against the real broker."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from bus_runtime.console.app import ConsoleApp
from bus_runtime.console.audit import AuditLog
from bus_runtime.console.broker import BrokerConfig, UserBroker
from bus_runtime.console.server import build_server
from tests.conftest import AMQP_HOST, AMQP_PORT, PASSWORD, USER
from tests.console.forwarder import Forwarder
from tests.console.support import VIEWER_PASSWORD, Console, signed_in
from tests.console.webdriver import wait_for

pytestmark = pytest.mark.integration
SMTP = {"subscriber": "petisco/send_mail_handler", "error_type": "SmtpDown"}


def groups(client: requests.Session, console: Console) -> list[dict]:
    response = client.get(f"{console.url}/api/dead-letters")
    assert response.status_code == 200, response.text
    return response.json()["groups"]


def test_sign_in_session_and_the_guards_of_every_change(console: Console) -> None:
    wrong = requests.post(f"{console.url}/login", data={"username": USER, "password": "nope"}, allow_redirects=False)
    assert wrong.status_code == 401
    assert requests.get(f"{console.url}/api/dead-letters").status_code == 401
    assert requests.post(f"{console.url}/api/dead-letters/replay", json=SMTP).status_code == 401

    client = requests.Session()
    signed = client.post(f"{console.url}/login", data={"username": USER, "password": PASSWORD}, allow_redirects=False)
    assert signed.status_code == 303
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = client.get(f"{console.url}/api/session").json()
    assert session["user"] == USER and len(session["csrf_token"]) >= 32

    assert client.post(f"{console.url}/api/dead-letters/replay", json=SMTP).status_code == 403
    bad = client.post(f"{console.url}/api/dead-letters/purge", json=SMTP, headers={"X-CSRF-Token": "forged"})
    assert bad.status_code == 403 and "CSRF" in bad.json()["error"]

    assert client.post(f"{console.url}/logout", headers={"X-CSRF-Token": session["csrf_token"]}).status_code == 200
    assert client.get(f"{console.url}/api/session").status_code == 401


def test_groups_messages_replay_of_selected_ids_purge_and_the_audit_trail(console: Console) -> None:
    client, csrf = signed_in(console)
    found = wait_for(lambda: [g for g in groups(client, console) if g["error_type"] == "SmtpDown"], "the group", 30)
    assert found[0]["subscriber"] == "petisco/send_mail_handler" and found[0]["count"] == 3
    assert found[0]["oldest"] == found[0]["newest"] == "2026-12-04T03:00:00+00:00"
    assert {(g["subscriber"], g["error_type"]) for g in groups(client, console)} >= {
        ("petisco/send_mail_handler", "ValueError"),
        ("petisco/welcome_handler", "TemplateError"),
    }

    # the handler's name alone works too
    listed = client.get(
        f"{console.url}/api/dead-letters/messages",
        params={"subscriber": "send_mail_handler", "error_type": "SmtpDown", "limit": "2"},
    ).json()
    assert [m["id"] for m in listed["messages"]] == ["smtp-0", "smtp-1"]
    assert listed["messages"][0]["headers"]["rabbitform-error-type"] == "SmtpDown"
    assert '"id": "smtp-0"' in listed["messages"][0]["body"]

    headers = {"X-CSRF-Token": csrf}
    replayed = client.post(
        f"{console.url}/api/dead-letters/replay", json={**SMTP, "message_ids": ["smtp-1"]}, headers=headers
    )
    assert replayed.json() == {"replayed": 1}
    left = client.get(f"{console.url}/api/dead-letters/messages", params=SMTP).json()["messages"]
    assert [m["id"] for m in left] == ["smtp-0", "smtp-2"]

    viewer, viewer_csrf = signed_in(console, console.viewer, VIEWER_PASSWORD)
    assert viewer.get(f"{console.url}/api/dead-letters/messages", params=SMTP).status_code == 200  # may look
    refused = viewer.post(f"{console.url}/api/dead-letters/purge", json=SMTP, headers={"X-CSRF-Token": viewer_csrf})
    assert refused.status_code == 403
    assert "ACCESS_REFUSED" in refused.json()["error"] and console.viewer in refused.json()["error"]

    purged = client.post(f"{console.url}/api/dead-letters/purge", json=SMTP, headers=headers)
    assert purged.json() == {"purged": 2}

    entries = client.get(f"{console.url}/api/audit").json()["entries"]
    assert [(e["user"], e["action"], e["count"], e["result"][:7]) for e in entries[:3]] == [
        (USER, "purge", 2, "ok"),
        (console.viewer, "purge", None, "refused"),
        (USER, "replay", 1, "ok"),
    ]
    assert set(entries[0]) == {"at", "user", "action", "subscriber", "error_type", "count", "result"}
    # kept across restarts: a new console on the same trail reads it back
    assert AuditLog(console.audit_path).entries()[:3] == entries[:3]


def test_a_listing_is_never_emptied_by_a_refresh_of_the_groups_reading_the_same_queue(console: Console) -> None:
    """RabbitMQ cannot peek: a read holds a queue's messages unacked, and a second reader of the
    same queue at that moment sees it empty. The console's reads of one queue take turns."""
    config = BrokerConfig(console.spec, console_management_url(), f"amqp://{AMQP_HOST}:{AMQP_PORT}")
    broker = UserBroker(config, USER, PASSWORD)
    stop = threading.Event()

    def refresh_groups() -> None:
        while not stop.is_set():
            broker.groups()

    refresher = threading.Thread(target=refresh_groups, daemon=True)
    refresher.start()
    try:
        seen = [len(broker.messages("petisco/send_mail_handler", None, 50)["messages"]) for _ in range(60)]
    finally:
        stop.set()
        refresher.join(30)
        broker.close()
    assert min(seen) > 0, seen


def test_an_unreachable_broker_is_named_and_the_console_recovers(console: Console, tmp_path: Path) -> None:
    upstream = urlparse(console_management_url())
    forwarder = Forwarder(upstream.port or 15672)
    config = BrokerConfig(console.spec, f"http://127.0.0.1:{forwarder.port}", f"amqp://{AMQP_HOST}:{AMQP_PORT}")
    server = build_server(ConsoleApp(config, AuditLog(tmp_path / "audit.jsonl")), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        down = requests.post(f"{url}/login", data={"username": USER, "password": PASSWORD}, allow_redirects=False)
        assert down.status_code == 503
        assert f"127.0.0.1:{forwarder.port}" in down.text and PASSWORD not in down.text

        forwarder.start()
        client = requests.Session()
        signed = client.post(f"{url}/login", data={"username": USER, "password": PASSWORD}, allow_redirects=False)
        assert signed.status_code == 303
        assert client.get(f"{url}/api/status").status_code == 200

        forwarder.stop()  # the page polls; the next read after the last good one fails
        answers = wait_for(lambda: [r for r in [client.get(f"{url}/api/status")] if r.status_code == 503], "503", 20)
        lost = answers[0]
        assert f"127.0.0.1:{forwarder.port}" in lost.json()["error"] and "check" in lost.json()["error"]

        forwarder.start()
        wait_for(lambda: client.get(f"{url}/api/status").status_code == 200, "the console to recover", 20)
    finally:
        forwarder.stop()
        server.shutdown()
        server.server_close()


def console_management_url() -> str:
    from tests.conftest import MANAGEMENT_URL

    return MANAGEMENT_URL


def test_over_tls_the_cookie_is_secure(console: Console, tmp_path: Path) -> None:
    import shutil

    from tests.integration.tls_broker import make_certificates

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    make_certificates(tmp_path)
    config = BrokerConfig(console.spec, console_management_url(), f"amqp://{AMQP_HOST}:{AMQP_PORT}")
    app = ConsoleApp(config, AuditLog(tmp_path / "audit.jsonl"), secure=True)
    server = build_server(app, "127.0.0.1", 0, str(tmp_path / "server.pem"), str(tmp_path / "server.key"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_port}"
        page = requests.get(f"{url}/login", verify=str(tmp_path / "ca.pem"), timeout=10)
        assert page.status_code == 200 and "Sign in" in page.text
        signed = requests.post(
            f"{url}/login",
            data={"username": USER, "password": PASSWORD},
            verify=str(tmp_path / "ca.pem"),
            allow_redirects=False,
            timeout=10,
        )
        assert signed.status_code == 303 and "; Secure" in signed.headers["Set-Cookie"]
    finally:
        server.shutdown()
        server.server_close()
