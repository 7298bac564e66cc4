"""TLS settings without a broker: where the CA bundle comes from, what each TLS failure says,
and the TLS options the AMQP connections get (the real handshakes: tests/integration/test_tls.py)."""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pika.exceptions
import pytest
import requests
import urllib3
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed, AMQPConnectorSocketConnectError
from urllib3.exceptions import ProtocolError

from bus_runtime.connector import RabbitMqConnector, _connect_failed
from topology.apply.move import amqp_parameters
from topology.broker.management import ManagementClient, _other_protocol
from topology.errors import RabbitformError
from topology.state.lock import connect_failure
from topology.tls import CA_CERT_ENV, client_context, resolve_ca_cert

VERIFY_FAILED = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_"
)


@pytest.fixture
def ca() -> str:
    """A CA bundle file that loads: the system's."""
    paths = ssl.get_default_verify_paths()
    path = paths.cafile or paths.openssl_cafile
    if not path or not Path(path).is_file():
        pytest.skip("no system CA bundle file to load")
    return path


def test_the_ca_comes_from_the_flag_then_the_environment(tmp_path: Path, ca: str) -> None:
    assert resolve_ca_cert(None, {}) is None
    assert resolve_ca_cert(None, {CA_CERT_ENV: ""}) is None  # empty counts as unset
    assert resolve_ca_cert(None, {CA_CERT_ENV: ca}) == ca
    assert resolve_ca_cert(ca, {CA_CERT_ENV: "/elsewhere.pem"}) == ca
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(RabbitformError, match=rf"^--ca-cert {missing}: no such file"):
        resolve_ca_cert(missing, {})
    with pytest.raises(RabbitformError, match=rf"^{CA_CERT_ENV} {missing}: no such file"):
        resolve_ca_cert(None, {CA_CERT_ENV: missing})


