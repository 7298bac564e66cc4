"""The seed's "Show me this example working", and the spec-driven CLI, against the real broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import requests

from examples.rabbitmq import configure, publish
from tests.integration.runtime_support import assert_all_empty
from tests.integration.support import RABBITFORM, ROOT, Process, depth, import_topology, wait_for
from topology.spec.loader import load_spec

QUEUE = "alice.petisco.1.event.user.created.send_mail_handler"
PUBLISH_ONE = ["--event", "UserCreated", "--attributes", '{"user_id": "1"}']


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, management_url: str, amqp_url: str) -> dict[str, str]:
    monkeypatch.setenv("RABBITMQ_URL", amqp_url)
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_configure_publish_consume_examples(
    env: dict[str, str], management_url: str, vhost: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert configure.main() == 0
    assert "added" in capsys.readouterr().out
    assert publish.main(["--count", "3"]) == 0
    assert depth(amqp_url, QUEUE) == 3 and depth(amqp_url, "store") == 3
    consumer = Process([sys.executable, "examples/rabbitmq/consume.py"], env)
    try:
        wait_for(
            lambda: (
                consumer.count("send_mail_handler: welcome mail") == 3 and consumer.count("event_store: stored") == 3
            ),
            timeout=20,
            what="3 mails and 3 stored events",
        )
        assert consumer.count("welcome mail to user 42") == 1
        assert consumer.count("'correlation_id': 'c-1'") + consumer.count("correlation_id='c-1'") == 1
    finally:
        code = consumer.terminate()
    assert code == 0, "".join(consumer.lines)
    assert "Traceback" not in "".join(consumer.lines)
    assert_all_empty(management_url, amqp_url, vhost)


def test_cli_publish_and_consume_from_the_spec(
    env: dict[str, str], management_url: str, vhost: str, amqp_url: str
) -> None:
    import_topology(management_url, vhost, load_spec(ROOT / "specs" / "alice.yaml"))
    published = subprocess.run(
        [RABBITFORM, "publish", "specs/alice.yaml", "--vhost", vhost, "--service", "petisco", *PUBLISH_ONE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert published.returncode == 0, published.stderr
    assert "confirmed" in published.stdout and "alice.petisco.1.event.user.created" in published.stdout
    consumer = Process([RABBITFORM, "consume", "specs/alice.yaml", "--vhost", vhost], env)
    try:
        wait_for(
            lambda: consumer.count("welcome mail to user 1") == 1 and consumer.count("event_store: stored") == 1,
            timeout=20,
            what="the spec's handlers ran",
        )
        started = [
            line for line in consumer.lines if line.startswith(f"consuming {QUEUE} on vhost {vhost!r} at amqp://")
        ]
        assert len(started) == 1 and started[0].rstrip().endswith("with send_mail_handler (max_retries 5)")
    finally:
        code = consumer.terminate()
    assert code == 0, "".join(consumer.lines)
    assert_all_empty(management_url, amqp_url, vhost)


def test_consume_serves_prometheus_metrics(env: dict[str, str], management_url: str, vhost: str) -> None:
    import_topology(management_url, vhost, load_spec(ROOT / "specs" / "alice.yaml"))
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    consumer = Process([RABBITFORM, "consume", "specs/alice.yaml", "--vhost", vhost, "--metrics-port", str(port)], env)
    try:
        wait_for(lambda: consumer.count("metrics on http://127.0.0.1:") == 1, timeout=20, what="the metrics server")
        published = run_cli(
            ["publish", "specs/alice.yaml", "--vhost", vhost, "--service", "petisco", *PUBLISH_ONE], env
        )
        assert published.returncode == 0, published.stderr
        handled = (
            'rabbitform_messages_handled_total{event="user.created",outcome="ack",subscriber="send_mail_handler"} 1.0'
        )
        wait_for(
            lambda: handled in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text,
            timeout=20,
            what="the handled counter of send_mail_handler",
        )
    finally:
        consumer.terminate()


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RABBITFORM, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


def test_cli_user_mistakes_are_one_line_errors(env: dict[str, str], vhost: str) -> None:
    unknown = run_cli(["publish", "specs/alice.yaml", "--vhost", vhost, "--service", "petisco", "--event", "Nope"], env)
    assert unknown.returncode == 1
    assert "'Nope' is not declared for service 'petisco'" in unknown.stderr
    bad_json = run_cli(
        ["publish", "specs/alice.yaml", "--service", "petisco", "--event", "UserCreated", "--attributes", "{"], env
    )
    assert bad_json.returncode == 1 and "--attributes is not JSON" in bad_json.stderr
    unroutable = run_cli(
        ["publish", "specs/alice.yaml", "--vhost", vhost, "--service", "petisco", "--event", "UserCreated"], env
    )
    assert unroutable.returncode == 1  # no topology: no exchange, and the error says what to run
    assert "exchange 'alice.petisco' does not exist on vhost" in unroutable.stderr
    assert "`rabbitform plan specs/alice.yaml` then `rabbitform apply specs/alice.yaml`" in unroutable.stderr
    missing = run_cli(["consume", "specs/alice.yaml", "--vhost", vhost], env)
    assert missing.returncode == 1
    assert "rabbitform apply" in missing.stderr and QUEUE in missing.stderr
    for result in (unknown, bad_json, unroutable, missing):
        assert "Traceback" not in result.stderr
