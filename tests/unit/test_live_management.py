"""The management client: URLs without credentials, encoding, and one clear error per failure.

Failures are produced by a tiny HTTP server on loopback that answers what each test asks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from topology.broker.management import (
    AuthenticationFailed,
    BrokerServerError,
    BrokerTimeout,
    BrokerUnreachable,
    ManagementClient,
    PermissionDenied,
    RequestRejected,
    strip_credentials,
)


class Broker:
    """Answers every request with `status` and `body` after `delay` seconds (the liveness
    probe `/api/whoami` after `probe_delay`, when set); counts requests."""

    def __init__(self) -> None:
        self.status = 200
        self.body: object = {}
        self.delay = 0.0
        self.probe_delay: float | None = None
        self.paths: list[str] = []
        self.overview: object | None = None  # when set, GET /api/overview answers 200 with it


@pytest.fixture
def fake() -> Iterator[tuple[Broker, str]]:
    broker = Broker()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            broker.paths.append(self.path)
            probe = self.path.startswith("/api/whoami") and broker.probe_delay is not None
            time.sleep(broker.probe_delay if probe and broker.probe_delay is not None else broker.delay)
            overview = broker.overview is not None and self.path == "/api/overview"
            payload = json.dumps(broker.overview if overview else broker.body).encode()
            self.send_response(200 if overview else broker.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield broker, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_credentials_are_stripped_from_every_shown_url() -> None:
    assert strip_credentials("https://admin:s3cret@rabbit.example:15671/mgmt/") == "https://rabbit.example:15671/mgmt"
    client = ManagementClient("http://admin:p%40ss@localhost:15672/")
    assert client.display_url == "http://localhost:15672"
    assert client.user == "admin"
    assert "p@ss" not in repr(client) and "admin" not in repr(client)


def test_from_env_prefers_the_url_then_the_environment_then_guest() -> None:
    env = {"RABBITMQ_MANAGEMENT_URL": "http://rabbit:15672", "RABBITMQ_USER": "u", "RABBITMQ_PASSWORD": "p"}
    assert ManagementClient.from_env(environ=env).display_url == "http://rabbit:15672"
    assert ManagementClient.from_env(environ=env).user == "u"
    assert ManagementClient.from_env("http://x:y@other:1", environ=env).user == "x"
    default = ManagementClient.from_env(environ={})
    assert (default.display_url, default.user) == ("http://localhost:15672", "guest")


def test_every_path_segment_is_percent_encoded() -> None:
    client = ManagementClient()
    assert client.path("queues", "/", "a b#c") == "/api/queues/%2F/a%20b%23c"
    assert client.path("bindings", "v", "e", "x", "q", "y", "a.%23") == "/api/bindings/v/e/x/q/y/a.%2523"


def test_an_unreachable_broker_names_the_url_and_what_to_check() -> None:
    client = ManagementClient("http://user:pw@127.0.0.1:1", backoff=0, retries=1)
    with pytest.raises(BrokerUnreachable) as caught:
        client.get("overview")
    message = str(caught.value)
    assert message.startswith("cannot reach the RabbitMQ management API at http://127.0.0.1:1 (connection refused")
    assert "2 attempts" in message and "pw" not in message


def test_server_errors_are_retried_a_bounded_number_of_times(fake: tuple[Broker, str]) -> None:
    broker, url = fake
    broker.status, broker.body = 503, {"error": "unavailable", "reason": "node is booting"}
    with pytest.raises(BrokerServerError, match=r"failed \(HTTP 503: node is booting\).*check the broker's logs"):
        ManagementClient(url, backoff=0, retries=2).get("overview")
    assert len(broker.paths) == 3


def test_a_hung_broker_is_reported_once_the_liveness_probe_fails_too(fake: tuple[Broker, str]) -> None:
    broker, url = fake
    broker.delay = 30  # nothing answers: not the request, not the probe
    client = ManagementClient(url, timeout=0.2, backoff=0, retries=1)
    with pytest.raises(BrokerTimeout) as caught:
        client.get("definitions", "v")
    message = str(caught.value)
    assert message.startswith(f"the RabbitMQ management API at {url} stopped answering: GET {url}/api/definitions/v")
    assert "GET /api/whoami did not answer within 0.2 s (2 probes); the broker is down or hung" in message
    assert broker.paths.count("/api/definitions/v") == 1  # never retried: it may still be running


def test_a_slow_broker_that_answers_the_probe_is_waited_for(fake: tuple[Broker, str]) -> None:
    broker, url = fake
    broker.delay, broker.probe_delay, broker.body = 2.5, 0.0, {"ok": True}
    waits: list[tuple[str, float]] = []
    client = ManagementClient(url, timeout=1.0, backoff=0, on_wait=lambda what, seconds: waits.append((what, seconds)))
    assert client.get("definitions", "v") == {"ok": True}
    assert waits and waits[0][0] == f"GET {url}/api/definitions/v" and waits[0][1] >= 1.0
    assert broker.paths[0] == "/api/definitions/v" and "/api/whoami" in broker.paths


def test_401_and_403_say_what_to_check(fake: tuple[Broker, str]) -> None:
    broker, url = fake
    client = ManagementClient(url, "u", "secret-pw", backoff=0)
    broker.status, broker.body = 401, {"error": "not_authorized", "reason": "Login failed"}
    with pytest.raises(AuthenticationFailed, match="check the user and password") as caught:
        client.get("overview")
    assert "secret-pw" not in str(caught.value)
    broker.body = {"error": "not_authorised", "reason": "Not management user"}
    with pytest.raises(AuthenticationFailed, match="no management tag"):
        client.get("overview")
    broker.status, broker.body = 403, {"error": "not_authorised", "reason": "Access refused."}
    with pytest.raises(PermissionDenied, match=r"refused PUT /api/vhosts/new \(HTTP 403.*on the vhost"):
        client.put("vhosts", "new")
    broker.status, broker.body = 401, {"error": "not_authorised", "reason": "Not administrator user"}
    with pytest.raises(PermissionDenied, match=r"the user is not an administrator.*'administrator' tag"):
        client.get("definitions", "v")
    broker.body = {"error": "not_authorised", "reason": "Access refused."}
    with pytest.raises(PermissionDenied, match=r"refused PUT /api/queues/v/q \(HTTP 401: Access refused.\); check"):
        client.put("queues", "v", "q")
    assert len(broker.paths) == 5  # no retries for these


def test_404_is_none_when_allowed_and_other_4xx_are_rejections(fake: tuple[Broker, str]) -> None:
    broker, url = fake
    client = ManagementClient(url, backoff=0)
    broker.overview = {"management_version": "3.10.8"}
    broker.status, broker.body = 404, {"error": "Object Not Found", "reason": "Not Found"}
    assert client.get("vhosts", "missing", missing_ok=True) is None
    assert client.delete("queues", "v", "gone") is False
    broker.status, broker.body = 400, {"error": "bad_request", "reason": "queue 'q' in vhost 'v' not empty"}
    with pytest.raises(RequestRejected) as caught:
        client.delete("queues", "v", "q", params={"if-empty": "true"})
    assert (caught.value.status, caught.value.reason) == (400, "queue 'q' in vhost 'v' not empty")
    assert broker.paths[-1] == "/api/queues/v/q?if-empty=true"