def test_the_client_context_verifies_unless_insecure(ca: str) -> None:
    context = client_context(ca)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    insecure = client_context(None, insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname


def test_the_management_client_reads_the_ca_from_the_environment(ca: str) -> None:
    client = ManagementClient.from_env("https://h:15671", environ={CA_CERT_ENV: ca})
    assert client.ca_cert == ca and client._verify == ca
    with pytest.raises(RabbitformError, match=rf"^{CA_CERT_ENV} /nope.pem: no such file"):
        ManagementClient.from_env("https://h:15671", environ={CA_CERT_ENV: "/nope.pem"})
    insecure = ManagementClient.from_env("https://h:15671", environ={CA_CERT_ENV: "/nope.pem"}, insecure=True)
    assert insecure._verify is False  # --insecure needs no CA, and reads none


def ssl_failure(reason: str, text: str, verify_message: str | None = None) -> requests.exceptions.SSLError:
    """As requests raises a TLS failure: OpenSSL's error (typed, with its reason code) under
    urllib3's and requests' wrappers; the classification reads the types, not this text."""
    error: ssl.SSLError
    if verify_message is not None:
        error = ssl.SSLCertVerificationError(1, text)
        error.verify_message = verify_message
    else:
        error = ssl.SSLError(1, text)
    error.reason = reason
    return requests.exceptions.SSLError(
        urllib3.exceptions.MaxRetryError(urllib3.HTTPConnectionPool("h"), "/", urllib3.exceptions.SSLError(error))
    )


VERIFY_ERROR = ssl_failure("CERTIFICATE_VERIFY_FAILED", VERIFY_FAILED, "self-signed certificate in certificate chain")


def test_each_tls_failure_of_the_management_api_says_what_to_do(ca: str) -> None:
    plain = ManagementClient("https://h:15671")
    message = plain._tls_message(VERIFY_ERROR)
    assert message.startswith("TLS verification failed for https://h:15671 (certificate verify failed: self-signed")
    assert message.endswith(f"pass --ca-cert CA.pem (or set {CA_CERT_ENV}; --insecure skips verification)")
    message = ManagementClient("https://h:15671", ca_cert=ca)._tls_message(VERIFY_ERROR)
    assert f"with the CA bundle {ca}; check that this CA signed" in message
    message = plain._tls_message(ssl_failure("WRONG_VERSION_NUMBER", "[SSL: WRONG_VERSION_NUMBER] (_ssl.c:1006)"))
    assert message == (
        "TLS handshake with https://h:15671 failed (wrong version number): this port does not speak TLS; "
        "use http://h:15671 if it serves plain HTTP, else the management HTTPS port (15671 by default)"
    )
    message = plain._tls_message(ssl_failure("SSLV3_ALERT_HANDSHAKE_FAILURE", "[SSL] (_ssl.c:1006)"))
    assert "failed (sslv3 alert handshake failure); check that this port serves HTTPS" in message
    assert "--insecure" not in message


def _aborted(line: str) -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", http.client.BadStatusLine(line)))


def test_a_plain_http_request_answered_in_tls_or_amqp_is_recognised() -> None:
    assert _other_protocol(_aborted("\x15\x03\x01\x00\x02\x02\n")) == "TLS"  # an alert record
    assert _other_protocol(_aborted("\x16\x03\x03\x00\x7a")) == "TLS"  # a handshake record
    assert _other_protocol(_aborted("AMQP\x00\x00\t\x01")) == "AMQP"
    assert _other_protocol(_aborted("HTTP/9 nonsense")) is None
    assert _other_protocol(requests.exceptions.ConnectionError("Connection refused")) is None
    client = ManagementClient("http://h:15671")
    assert client._wrong_port_message("TLS") == (
        "http://h:15671 answered with TLS, not plain HTTP: this port serves HTTPS; "
        "use https://h:15671 in --management-url (or RABBITMQ_MANAGEMENT_URL)"
    )


def test_the_connector_verifies_amqps_with_its_ca(ca: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CA_CERT_ENV, raising=False)
    default = RabbitMqConnector("amqps://u:p@127.0.0.1/%2F")
    assert default.ca_cert is None
    assert default.parameters().ssl_options is not None  # pika's default context: the system's CAs
    connector = RabbitMqConnector("amqps://u:p@127.0.0.1/%2F", ca_cert=ca).with_vhost("v")
    assert connector.ca_cert == ca  # kept by with_vhost
    options = connector.parameters().ssl_options
    assert options is not None
    assert options.context.verify_mode == ssl.CERT_REQUIRED and options.context.check_hostname
    assert RabbitMqConnector("amqp://u:p@127.0.0.1/%2F", ca_cert=ca).parameters().ssl_options is None
    monkeypatch.setenv(CA_CERT_ENV, ca)
    assert RabbitMqConnector("amqps://u:p@127.0.0.1/%2F").ca_cert == ca
    with pytest.raises(RabbitformError, match=r"^ca_cert /nope.pem: no such file"):
        RabbitMqConnector("amqps://u:p@127.0.0.1/%2F", ca_cert="/nope.pem")


def test_the_connectors_tls_failures_say_what_to_do() -> None:
    where = "amqps://u:***@h:5671/v"
    error = ssl.SSLCertVerificationError(1, VERIFY_FAILED)
    error.verify_message = "self-signed certificate in certificate chain"  # as ssl sets it
    assert "(certificate verify failed: self-signed certificate in certificate chain)" in _connect_failed(
        where, 3, error
    )
    assert _connect_failed(where, 3, error).endswith(
        f"pass --ca-cert CA.pem (or set {CA_CERT_ENV}) naming the CA that signed the broker's certificate"
    )
    assert "check that the CA bundle ca.pem holds the CA" in _connect_failed(where, 3, error, "ca.pem")
    mismatch_text = "certificate verify failed: IP address mismatch, certificate is not valid for '10.0.0.1'. (_"
    mismatch = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {mismatch_text}")
    mismatch.verify_code = 64  # as ssl sets it: X509_V_ERR_IP_ADDRESS_MISMATCH (classified by it, not by text)
    mismatch.verify_message = "IP address mismatch, certificate is not valid for '10.0.0.1'."
    assert _connect_failed(where, 3, mismatch).endswith("connect by a host name the certificate lists")
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    wrong.reason = "WRONG_VERSION_NUMBER"  # as ssl sets it
    assert "the port does not speak TLS; use amqp://" in _connect_failed(where, 3, wrong)


def test_apply_verifies_an_amqps_lock_url_as_it_verifies_the_management_api(ca: str) -> None:
    client = ManagementClient("https://h:15671", ca_cert=ca)
    params = amqp_parameters(client, "a/b", "amqps://u:p@h:5671/other?heartbeat=5")
    assert (params.host, params.port, params.virtual_host, params.heartbeat) == ("h", 5671, "a/b", 30)
    assert params.ssl_options is not None and params.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    insecure = amqp_parameters(ManagementClient("https://h:15671", insecure=True), "v", "amqps://u:p@h/v")
    assert insecure.ssl_options is not None and insecure.ssl_options.context.verify_mode == ssl.CERT_NONE
    assert amqp_parameters(client, "v", "amqp://u:p@h/v").ssl_options is None
    with pytest.raises(RabbitformError, match=r"^--amqp-url: .*'amqps://u:\*\*\*@h:x'"):
        amqp_parameters(client, "v", "amqps://u:p@h:x")


def test_the_locks_tls_failures_say_what_to_do() -> None:
    error = ssl.SSLCertVerificationError(1, VERIFY_FAILED)
    error.verify_message = "self-signed certificate in certificate chain"
    why, fix = connect_failure(error, None)
    assert why == "TLS verification failed: self-signed certificate in certificate chain"
    assert fix.startswith("pass --ca-cert CA.pem")
    assert connect_failure(error, "ca.pem")[1].startswith("check that the CA bundle ca.pem holds")
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    wrong.reason = "WRONG_VERSION_NUMBER"
    assert connect_failure(wrong, None) == (
        "TLS handshake failed: WRONG_VERSION_NUMBER",
        "check that --amqp-url is amqps:// only on a TLS port",
    )
    why, fix = connect_failure(ConnectionRefusedError(111, "any text"), None)
    assert why == "connection refused" and fix.endswith(
        "pass --amqp-url (or set RABBITMQ_URL) naming the broker's AMQP endpoint"
    )
    wrapped = pika.exceptions.AMQPConnectionError(
        AMQPConnectionWorkflowFailed([AMQPConnectorSocketConnectError(error)])
    )
    assert connect_failure(wrapped, None)[0] == "TLS verification failed: self-signed certificate in certificate chain"
