"""`queue_settings: policies` and `--move-messages` on the real broker.

A delay change under `policies` is an in-place policy update that keeps a waiting retry; a
classic queue holding messages becomes quorum while another process publishes, losing and
duplicating nothing; a move killed halfway is finished by the next apply.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pika
import pika.exceptions

from tests.conftest import PASSWORD, USER
from tests.integration.live_support import client
from tests.integration.support import depth, wait_for
from topology import naming
from topology.apply.live import converge, plan_live
from topology.spec.loader import parse_spec
from topology.spec.model import Spec

MAIN = "alice.petisco.1.event.user.created.send_mail_handler"
RETRY = naming.retry_queue(MAIN)
EXCHANGE, ROUTING_KEY = "alice.petisco", "alice.petisco.1.event.user.created"
ROOT = Path(__file__).resolve().parents[2]


def spec_text(vhost: str, *, settings: str, delay_ms: int = 60_000, queue_type: str = "classic") -> str:
    return (
        f"organization: alice\nvhost: {json.dumps(vhost)}\nqueue_settings: {settings}\n"
        f"defaults: {{queue_type: {queue_type}, retry: {{delay_ms: {delay_ms}}}}}\n"
        "services:\n  petisco:\n    events:\n      UserCreated:\n        subscribers:\n"
        "          send_mail_handler: {}\n"
    )


def make(vhost: str, **options: object) -> Spec:
    return parse_spec(spec_text(vhost, **options))  # type: ignore[arg-type]


def publish(amqp_url: str, exchange: str, routing_key: str, ids: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for message_id in ids:
        channel.basic_publish(
            exchange, routing_key, b"{}", pika.BasicProperties(message_id=message_id, delivery_mode=2)
        )
    connection.close()


def drain_ids(amqp_url: str, queue: str) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    ids = []
    while True:
        method, properties, _body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        ids.append(properties.message_id)
    connection.close()
    return ids


def queue_type(management_url: str, vhost: str, name: str) -> str:
    c = client(management_url, timeout=60)
    try:
        return str(c.get("queues", vhost, name)["arguments"].get("x-queue-type", "classic"))
    finally:
        c.close()


def test_a_delay_change_is_an_in_place_policy_update_that_keeps_a_waiting_retry(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    c = client(management_url, timeout=60)
    try:
        converge(make(vhost, settings="policies"), c)
        publish(amqp_url, naming.retry_exchange("alice", "petisco"), RETRY, ["waiting"])
        wait_for(lambda: depth(amqp_url, RETRY) == 1, "the retry to wait in its retry queue")

        plan = plan_live(make(vhost, settings="policies", delay_ms=30_000), c)
        assert [(ch.action, ch.kind, ch.name) for ch in plan.changes] == [
            ("update", "policy", naming.retry_policy("alice", "petisco"))
        ]
        assert plan.changes[0].reason == "definition.message-ttl: 60000 -> 30000"
        converge(make(vhost, settings="policies", delay_ms=30_000), c, plan)
        assert depth(amqp_url, RETRY) == 1
        policy = c.get("policies", vhost, naming.retry_policy("alice", "petisco"))
        assert policy["definition"]["message-ttl"] == 30_000
    finally:
        c.close()


def test_a_classic_queue_becomes_quorum_with_its_messages_while_another_process_publishes(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path
) -> None:
    c = client(management_url, timeout=60)
    out, stop = tmp_path / "published.txt", tmp_path / "stop"
    try:
        converge(make(vhost, settings="arguments"), c)
        backlog = [f"old-{n}" for n in range(1000)]
        publish(amqp_url, EXCHANGE, ROUTING_KEY, backlog)
        wait_for(lambda: depth(amqp_url, MAIN) == 1000, "the backlog", timeout=60)
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.move_publisher",
                amqp_url,
                EXCHANGE,
                ROUTING_KEY,
                str(out),
                str(stop),
            ],
            cwd=ROOT,
        )
        try:
            wait_for(
                lambda: out.exists() and out.read_text().count("confirmed") >= 20, "the publisher to start", timeout=60
            )
            quorum = make(vhost, settings="policies", queue_type="quorum")
            plan = plan_live(quorum, c, move_messages=True)
            assert plan.errors == ()
            assert any(ch.name == MAIN and ch.move for ch in plan.changes)
            converge(quorum, c, plan)
            wait_for(lambda: out.read_text().count("confirmed") >= 100, "publishes after the move", timeout=60)
        finally:
            stop.touch()
            publisher.wait(timeout=30)
        lines = [line.split() for line in out.read_text().splitlines()]
        confirmed = [message_id for message_id, outcome in lines if outcome == "confirmed"]
        assert [line for line in lines if line[1] != "confirmed"] == []  # nothing unroutable
        assert queue_type(management_url, vhost, MAIN) == "quorum"
        received = drain_ids(amqp_url, MAIN)
        assert [i for i, n in Counter(received).items() if n > 1] == []
        assert set(received) == set(backlog) | set(confirmed)
        assert naming.holding_queue(MAIN) not in {q["name"] for q in c.get("queues", vhost)}
    finally:
        c.close()


def test_a_move_killed_halfway_is_finished_by_the_next_apply(
    management_url: str, vhost: str, amqp_url: str, tmp_path: Path
) -> None:
    c = client(management_url, timeout=60)
    try:
        converge(make(vhost, settings="arguments"), c)
        backlog = [f"old-{n}" for n in range(3_000)]
        publish(amqp_url, EXCHANGE, ROUTING_KEY, backlog)
        wait_for(lambda: depth(amqp_url, MAIN) == len(backlog), "the backlog", timeout=60)
        spec = tmp_path / "spec.yaml"
        spec.write_text(spec_text(vhost, settings="arguments", queue_type="quorum"), encoding="utf-8")
        env = {
            **os.environ,
            "RABBITMQ_MANAGEMENT_URL": management_url,
            "RABBITMQ_USER": USER,
            "RABBITMQ_PASSWORD": PASSWORD,
        }
        command = [sys.executable, "-m", "topology.cli.main", "apply", str(spec), "--move-messages", "--auto-approve"]
        apply = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        holding = naming.holding_queue(MAIN)

        def moving() -> bool:
            return (depth_or_none(amqp_url, holding) or 0) >= 200

        wait_for(moving, "the move to start", timeout=60, interval=0.01)
        apply.send_signal(signal.SIGKILL)
        apply.wait(timeout=10)

        half_done = plan_live(parse_spec(spec.read_text()), c, move_messages=True)
        moves = [ch for ch in half_done.changes if ch.name == MAIN]
        assert moves and moves[0].moving and moves[0].move
        converge(parse_spec(spec.read_text()), c, half_done)

        received = drain_ids(amqp_url, MAIN)
        assert len(received) == len(backlog)
        assert set(received) == set(backlog)
        assert queue_type(management_url, vhost, MAIN) == "quorum"
    finally:
        c.close()


def depth_or_none(amqp_url: str, queue: str) -> int | None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()
