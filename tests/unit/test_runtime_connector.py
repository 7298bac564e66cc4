from __future__ import annotations

import pytest

from bus_runtime.connector import RabbitMqConnector
from topology.urls import UrlError


def test_default_url_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    connector = RabbitMqConnector()
    assert connector.url == "amqp://guest:guest@localhost:5672/%2F"
    assert connector.vhost == "/"
    monkeypatch.setenv("RABBITMQ_URL", "amqp://bob:s%40cret@127.0.0.1:5673/team-a")
    connector = RabbitMqConnector()
    assert (connector.username, connector.password, connector.vhost) == ("bob", "s@cret", "team-a")
    assert "s%40cret" not in connector.safe_url and "s@cret" not in connector.safe_url


def test_tls_heartbeat_and_parameters() -> None:
    connector = RabbitMqConnector("amqps://u:p@127.0.0.1/%2F", heartbeat=5)
    assert connector.uses_tls
    params = connector.parameters("publisher")
    assert params.heartbeat == 5
    assert params.ssl_options is not None
    assert params.client_properties == {"connection_name": "rabbitform-publisher"}


def test_with_vhost_keeps_broker_and_credentials() -> None:
    connector = RabbitMqConnector("amqp://u:p@127.0.0.1:5672/%2F").with_vhost("a/b")
    assert connector.vhost == "a/b"
    assert connector.url == "amqp://u:p@127.0.0.1:5672/a%2Fb"


def test_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="amqp://"):
        RabbitMqConnector("http://localhost:15672")


def test_describe_error_finds_the_root_cause_of_a_pika_error() -> None:
    from pika.adapters.utils.connection_workflow import AMQPConnectorSocketConnectError
    from pika.exceptions import AMQPConnectionError

    from bus_runtime.iothread import describe_error

    nested = AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused")))
    assert describe_error(nested) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert describe_error("plain text") == "plain text"
    assert describe_error(RuntimeError()) == "RuntimeError"


def test_several_urls_are_one_cluster() -> None:
    connector = RabbitMqConnector(
        " amqp://u:p@127.0.0.1:5681/v , amqp://u:p@127.0.0.1:5682/v,amqp://u:p@127.0.0.1:5683/v"
    )
    assert [endpoint.port for endpoint in connector.endpoints] == [5681, 5682, 5683]
    ports = [connector.parameters("consumer", attempt).port for attempt in range(4)]
    assert ports == [5681, 5682, 5683, 5681]  # a reconnect loop rotates through the nodes
    moved = connector.with_vhost("a/b")
    assert [moved.parameters("", i).virtual_host for i in range(3)] == ["a/b"] * 3


@pytest.mark.parametrize("text", ["\u00b2", "1.5", "-3", "ten"])
def test_a_heartbeat_from_the_environment_that_is_not_ascii_digits_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("RABBITMQ_HEARTBEAT", text)
    with pytest.raises(UrlError, match="RABBITMQ_HEARTBEAT"):
        RabbitMqConnector("amqp://127.0.0.1/%2F")
