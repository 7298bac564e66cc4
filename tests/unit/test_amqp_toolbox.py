"""The AMQP toolbox both sides use (topology.amqp): which tags a confirm covers, and what kind
of failure a connection error is, by exception type (topology.failures, also under the
management client's HTTP errors)."""

from __future__ import annotations

import socket
import ssl

import pika.exceptions
import pytest
import requests
import urllib3
from hypothesis import given
from hypothesis import strategies as st
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed, AMQPConnectorSocketConnectError

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.console.broker import ConsoleError, _translated
from bus_runtime.errors import BrokerRefused, BrokerUnavailable, BusError
from topology.amqp import FailureKind, classify_failure, connection_parameters, covered_tags, root_cause
from topology.apply.move import amqp_parameters
from topology.broker.management import ManagementClient, _connection_reason
from topology.failures import socket_failure, tls_verify_message, wrong_tls_version
from topology.tls import client_context
from topology.urls import parse_urls


def test_a_single_confirm_covers_its_tag_only_if_outstanding() -> None:
    assert covered_tags([1, 2, 3], 2, multiple=False) == [2]
    assert covered_tags([1, 3], 2, multiple=False) == []


@given(st.lists(st.integers(min_value=1, max_value=500), unique=True).map(sorted), st.integers(0, 600))
def test_a_multiple_confirm_covers_every_outstanding_tag_up_to_it(outstanding: list[int], tag: int) -> None:
    assert covered_tags(outstanding, tag, multiple=True) == [t for t in outstanding if t <= tag]


def wrapped(cause: BaseException) -> BaseException:
    """As pika raises a failed connection attempt: the cause three wrappers deep."""
    return pika.exceptions.AMQPConnectionError(AMQPConnectionWorkflowFailed([AMQPConnectorSocketConnectError(cause)]))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (socket.gaierror(-2, "Name or service not known"), "unknown host"),
        (TimeoutError("timed out"), "timeout"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls verify"),
        (ssl.SSLError(1, "wrong version number"), "tls"),
        (pika.exceptions.StreamLostError("Stream connection lost"), "handshake"),
        (pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED"), "closed by broker"),
        (ValueError("something else"), "other"),
    ],
)
def test_failures_are_classified_by_the_type_of_their_root_cause(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(wrapped(error)) == kind
    assert root_cause(wrapped(error)) is error


def test_login_and_access_refusals_are_named_at_the_top() -> None:
    assert classify_failure(pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED")) == "login"
    assert classify_failure(pika.exceptions.ProbableAccessDeniedError("NOT_ALLOWED")) == "access"


def requests_failure(cause: BaseException) -> requests.exceptions.ConnectionError:
    """As requests raises a failed connection: urllib3's wrappers, the socket's error chained below."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(
                urllib3.connection.HTTPConnection("h"), "Failed to establish a new connection"
            ) from exc
    except urllib3.exceptions.NewConnectionError as exc:
        return requests.exceptions.ConnectionError(
            urllib3.exceptions.MaxRetryError(urllib3.HTTPConnectionPool("h"), "/api/whoami", exc)
        )


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (ConnectionRefusedError(111, "Verbindungsaufbau abgelehnt"), "connection refused"),  # any locale's text
        (socket.gaierror(-2, "Name or service not known"), "unknown host"),
        (TimeoutError("whatever the text"), "connection timed out"),
        (OSError(113, "No route to host"), "connection failed"),
    ],
)
def test_the_management_client_names_a_connection_failure_by_its_type(cause: BaseException, reason: str) -> None:
    assert root_cause(requests_failure(cause)) is cause
    assert _connection_reason(requests_failure(cause)) == reason


def test_a_real_refused_http_connection_is_named_by_type() -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    assert socket_failure(caught.value) == "refused"
    assert _connection_reason(caught.value) == "connection refused"


def test_tls_failures_are_read_from_the_ssl_error_not_its_text() -> None:
    verify = ssl.SSLCertVerificationError(1, "no text to match")
    verify.verify_message = "self-signed certificate"
    plain = ssl.SSLError(1, "no text to match")
    plain.reason = "WRONG_VERSION_NUMBER"
    assert tls_verify_message(requests.exceptions.SSLError(verify)) == "self-signed certificate"
    assert tls_verify_message(requests.exceptions.SSLError(plain)) is None
    assert wrong_tls_version(requests.exceptions.SSLError(plain))
    assert not wrong_tls_version(requests.exceptions.SSLError(verify))


def test_connection_parameters_come_from_the_parsed_endpoint_and_the_arguments() -> None:
    endpoint = parse_urls("amqps://bob:s%40cret@h:5671/ignored?heartbeat=5", "amqp")[0]
    context = client_context(None, insecure=True)
    params = connection_parameters(
        endpoint, "a/b", heartbeat=30, tls=context, connection_name="rabbitform-check", connect_timeout=3.0
    )
    assert (params.host, params.port, params.virtual_host) == ("h", 5671, "a/b")
    assert params.credentials.username == "bob" and params.credentials.password == "s@cret"
    assert params.heartbeat == 30 and params.connection_attempts == 1 and params.blocked_connection_timeout == 60
    assert (params.socket_timeout, params.stack_timeout) == (3.0, 3.0)
    assert params.client_properties == {"connection_name": "rabbitform-check"}
    assert params.ssl_options is not None and params.ssl_options.context is context
    plain = connection_parameters(parse_urls("amqp://h", "amqp")[0], "/", heartbeat=60, tls=context)
    assert plain.ssl_options is None and plain.virtual_host == "/" and plain.client_properties is None


def test_the_runtime_and_the_planner_build_the_same_parameters_for_the_same_endpoint() -> None:
    url = "amqp://u:p@h:5673/v"
    runtime = RabbitMqConnector(url, heartbeat=30).parameters("x")
    planner = amqp_parameters(ManagementClient("http://h:15672"), "v", url, connection_name="rabbitform-x")
    for name in ("host", "port", "virtual_host", "heartbeat", "connection_attempts", "blocked_connection_timeout"):
        assert getattr(runtime, name) == getattr(planner, name), name
    assert runtime.credentials == planner.credentials
    assert runtime.client_properties == planner.client_properties == {"connection_name": "rabbitform-x"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BrokerUnavailable("h: the broker refused the login", "login"), 403),
        (BrokerUnavailable("h: vhost 'v' does not exist or the user may not use it", "access"), 403),
        (BrokerUnavailable("h: ACCESS_REFUSED in the text, refused by type", "refused"), 503),
        (BrokerRefused("cannot read queue q: ACCESS_REFUSED - ...", 403), 403),
        (BrokerRefused("cannot read queue q: PRECONDITION_FAILED - ...", 406), 409),
        (BusError("ACCESS_REFUSED in a plain BusError's text is not a refusal"), 409),
    ],
)
def test_the_console_tells_a_refusal_from_an_outage_by_type(error: BusError, status: int) -> None:
    with pytest.raises(ConsoleError) as caught, _translated("secret"):
        raise error
    assert caught.value.status == status
