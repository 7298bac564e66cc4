"""Least-privilege users from `access:` on the real broker: apply, the runtime under the user,
refusals elsewhere, and password rotation that never shows a password.

Users are cluster-wide: each test names its own and deletes it afterwards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.subscriber import EventSubscriber
from tests.conftest import AMQP_HOST, AMQP_PORT, PASSWORD, USER
from tests.integration.live_support import client
from tests.integration.runtime_support import ORG, SERVICE, Recorder, UserCreated, connector
from tests.integration.support import depth, wait_for
from topology.broker.management import ManagementClient
from topology.cli.main import main

QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"
OTHER_QUEUE = f"{ORG}.other.1.event.thing.done.handler"
SPEC = """\
organization: alice
vhost: {vhost}
defaults: {{retry: {{delay_ms: 100}}}}
services:
  petisco:
    events:
      UserCreated: {{subscribers: {{send_mail_handler: {{}}}}}}
  other:
    events:
      ThingDone: {{subscribers: {{handler: {{}}}}}}
access:
  {user}: {{service: petisco, password: "{{{{ env.PETISCO_AMQP_PASSWORD }}}}"}}
"""


@pytest.fixture
def broker(management_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementClient]:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)
    c = client(management_url)
    yield c
    c.close()


@pytest.fixture
def user(broker: ManagementClient) -> Iterator[str]:
    name = f"test-access-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        broker.delete("users", name)


def write_spec(path: Path, vhost: str, user: str) -> str:
    path.write_text(SPEC.format(vhost=json.dumps(vhost), user=user), encoding="utf-8")
    return str(path)


def url_of(user: str, password: str, vhost: str) -> str:
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{AMQP_HOST}:{AMQP_PORT}/{quote(vhost, safe='')}"


def refused(url: str, action: str, name: str) -> str:
    """The reply code and text of a channel error doing `action` on `name` as the user."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
            if action == "consume":
                channel.basic_get(name)
            elif action == "declare":
                channel.queue_declare(name + ".mine")
            else:
                channel.confirm_delivery()
                channel.basic_publish(name, f"{name}.1.event.thing.done", b"{}")
        return f"{error.value.reply_code} {error.value.reply_text}"
    finally:
        if connection.is_open:
            connection.close()


def test_the_runtime_works_end_to_end_under_its_service_user_and_nowhere_else(
    broker: ManagementClient,
    vhost: str,
    user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("PETISCO_AMQP_PASSWORD", password)
    spec = write_spec(tmp_path / "spec.yaml", vhost, user)
    assert main(["apply", spec, "--auto-approve", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert f"+ user {user}  (password: (set))" in out
    assert f"+ permission {user}" in out and f"+ topic_permission {user}" in out
    assert password not in out
    assert broker.get("users", user)["tags"] in ([], "")

    url = url_of(user, password, vhost)
    mail = Recorder("send_mail_handler", outcomes=["fail", "ok"])
    poison = Recorder("send_mail_handler", outcomes=["raise"] * 10)
    consumer = RabbitMqEventConsumer(connector(url), ORG, SERVICE, max_retries=1)
    consumer.consume([EventSubscriber(UserCreated, [mail.handler])])
    with consumer, RabbitMqEventBus(connector(url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="1"))  # passive declares, confirmed publish
        wait_for(lambda: mail.count == 2 and consumer.retried_count == 1, what="a retry, then success")
    assert consumer.dead_lettered_count == 0

    consumer = RabbitMqEventConsumer(connector(url), ORG, SERVICE, max_retries=1)
    consumer.consume([EventSubscriber(UserCreated, [poison.handler])])
    with consumer, RabbitMqEventBus(connector(url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="2"))
        wait_for(lambda: depth_of(vhost, f"dead_letter.{QUEUE}") == 1, what="the dead letter")
    assert consumer.dead_lettered_count == 1

    assert refused(url, "consume", OTHER_QUEUE).startswith("403 ACCESS_REFUSED")
    assert refused(url, "publish", f"{ORG}.other").startswith("403 ACCESS_REFUSED")
    assert refused(url, "declare", QUEUE).startswith("403 ACCESS_REFUSED")


def depth_of(vhost: str, queue: str) -> int:
    return depth(url_of(USER, PASSWORD, vhost), queue)


def test_a_rotated_password_is_an_update_shown_without_the_password(
    broker: ManagementClient,
    vhost: str,
    user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    monkeypatch.setenv("PETISCO_AMQP_PASSWORD", old)
    spec = write_spec(tmp_path / "spec.yaml", vhost, user)
    assert main(["apply", spec, "--auto-approve"]) == 0
    capsys.readouterr()

    assert main(["plan", spec, "--detailed-exitcode"]) == 0  # unchanged password: no change
    assert "No changes." in capsys.readouterr().out

    monkeypatch.setenv("PETISCO_AMQP_PASSWORD", new)
    saved = tmp_path / "plan.json"
    shown = ""
    for output in ("text", "json", "markdown"):
        assert main(["plan", spec, "--format", output, "--no-color", "--out", str(saved)]) == 0
        captured = capsys.readouterr()
        shown += captured.out + captured.err
    assert f"~ user {user}  (password changed, in place)" in shown
    assert "Plan: 0 to add, 1 to update, 0 to replace, 0 to destroy." in shown
    saved_text = saved.read_text(encoding="utf-8")
    stored_hash = broker.get("users", user)["password_hash"]
    for secret in (old, new):
        assert secret not in shown and secret not in saved_text
    assert "password_hash" not in shown and stored_hash not in shown and stored_hash not in saved_text

    monkeypatch.delenv("PETISCO_AMQP_PASSWORD")  # a saved plan needs no spec, no password
    assert main(["apply", str(saved)]) == 0
    captured = capsys.readouterr()
    assert new not in captured.out + captured.err
    connection = pika.BlockingConnection(pika.URLParameters(url_of(user, new, vhost)))
    connection.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(url_of(user, old, vhost)))
    monkeypatch.setenv("PETISCO_AMQP_PASSWORD", new)
    assert main(["plan", spec, "--detailed-exitcode"]) == 0
