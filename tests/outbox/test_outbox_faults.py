"""Faults: the relay killed mid-batch, the broker down, a consumer killed between its commit and
its ack, PostgreSQL restarted under the relay. Each counts with unique ids: every committed
event has exactly one effect, no rolled-back one has any."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from bus_runtime import EventSubscriber, RabbitMqConnector, RabbitMqEventConsumer
from bus_runtime.outbox import Inbox, OutboxRelay
from tests.integration.private_broker import PrivateBroker
from tests.outbox import handlers
from tests.outbox.conftest import restart_postgres
from tests.outbox.support import (
    AUDIT_QUEUE,
    ORG,
    OrderPlaced,
    commit_orders,
    declare,
    drain,
    due,
    effect_counts,
    prepare_database,
    relay_command,
    start,
    stop,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.integration


def consume_with_inbox(amqp_url: str, database_url: str, expected: int) -> Inbox:
    """Consume the bill queue with an inbox until `expected` orders have their effect."""
    inbox = Inbox(database_url)
    inbox.create_tables()
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, "orders", inbox=inbox)
    consumer.consume([EventSubscriber(OrderPlaced, [handlers.bill_order_handler])])
    engine = inbox.engine
    with consumer:
        wait_for(lambda: len(effect_counts(engine)) >= expected, f"{expected} orders handled", timeout=60)
    return inbox


def assert_published_once_in_effect(amqp_url: str, database_url: str, committed: list[str]) -> None:
    arrived = drain(amqp_url, AUDIT_QUEUE)
    ids_of: dict[str, set[str]] = {}
    for _exchange, message_id, order_id in arrived:
        ids_of.setdefault(order_id, set()).add(message_id)
    assert set(ids_of) == set(committed)  # nothing lost, nothing rolled back
    assert all(len(ids) == 1 for ids in ids_of.values())  # a copy published again keeps its id
    consume_with_inbox(amqp_url, database_url, len(committed))
    assert effect_counts(Inbox(database_url).engine) == dict.fromkeys(committed, 1)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_relay_killed_mid_batch_loses_nothing(
    database: str, request: pytest.FixtureRequest, amqp_url: str, vhost: str, tmp_path: Path
) -> None:
    database_url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    declare(amqp_url, vhost)
    outbox = prepare_database(database_url)
    committed = [f"k{i}" for i in range(800)]
    commit_orders(outbox, committed, per_transaction=50)
    commit_orders(outbox, ["never-1", "never-2"], rollback=True)
    relay = start(relay_command(database_url, amqp_url, "--batch", "10"), tmp_path / "relay.log")
    wait_for(lambda: due(outbox.engine) < 750, "the relay under way", interval=0.005)
    relay.send_signal(signal.SIGKILL)
    assert relay.wait(10) == -signal.SIGKILL
    left = due(outbox.engine)
    assert 0 < left < 800, "killed mid-run"
    again = start(relay_command(database_url, amqp_url, "--batch", "10"), tmp_path / "relay.log")
    try:
        wait_for(lambda: due(outbox.engine) == 0, "every committed event sent", timeout=60)
    finally:
        assert stop(again) == 0
    assert_published_once_in_effect(amqp_url, database_url, committed)


def test_relay_backs_off_while_the_broker_is_down(
    private_broker: PrivateBroker, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    vhost = private_broker.new_vhost("outbox")
    amqp_url = private_broker.amqp_url(vhost)
    declare(amqp_url, vhost)
    outbox = prepare_database(sqlite_url)
    relay = OutboxRelay(outbox, connector=RabbitMqConnector(amqp_url), poll_interval=0.05, backoff_max=1.0)
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    caplog.set_level(logging.INFO, "bus_runtime.outbox.relay")
    thread.start()
    try:
        commit_orders(outbox, [f"before{i}" for i in range(100)], per_transaction=10)
        wait_for(lambda: due(outbox.engine) == 0, "the first events sent")
        private_broker.stop()
        try:
            during = [f"during{i}" for i in range(100)]
            commit_orders(outbox, during, per_transaction=10)
            wait_for(lambda: "retrying in" in caplog.text, "the relay's back-off in the log")
            assert due(outbox.engine) == 100
        finally:
            private_broker.start()
        wait_for(lambda: due(outbox.engine) == 0, "the events committed while the broker was down", timeout=60)
        assert "outbox relay: broker:" in caplog.text and "publishing again" in caplog.text
    finally:
        relay.stop()
        thread.join(30)
    assert_published_once_in_effect(amqp_url, sqlite_url, [f"before{i}" for i in range(100)] + during)
    private_broker.delete_vhost(vhost)


def test_consumer_killed_between_commit_and_ack_has_no_second_effect(
    pg_url: str, amqp_url: str, vhost: str, tmp_path: Path
) -> None:
    declare(amqp_url, vhost)
    outbox = prepare_database(pg_url)
    committed = [f"c{i}" for i in range(200)]
    commit_orders(outbox, committed, per_transaction=20)
    relay = OutboxRelay(outbox, connector=RabbitMqConnector(amqp_url))
    try:
        relay.run_once()
    finally:
        relay.sink.close()
    spec = write_spec(tmp_path, vhost)
    consume = [
        sys.executable,
        "-m",
        "topology.cli.main",
        "consume",
        str(spec),
        "--url",
        amqp_url,
        "--inbox-database-url",
        pg_url,
        "--workers",
        "4",
    ]
    doomed = start(consume, tmp_path / "consumer.log", env={"RABBITFORM_TEST_DIE_AFTER_COMMIT": "c50"})
    assert doomed.wait(60) == -signal.SIGKILL  # died right after c50's transaction committed
    with outbox.engine.connect() as connection:
        recorded = connection.execute(text("SELECT count(*) FROM rabbitform_inbox")).scalar()
    assert effect_counts(outbox.engine).get("c50") == 1 and recorded is not None and recorded >= 1
    survivor = start(consume, tmp_path / "consumer.log")
    try:
        wait_for(lambda: len(effect_counts(outbox.engine)) == 200, "every order handled", timeout=60)
        wait_for(lambda: "handled already" in (tmp_path / "consumer.log").read_text(), "a redelivered duplicate")
    finally:
        assert stop(survivor) == 0
    assert effect_counts(outbox.engine) == dict.fromkeys(committed, 1)


def test_postgres_restarted_under_the_relay(
    postgres_url: str, pg_url: str, amqp_url: str, vhost: str, tmp_path: Path
) -> None:
    declare(amqp_url, vhost)
    outbox = prepare_database(pg_url)
    committed = [f"p{i}" for i in range(1000)]
    commit_orders(outbox, committed, per_transaction=100)
    commit_orders(outbox, ["never-1"], rollback=True)
    log = tmp_path / "relay.log"
    relay = start(relay_command(pg_url, amqp_url, "--batch", "10"), log)
    try:
        wait_for(lambda: due(outbox.engine) < 950, "the relay under way", interval=0.005)
        restart_postgres(postgres_url)
        wait_for(lambda: "outbox relay: database:" in log.read_text(), "the relay's back-off in the log")
        more = [f"q{i}" for i in range(50)]
        commit_orders(outbox, more, per_transaction=10)
        wait_for(lambda: due(outbox.engine) == 0, "every committed event sent", timeout=90)
    finally:
        assert stop(relay) == 0
    assert_published_once_in_effect(amqp_url, pg_url, committed + more)
