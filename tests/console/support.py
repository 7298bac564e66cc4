"""A console on its own vhost with a known set of dead letters, served on an ephemeral port."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika
import requests
import yaml

from benchmarks.raw_pika import declare_topology
from bus_runtime import retry
from bus_runtime.console.app import ConsoleApp
from bus_runtime.console.audit import AuditLog
from bus_runtime.console.broker import BrokerConfig
from bus_runtime.console.server import build_server
from tests.conftest import AMQP_HOST, AMQP_PORT, PASSWORD, USER
from topology import naming
from topology.compile.compiler import compile_spec
from topology.spec.loader import load_spec
from topology.spec.model import Spec

SPEC_TEXT = """\
organization: alice
vhost: {vhost}
defaults:
  queue_type: classic
  retry: {{delay_ms: 5000, max_retries: 5}}
services:
  petisco:
    events:
      UserCreated:
        version: 1
        subscribers:
          send_mail_handler:
            handler: examples.rabbitmq.handlers:send_mail_handler
          welcome_handler:
            handler: examples.rabbitmq.handlers:send_mail_handler
store:
  queue: store
  handler: examples.rabbitmq.handlers:event_store
"""
MAIL = "alice.petisco.1.event.user.created.send_mail_handler"
WELCOME = "alice.petisco.1.event.user.created.welcome_handler"
VIEWER_PASSWORD = "viewer-secret"
SCRIPT = "<script>document.title='pwned'</script>"


@dataclass
class Console:
    url: str
    vhost: str
    spec_file: Path
    spec: Spec
    amqp_url: str
    viewer: str
    audit_path: Path


def admin() -> requests.Session:
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    return session


def declare(amqp_url: str, spec: Spec) -> None:
    topology = compile_spec(spec)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        declare_topology(channel, topology)
    finally:
        connection.close()


def dead_letter(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str, message_id: str, error: str, text: str
) -> None:
    headers = {
        retry.ERROR_TYPE: error,
        retry.ERROR_MESSAGE: text,
        retry.DEAD_LETTER_REASON: retry.REASON_RETRIES_EXHAUSTED,
        retry.RETRY_COUNT: 5,
        retry.LAST_FAILURE_AT: "2026-12-04T03:00:00+00:00",
    }
    body = json.dumps({"data": {"id": message_id, "type": "user.created", "attributes": {"note": text}}})
    properties = pika.BasicProperties(delivery_mode=2, message_id=message_id, type="user.created", headers=headers)
    channel.basic_publish("", naming.dead_letter_queue(queue), body.encode(), properties)


def seed(amqp_url: str) -> None:
    """send_mail_handler: 3 SmtpDown and 1 ValueError; welcome_handler: one whose body and error
    message hold a <script> element."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for n in range(3):
            dead_letter(channel, MAIL, f"smtp-{n}", "SmtpDown", "smtp server down")
        dead_letter(channel, MAIL, "bad-0", "ValueError", "invalid address")
        dead_letter(channel, WELCOME, "xss-0", "TemplateError", SCRIPT)
    finally:
        connection.close()


@contextmanager
def console_on_fresh_vhost(tmp: Path, management_url: str) -> Iterator[Console]:
    """A vhost with the spec declared and seeded, a read-only `monitoring` user, and the console."""
    token = uuid.uuid4().hex[:8]
    vhost, viewer = f"test-console-{token}", f"viewer-{token}"
    path = quote(vhost, safe="")
    session = admin()
    session.put(f"{management_url}/api/vhosts/{path}", timeout=10).raise_for_status()
    session.put(
        f"{management_url}/api/permissions/{path}/{quote(USER, safe='')}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    session.put(
        f"{management_url}/api/users/{viewer}", json={"password": VIEWER_PASSWORD, "tags": "monitoring"}, timeout=10
    ).raise_for_status()
    session.put(
        f"{management_url}/api/permissions/{path}/{viewer}",
        json={"configure": "^$", "write": "^$", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    amqp_url = f"amqp://{USER}:{PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{path}"
    spec_file = tmp / "alice.yaml"
    spec_file.write_text(SPEC_TEXT.format(vhost=yaml.safe_dump(vhost).splitlines()[0]))
    spec = load_spec(spec_file)
    server = None
    try:
        declare(amqp_url, spec)
        seed(amqp_url)
        audit_path = tmp / "state" / "console-audit.jsonl"
        config = BrokerConfig(spec, management_url, f"amqp://{AMQP_HOST}:{AMQP_PORT}")
        app = ConsoleApp(config, AuditLog(audit_path))
        server = build_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield Console(f"http://127.0.0.1:{server.server_port}", vhost, spec_file, spec, amqp_url, viewer, audit_path)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        session.delete(f"{management_url}/api/vhosts/{path}", timeout=30)
        session.delete(f"{management_url}/api/users/{viewer}", timeout=10)


def signed_in(console: Console, user: str = USER, password: str = PASSWORD) -> tuple[requests.Session, str]:
    """An HTTP client with a session, and the session's CSRF token."""
    client = requests.Session()
    response = client.post(f"{console.url}/login", data={"username": user, "password": password}, allow_redirects=False)
    assert response.status_code == 303, response.text
    return client, client.get(f"{console.url}/api/session").json()["csrf_token"]
