"""Operating the bus on the real broker: dead letters listed, shown without being taken,
replayed by filter to their own queue alone, purged; `status --check` as a health gate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pika
import pytest
import yaml
from meiga import isSuccess

from benchmarks.raw_pika import declare_topology
from bus_runtime import retry
from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.deadletters import DeadLetterQueues
from bus_runtime.subscriber import EventSubscriber
from tests.integration.runtime_support import ORG, SERVICE, Recorder, UserCreated, connector, subscribers_spec
from tests.integration.support import depth, wait_for
from topology.cli.main import main
from topology.compile.compiler import compile_spec
from topology.spec.model import Spec

MAIL = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"
WELCOME = f"{ORG}.{SERVICE}.1.event.user.created.welcome_handler"
DEAD_MAIL = f"dead_letter.{MAIL}"


class SmtpDown(Exception):
    pass


def flaky_mail(event: UserCreated) -> Any:
    """Fails by the user id: `smtp-*` with SmtpDown, `bad-*` with ValueError."""
    if event.user_id.startswith("smtp"):
        raise SmtpDown("smtp server down")
    if event.user_id.startswith("bad"):
        raise ValueError(f"invalid address for {event.user_id}")
    return isSuccess


flaky_mail.__name__ = "send_mail_handler"


def declare(amqp_url: str, spec: Spec) -> None:
    """Create the spec's objects over AMQP (the management API's definitions import can queue
    behind other imports on a shared broker; these tests are not about importing)."""
    topology = compile_spec(spec)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        declare_topology(channel, topology)
    finally:
        connection.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_dead_letters_listed_shown_replayed_and_purged(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    welcome = Recorder("welcome_handler")
    subscribers = [EventSubscriber(UserCreated, [flaky_mail, welcome.handler])]
    spec = subscribers_spec(subscribers, retry_ttl=50).model_copy(update={"vhost": vhost})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    declare(amqp_url, spec)
    consumer = RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE, max_retries=0)
    consumer.consume(subscribers)
    users = ["smtp-1", "bad-1", "smtp-2", "ok-1", "bad-2", "smtp-3"]
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish([UserCreated(user_id=user) for user in users])
        wait_for(lambda: consumer.dead_lettered_count == 5 and welcome.count == 6, "5 dead letters, 6 welcomes")
    assert depth(amqp_url, DEAD_MAIL) == 5
    broker = ["--url", amqp_url, "--format", "json"]
    mail = ["--subscriber", "send_mail_handler"]

    code, out = run(capsys, "dlq", "list", str(spec_file), *broker)
    assert code == 0
    listed = {s["subscriber"]: s for s in json.loads(out)["subscribers"]}
    assert listed[f"{SERVICE}/send_mail_handler"]["by_error_type"] == {"SmtpDown": 3, "ValueError": 2}
    assert listed[f"{SERVICE}/send_mail_handler"]["by_reason"] == {"retries_exhausted": 5}
    assert listed[f"{SERVICE}/welcome_handler"]["count"] == 0

    def held() -> list[str]:
        code, out = run(capsys, "dlq", "show", str(spec_file), *broker, *mail)
        assert code == 0
        return [m["attributes"]["user_id"] for m in json.loads(out)["messages"]]

    before = held()
    assert before == ["smtp-1", "bad-1", "smtp-2", "bad-2", "smtp-3"]
    code, out = run(capsys, "dlq", "show", str(spec_file), *broker, *mail, "--error-type", "SmtpDown")
    shown = json.loads(out)["messages"]
    assert [m["attributes"]["user_id"] for m in shown] == ["smtp-1", "smtp-2", "smtp-3"]
    assert shown[0]["headers"]["rabbitform-error-message"] == "smtp server down"
    assert held() == before and depth(amqp_url, DEAD_MAIL) == 5  # shown, not taken, same order

    code, out = run(capsys, "dlq", "replay", str(spec_file), *broker, *mail, "--error-type", "SmtpDown", "--dry-run")
    assert code == 0 and json.loads(out)["count"] == 3 and json.loads(out)["dry_run"]
    assert held() == before  # the dry run moved nothing

    code = main(["dlq", "replay", str(spec_file), "--url", amqp_url, *mail, "--error-type", "SmtpDown"])
    assert code == 1  # no terminal, no --auto-approve: refused
    assert held() == before

    healthy = Recorder("send_mail_handler")
    other = Recorder("welcome_handler")
    fixed = [EventSubscriber(UserCreated, [healthy.handler, other.handler])]
    consumer = RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE, max_retries=0)
    consumer.consume(fixed)
    with consumer:
        code, out = run(
            capsys, "dlq", "replay", str(spec_file), *broker, *mail, "--error-type", "SmtpDown", "--auto-approve"
        )
        assert code == 0 and json.loads(out)["count"] == 3 and json.loads(out)["left"] == 2
        wait_for(lambda: healthy.count == 3, "the now-healthy handler to handle the 3 replayed messages")
    assert sorted(e.user_id for e in healthy.events) == ["smtp-1", "smtp-2", "smtp-3"]
    assert other.count == 0  # the other subscriber of the same event received nothing
    assert depth(amqp_url, WELCOME) == 0 and depth(amqp_url, MAIL) == 0
    assert held() == ["bad-1", "bad-2"]  # what did not match stayed, in order

    status = ["status", str(spec_file), "--management-url", management_url, "--check", "--no-require-consumers"]
    wait_for(lambda: main(status) == 2, "status --check to see the dead letters", timeout=30, interval=1)
    code, out = run(
        capsys, "dlq", "purge", str(spec_file), *broker, *mail, "--error-type", "ValueError", "--auto-approve"
    )
    assert code == 0 and json.loads(out)["count"] == 2
    assert depth(amqp_url, DEAD_MAIL) == 0
    wait_for(lambda: main(status) == 0, "status --check to pass once the dead letters are gone", timeout=30, interval=1)


def test_status_reports_counts_drift_and_unbound_events(
    management_url: str, vhost: str, amqp_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mail = Recorder("send_mail_handler")
    spec = subscribers_spec([EventSubscriber(UserCreated, [mail.handler])]).model_copy(update={"vhost": vhost})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    code, out = run(capsys, "status", str(spec_file), "--management-url", management_url, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["subscribers"][0]["queue"]["exists"] is False  # nothing applied yet: drift
    assert any("missing" in warning for warning in report["warnings"])
    declare(amqp_url, spec)
    code, out = run(capsys, "status", str(spec_file), "--management-url", management_url)
    assert code == 0
    assert "send_mail_handler" in out and "missing" not in out
    code, _ = run(capsys, "status", str(spec_file), "--management-url", management_url, "--check")
    assert code == 2  # no consumer on the subscriber queue


def test_an_interrupted_replay_loses_nothing(vhost: str, amqp_url: str, tmp_path: Path) -> None:
    spec = subscribers_spec([EventSubscriber(UserCreated, [flaky_mail])]).model_copy(update={"vhost": vhost})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    declare(amqp_url, spec)
    total = 200
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for n in range(total):
            headers = {retry.ERROR_TYPE: "SmtpDown", retry.DEAD_LETTER_REASON: retry.REASON_RETRIES_EXHAUSTED}
            props = pika.BasicProperties(delivery_mode=2, message_id=f"m{n:03d}", headers=headers)
            channel.basic_publish("", DEAD_MAIL, b"{}", props)
    finally:
        connection.close()
    command = [sys.executable, "-m", "topology.cli.main", "dlq", "replay", str(spec_file), "--url", amqp_url]
    command += ["--subscriber", "send_mail_handler", "--auto-approve", "--rate", "40/s"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: depth(amqp_url, MAIL) >= 20, "some dead letters replayed", timeout=60, interval=0.1)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    moved, left = ids_in(amqp_url, MAIL), ids_in(amqp_url, DEAD_MAIL)
    assert 20 <= len(moved) < total
    assert set(moved) | set(left) == {f"m{n:03d}" for n in range(total)}  # nothing lost
    assert len(moved) + len(left) - total <= 4  # duplicates: at most the batch in flight (40/s: 4)
    assert left == sorted(left)  # what stayed kept its order


def ids_in(amqp_url: str, queue: str) -> list[str]:
    """The message ids of `queue`, taking them (the test is over)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        found = []
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append(properties.message_id)
    finally:
        connection.close()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_show_and_purge_keep_the_rest_in_order(vhost: str, amqp_url: str, queue_type: str) -> None:
    spec = subscribers_spec([EventSubscriber(UserCreated, [flaky_mail])])
    defaults = spec.defaults.model_copy(update={"queue_type": queue_type})
    spec = spec.model_copy(update={"defaults": defaults, "vhost": vhost})
    declare(amqp_url, spec)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for n in range(30):
            channel.basic_publish("", DEAD_MAIL, b"{}", pika.BasicProperties(message_id=f"m{n:02d}", headers={}))
    finally:
        connection.close()
    everything = [f"m{n:02d}" for n in range(30)]
    with DeadLetterQueues.connect(spec, connector(amqp_url)) as dlq:
        assert [letter.message_id for letter in dlq.show("send_mail_handler")] == everything
        assert [letter.message_id for letter in dlq.show("send_mail_handler")] == everything
        doomed = everything[::3]
        assert dlq.purge("send_mail_handler", ids=doomed).count == 10
        kept = [letter.message_id for letter in dlq.show("send_mail_handler")]
    assert kept == [m for m in everything if m not in doomed]
    assert ids_in(amqp_url, DEAD_MAIL) == kept
