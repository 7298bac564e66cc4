"""`rabbitform doctor` against objects the tests create on the real broker (3.10), each test in
a vhost of its own; global QoS with petisco 2.2.3's connector as the real peer.

(The delayed-message exchange is covered by the unit tests only: 3.10 refuses to declare one
without the plugin, which Debian does not ship.)
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.conftest import PASSWORD, USER
from tests.integration.support import wait_for
from topology.cli.main import main


@pytest.fixture
def admin(management_url: str) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    yield session
    session.close()


def put(admin: requests.Session, url: str, body: dict[str, Any]) -> None:
    admin.put(url, json=body, timeout=10).raise_for_status()


def doctor(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, dict[str, Any], str]:
    code = main(["doctor", *arguments, "--format", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else {}, captured.err


def test_each_finding_names_the_object_and_the_fix(
    admin: requests.Session, management_url: str, vhost: str, capsys: pytest.CaptureFixture[str]
) -> None:
    v = quote(vhost, safe="")
    queues = {
        "mirrored.one": {"durable": True},
        "transient": {"durable": False},
        "lazy": {"durable": True, "arguments": {"x-queue-mode": "lazy"}},
        "version-one": {"durable": True, "arguments": {"x-queue-version": 1}},
        "quorum-alone": {"durable": True, "arguments": {"x-queue-type": "quorum"}},
        "quorum-kept": {"durable": True, "arguments": {"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx"}},
        "fine": {"durable": True},
    }
    for name, body in queues.items():
        put(admin, f"{management_url}/api/queues/{v}/{name}", body)
    put(
        admin,
        f"{management_url}/api/policies/{v}/mirror",
        {"pattern": "^mirrored\\.", "definition": {"ha-mode": "all"}, "apply-to": "queues"},
    )
    put(
        admin,
        f"{management_url}/api/policies/{v}/old-style",
        {"pattern": "^nothing$", "definition": {"queue-mode": "lazy", "queue-version": 1}, "apply-to": "queues"},
    )

    code, report, err = doctor(capsys, "--vhost", vhost, "--management-url", management_url)
    assert (code, err) == (2, "")
    found = {(f["check"], f["kind"], f["name"]) for f in report["findings"]}
    assert found == {
        ("classic-mirroring", "policy", "mirror"),
        ("transient-queue", "queue", "transient"),
        ("queue-mode", "queue", "lazy"),
        ("queue-mode", "policy", "old-style"),
        ("queue-version-1", "queue", "version-one"),
        ("queue-version-1", "policy", "old-style"),
        ("quorum-without-dead-letter", "queue", "quorum-alone"),
    }
    assert all(f["vhost"] == vhost and f["problem"] and f["fix"] for f in report["findings"])
    assert report["broker"]["version"].startswith("3.")

    # The text form says the same; --all-vhosts covers this vhost too.
    assert main(["doctor", "--vhost", vhost, "--management-url", management_url]) == 2
    text = capsys.readouterr().out
    assert "  [classic-mirroring] policy mirror" in text and "Doctor: 7 findings for RabbitMQ 4.x." in text
    code, everywhere, _ = doctor(capsys, "--all-vhosts", "--management-url", management_url)
    assert code == 2 and vhost in everywhere["vhosts"]
    assert found <= {(f["check"], f["kind"], f["name"]) for f in everywhere["findings"] if f["vhost"] == vhost}


def test_a_spec_names_its_classic_queues_that_could_move_to_quorum(
    management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)
    spec = tmp_path / "bus.yaml"
    spec.write_text(
        f"organization: alice\nvhost: {json.dumps(vhost)}\nservices:\n  petisco:\n    events:\n"
        "      UserCreated:\n        subscribers:\n          send_mail_handler: {}\n"
    )
    assert main(["doctor", str(spec)]) == 0  # nothing applied yet: clean
    assert "No findings" in capsys.readouterr().out
    assert main(["apply", str(spec), "--auto-approve"]) == 0
    capsys.readouterr()

    code, report, _ = doctor(capsys, str(spec))
    assert code == 2
    [finding] = report["findings"]
    assert finding["check"] == "classic-queue"
    assert finding["name"] == "alice.petisco.1.event.user.created.send_mail_handler"
    assert f"`rabbitform apply {spec} --move-messages`" in finding["fix"]
    assert "subscribers.send_mail_handler" in finding["fix"]


def test_global_qos_names_petisco_connections(
    management_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """petisco 2.2.3's connector sets global QoS on each channel it opens (on vhost "/", the only
    one it connects to): doctor names that connection by the name petisco gave it."""
    from petisco.extra.rabbitmq import RabbitMqConnector as PetiscoConnector

    for name, value in {"RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_USER": USER, "RABBITMQ_PASSWORD": PASSWORD}.items():
        monkeypatch.setenv(name, os.environ.get(name, value))
    key = f"doctor-{uuid.uuid4().hex[:8]}"
    connector = PetiscoConnector()
    connector.get_channel(key)
    try:

        def petisco_finding() -> dict[str, Any] | None:
            code, report, _ = doctor(capsys, "--vhost", "/", "--management-url", management_url)
            mine = [f for f in report.get("findings", []) if f["check"] == "global-qos" and repr(key) in f["name"]]
            return mine[0] if code == 2 and mine else None

        # A channel is listed after the broker's next stats refresh (about 5 s).
        finding = wait_for(petisco_finding, "the global-QoS finding of petisco's connection", timeout=30, interval=1)
    finally:
        connector.close(key)
    assert finding["kind"] == "connection" and f"client-provided name {key!r}" in finding["name"]
    assert "global QoS" in finding["problem"] and "petisco" in finding["fix"]


def test_errors_exit_1_with_one_line(management_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--vhost", f"missing-{uuid.uuid4().hex[:8]}", "--management-url", management_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: vhost 'missing-") and "does not exist" in err and len(err.splitlines()) == 1
    assert main(["doctor", "--management-url", "http://guest:s3cret@127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "s3cret" not in err and len(err.splitlines()) == 1
