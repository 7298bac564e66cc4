"""`layout: petisco` against petisco 2.2.3 itself, in vhost "/" (petisco's connector knows no
other), each test with an organization of its own and everything it created removed after:

- petisco's configurer still creates exactly tests/fixtures/petisco_layout.json, and
  `rabbitform import --layout petisco` of that bus gives a spec whose plan has no changes;
  so does a bus petisco configured with other main-queue TTLs (its `QueueConfig`);
- a petisco service (its own bus, configurer and consumer) and a rabbitform service exchange
  events both ways on a bus rabbitform applied, retries included.

The store queues of petisco's layout are vhost-global (`store`, `retry.store`, `dead_letter.store`):
these tests delete them afterwards, so two runs of them must not share a broker at once.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meiga import Error, Failure, isSuccess

from bus_runtime import Event, EventSubscriber, RabbitMqConnector, RabbitMqEventBus, RabbitMqEventConsumer
from tests.conftest import AMQP_HOST, AMQP_PORT, PASSWORD, USER
from tests.integration.support import wait_for
from topology import naming
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_snapshot
from topology.cli.main import main
from topology.compile.definitions import from_definitions
from topology.compile.objects import Topology
from topology.state.store import delete_record, read_records

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "petisco_layout.json"
ROOT_VHOST = "/"


TEST_PREFIX = "rfpet"


@pytest.fixture
def organization(management_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A unique organization in vhost "/"; afterwards its objects and the store queues are deleted."""
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)
    for key, value in {"RABBITMQ_HOST": AMQP_HOST, "RABBITMQ_PORT": str(AMQP_PORT)}.items():
        monkeypatch.setenv(key, os.environ.get(key, value))  # petisco's singleton connector reads them once
    name = f"{TEST_PREFIX}{uuid.uuid4().hex[:10]}"
    _forget_test_records(management_url)  # a run killed before its clean-up left its record behind
    try:
        yield name
    finally:
        _close_petisco()
        _delete_everything_of(ManagementClient.from_env(management_url), name)
        _forget_test_records(management_url)


def _forget_test_records(management_url: str) -> None:
    """The ownership records of these tests' organizations in "/": they claim the vhost-global
    store queues, so one left behind would make the next run's spec a second owner of them."""
    client = ManagementClient.from_env(management_url)
    try:
        for record in read_records(client, ROOT_VHOST):
            if record.owner.startswith(TEST_PREFIX):
                delete_record(client, ROOT_VHOST, record.owner)
    finally:
        client.close()


def _close_petisco() -> None:
    from petisco.extra.rabbitmq import RabbitMqConnector as PetiscoConnector

    PetiscoConnector().close_all()


def _delete_everything_of(client: ManagementClient, organization: str) -> None:
    topology = read_snapshot(client, ROOT_VHOST).topology
    assert topology is not None
    heads = tuple(f"{head}{organization}." for head in ("", naming.RETRY_PREFIX, naming.DEAD_LETTER_PREFIX))
    stores = set(naming.store_queues(naming.PETISCO_STORE_QUEUE))
    for queue in topology.queues:
        if queue.name.startswith(heads) or queue.name in stores:
            client.delete("queues", ROOT_VHOST, queue.name)
    for exchange in topology.exchanges:
        if exchange.name.startswith(heads):
            client.delete("exchanges", ROOT_VHOST, exchange.name)
    client.close()


def owned(topology: Topology, organization: str) -> Topology:
    """The objects of `organization` in vhost "/", with the store queues (shared by the vhost)."""
    heads = tuple(f"{head}{organization}." for head in ("", naming.RETRY_PREFIX, naming.DEAD_LETTER_PREFIX))
    stores = set(naming.store_queues(naming.PETISCO_STORE_QUEUE))
    return Topology.of(
        ROOT_VHOST,
        [e for e in topology.exchanges if e.name.startswith(heads)],
        [q for q in topology.queues if q.name.startswith(heads) or q.name in stores],
        [b for b in topology.bindings if b.source.startswith(heads)],
    )


