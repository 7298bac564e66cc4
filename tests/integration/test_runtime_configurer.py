"""RabbitMqEventConfigurer: the seed's configurer creates what subscribers need, never deletes."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from bus_runtime.configurer import RabbitMqEventConfigurer
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.subscriber import EventSubscriber
from tests.integration.runtime_support import ORG, SERVICE, Recorder, UserCreated
from tests.integration.support import AUTH, import_topology, queue_names
from topology.compile.compiler import compile_spec
from topology.spec.loader import load_spec

BASE = f"{ORG}.{SERVICE}.1.event.user.created"


def configurer(amqp_url: str, management_url: str, retry_ttl: int = 5000) -> RabbitMqEventConfigurer:
    return RabbitMqEventConfigurer(
        RabbitMqConnector(amqp_url), ORG, SERVICE, retry_ttl=retry_ttl, management_url=management_url
    )


def test_configure_subscribers_creates_the_alice_topology_and_is_idempotent(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    mail = Recorder("send_mail_handler")
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    result = configurer(amqp_url, management_url).configure_subscribers(subscribers, store=True)
    expected = compile_spec(load_spec("specs/alice.yaml"))
    assert result.added == len(expected.exchanges) + len(expected.queues) + len(expected.bindings)
    assert set(queue_names(management_url, vhost)) == {q.name for q in expected.queues}
    retry_queue = requests.get(
        f"{management_url}/api/queues/{quote(vhost, safe='')}/retry.{BASE}.send_mail_handler", auth=AUTH, timeout=10
    ).json()
    assert retry_queue["arguments"]["x-message-ttl"] == 5000
    assert configurer(amqp_url, management_url).configure_subscribers(subscribers, store=True).added == 0
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, SERVICE)
    consumer.consume(subscribers)
    consumer.start()  # the topology is complete: the passive checks pass
    consumer.stop()


def test_configure_never_deletes_or_replaces(
    management_url: str, vhost: str, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = Recorder("other_handler")
    import_topology(management_url, vhost, load_spec("specs/alice.yaml"))
    result = configurer(amqp_url, management_url, retry_ttl=100).configure_subscribers(
        [EventSubscriber(UserCreated, [other.handler])]
    )
    assert result.added == 7  # other_handler's 3 queues and 4 bindings
    assert result.destroyed == 0 and result.replaced == 0
    names = set(queue_names(management_url, vhost))
    assert {f"{BASE}.send_mail_handler", f"{BASE}.other_handler", "store"} <= names
    again = configurer(amqp_url, management_url, retry_ttl=100).configure_subscribers(
        [EventSubscriber(UserCreated, [Recorder("send_mail_handler").handler])]
    )
    assert again.added == 0 and again.replaced == 0  # the existing TTL (5000) stays
    assert "never replaces" in caplog.text