def petisco_classes() -> dict[str, Any]:
    from petisco import Command, DomainEvent, MessageSubscriber

    class UserCreated(DomainEvent):
        user_id: str

    class PersistUser(Command):
        user_id: str

    class SendMailHandler(MessageSubscriber):
        def subscribed_to(self) -> list[type[Any]]:
            return [UserCreated]

        def handle(self, message: Any) -> Any:
            return isSuccess

    class PersistUserHandler(MessageSubscriber):
        def subscribed_to(self) -> list[type[Any]]:
            return [PersistUser]

        def handle(self, message: Any) -> Any:
            return isSuccess

    return {"UserCreated": UserCreated, "subscribers": [SendMailHandler, PersistUserHandler]}


def import_petisco(organization: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """`rabbitform import --layout petisco` of the organization into a file: (the file, its stderr);
    it must warn of nothing."""
    spec = tmp_path / "imported.yaml"
    capsys.readouterr()
    args = ["import", "--organization", organization, "--vhost", ROOT_VHOST, "--layout", "petisco", "-o", str(spec)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning:" not in err, err
    return spec, err


def test_petiscos_configurer_builds_the_fixture_and_import_plans_no_changes(
    organization: str, management_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from petisco.extra.rabbitmq import RabbitMqMessageConfigurer

    RabbitMqMessageConfigurer(organization, "svc").configure_subscribers(petisco_classes()["subscribers"])
    client = ManagementClient.from_env(management_url)
    live = read_snapshot(client, ROOT_VHOST).topology
    client.close()
    assert live is not None
    fixture = json.loads(
        FIXTURE.read_text().replace('"acme', f'"{organization}').replace(".acme.", f".{organization}.")
    )
    assert owned(live, organization) == from_definitions(fixture, ROOT_VHOST)

    spec, err = import_petisco(organization, tmp_path, capsys)
    assert '1 service, 2 subscribers, store "store"; 0 warnings' in err
    text = spec.read_text()
    assert "layout: petisco" in text and "UserCreated:" in text and "PersistUser:" in text
    assert main(["plan", str(spec), "--detailed-exitcode"]) == 0, capsys.readouterr().out


def test_a_petisco_queue_config_with_other_main_ttls_imports_with_no_changes(
    organization: str, management_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """petisco's `QueueConfig`: main queues expire after 3 s by default, `send_mail` after 8 s,
    and `persist_user` never (main_ttl None: petisco declares no `x-message-ttl`)."""
    from petisco.extra.rabbitmq import RabbitMqMessageConfigurer
    from petisco.extra.rabbitmq.shared.queue_config import QueueConfig

    specific = {
        "mail": {"when_queue_contains": "*send_mail*", "use": {"main_ttl": 8000}},
        "persist": {"when_queue_contains": "*persist_user*", "use": {"main_ttl": None}},
    }
    queue_config = QueueConfig.from_dict(specific, default_retry_ttl=5000, default_main_ttl=3000)
    configurer = RabbitMqMessageConfigurer(organization, "svc", queue_config=queue_config)
    configurer.configure_subscribers(petisco_classes()["subscribers"])
    client = ManagementClient.from_env(management_url)
    live = read_snapshot(client, ROOT_VHOST).topology
    client.close()
    assert live is not None
    ttls = {q.name: q.arguments.get("x-message-ttl") for q in owned(live, organization).queues}
    assert ttls[f"{organization}.svc.1.event.user_created.send_mail_handler"] == 8000
    assert ttls[f"{organization}.svc.1.command.persist_user.persist_user_handler"] is None
    assert ttls["store"] == 3000

    spec, _ = import_petisco(organization, tmp_path, capsys)
    text = spec.read_text()
    assert "  main_queue_ttl_ms: 3000\n" in text
    assert "send_mail_handler: {main_queue_ttl_ms: 8000}" in text
    assert "persist_user_handler: {main_queue_ttl_ms: none}" in text
    assert main(["plan", str(spec), "--detailed-exitcode"]) == 0, capsys.readouterr().out


class OrderPlaced(Event):
    order_id: str


def test_petisco_and_rabbitform_services_exchange_events_both_ways(
    organization: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`legacy` is a petisco service, `shop` a rabbitform one; each consumes the other's event
    and fails its first call, so each retries by the layout's routes."""
    from petisco import DomainEvent, MessageSubscriber
    from petisco.extra.rabbitmq import RabbitMqDomainEventBus, RabbitMqMessageConfigurer, RabbitMqMessageConsumer

    spec = tmp_path / "bus.yaml"
    spec.write_text(
        f"""
organization: {organization}
vhost: /
layout: petisco
services:
  legacy:
    events:
      UserCreated:
        subscribers: {{welcome_handler: {{}}}}
  shop:
    events:
      OrderPlaced:
        subscribers: {{order_placed_subscriber: {{}}}}
store: {{}}
""",
        encoding="utf-8",
    )
    assert main(["apply", str(spec), "--auto-approve"]) == 0

    class UserCreated(DomainEvent):
        user_id: str

    class PetiscoOrderPlaced(DomainEvent):
        order_id: str

    PetiscoOrderPlaced.__name__ = "OrderPlaced"  # petisco names messages by class name
    petisco_seen: list[str] = []
    lock = threading.Lock()

    class OrderPlacedSubscriber(MessageSubscriber):
        def subscribed_to(self) -> list[type[Any]]:
            return [PetiscoOrderPlaced]

        def handle(self, message: Any) -> Any:
            with lock:
                petisco_seen.append(message.get_message_attributes()["order_id"])
                first = len(petisco_seen) == 1
            return Failure(Error()) if first else isSuccess

    # A petisco service redeclares its objects on start: the same arguments, so no error.
    RabbitMqMessageConfigurer(organization, "shop").configure_subscribers([OrderPlacedSubscriber])
    RabbitMqMessageConfigurer(organization, "legacy").configure()
    capsys.readouterr()
    assert main(["plan", str(spec), "--detailed-exitcode"]) == 0, capsys.readouterr().out

    petisco_consumer = RabbitMqMessageConsumer(organization, "shop", max_retries=3)
    petisco_consumer.add_subscribers([OrderPlacedSubscriber])
    petisco_consumer.start()

    rabbitform_seen: list[str] = []

    def welcome_handler(event: Any) -> Any:
        with lock:
            rabbitform_seen.append(event.attributes["user_id"])
            first = len(rabbitform_seen) == 1
        return Failure(Error()) if first else isSuccess

    class UserCreatedEvent(Event):
        user_id: str

    UserCreatedEvent.__name__ = "UserCreated"
    connector = RabbitMqConnector(f"amqp://{USER}:{PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/%2F")
    consumer = RabbitMqEventConsumer(connector, organization, "shop", max_retries=3, layout="petisco")
    consumer.consume([EventSubscriber(UserCreatedEvent, [welcome_handler], service="legacy")])
    consumer.start()
    bus = RabbitMqEventBus(connector, organization, "shop", on_unroutable="raise", layout="petisco")
    try:
        RabbitMqDomainEventBus(organization, "legacy").publish(UserCreated(user_id="u1"))  # petisco -> rabbitform
        bus.publish(OrderPlaced(order_id="o1"))  # rabbitform -> petisco
        wait_for(lambda: rabbitform_seen == ["u1", "u1"], "rabbitform to handle petisco's event twice", timeout=60)
        wait_for(lambda: petisco_seen == ["o1", "o1"], "petisco to handle rabbitform's event twice", timeout=60)
        publish = ["publish", str(spec), "--service", "shop", "--event", "OrderPlaced", "--attributes"]
        assert main([*publish, '{"order_id": "o2"}']) == 0  # `rabbitform publish` follows the spec's layout
        assert "routing key " + organization + ".shop.1.event.order_placed" in capsys.readouterr().out
        wait_for(lambda: "o2" in petisco_seen, "petisco to handle the event `rabbitform publish` sent", timeout=60)
    finally:
        bus.close()
        consumer.stop()
        petisco_consumer.stop()
    assert consumer.retried_count == 1
