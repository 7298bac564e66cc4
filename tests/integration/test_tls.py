"""rabbitform over real TLS: `plan` / `apply` through the management API over HTTPS, `publish`
and `consume` (and apply's lock) over AMQPS, against a node this session starts with a
throwaway CA (`tls_broker`); and the one-line errors of a missing or wrong CA and of a URL
whose scheme does not match its port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from tests.conftest import delete_ownership_records
from tests.integration.support import RABBITFORM, ROOT, Process, import_topology, wait_for
from tests.integration.tls_broker import TlsBroker, tls_broker  # noqa: F401 (a fixture)
from topology.cli.main import main
from topology.spec.loader import load_spec

SPEC = str(ROOT / "specs" / "alice.yaml")
SHOWN_NEVER = "n0t-Shown-pw"  # a password that must appear in no message
PUBLISH = ["--service", "petisco", "--event", "UserCreated", "--attributes", '{"user_id": "7"}']


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No broker from the environment; and requests' own CA variable set, as on many machines,
    which must not override --ca-cert or --insecure."""
    for name in (
        "RABBITMQ_MANAGEMENT_URL",
        "RABBITMQ_URL",
        "RABBITMQ_HOST",
        "RABBITMQ_PORT",
        "RABBITMQ_CA_CERT",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())


@pytest.fixture
def tls_vhost(tls_broker: TlsBroker) -> Iterator[str]:  # noqa: F811 (the fixture above)
    name = tls_broker.new_vhost("tls")
    try:
        yield name
    finally:
        tls_broker.delete_vhost(name)
        delete_ownership_records(tls_broker.management_url, name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_error(err: str) -> str:
    """The single `error:` line of a failed command, without its prefix."""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and SHOWN_NEVER not in err
    return err.removeprefix("error: ").rstrip("\n")


def test_plan_and_apply_over_https_with_the_ca_and_the_lock_over_amqps(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    https = ["--management-url", tls_broker.https_url, "--ca-cert", tls_broker.ca_cert]
    status, out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, "--detailed-exitcode", *https)
    assert status == 2, err
    assert "Plan: 17 to add, 0 to replace, 0 to destroy." in out

    lock = ["--amqp-url", tls_broker.amqps_url()]  # apply's lock: AMQPS, verified with the same CA
    status, out, err = run(capsys, "apply", SPEC, "--vhost", tls_vhost, "--auto-approve", *https, *lock)
    assert status == 0, err
    assert "Apply complete: 17 added, 0 replaced, 0 destroyed in " in out

    status, out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, "--detailed-exitcode", *https)
    assert status == 0, err
    assert out.startswith(f'No changes. The broker matches the spec on vhost "{tls_vhost}".')


def test_with_an_https_management_url_the_lock_finds_the_amqps_listener(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No --amqp-url: the management API names the node's `amqp/ssl` listener, never port 5672."""
    https = ["--management-url", tls_broker.https_url, "--ca-cert", tls_broker.ca_cert]
    status, out, err = run(capsys, "apply", SPEC, "--vhost", tls_vhost, "--auto-approve", *https)
    assert status == 0, err
    assert "Apply complete: 17 added" in out
    from topology.broker.amqp_endpoint import discovered_url
    from topology.broker.management import ManagementClient

    client = ManagementClient(tls_broker.https_url, ca_cert=tls_broker.ca_cert)
    try:
        assert discovered_url(client).startswith("amqps://") and f":{tls_broker.amqps_port}" in discovered_url(client)
    finally:
        client.close()


def test_without_the_ca_verification_fails_in_one_line(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"https://guest:{SHOWN_NEVER}@127.0.0.1:{tls_broker.https_port}"
    status, out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, "--management-url", url)
    assert status == 1 and out == ""
    assert one_error(err) == (
        f"TLS verification failed for https://127.0.0.1:{tls_broker.https_port} "
        "(certificate verify failed: self-signed certificate in certificate chain); "
        "pass --ca-cert CA.pem (or set RABBITMQ_CA_CERT; --insecure skips verification)"
    )

    https = ["--management-url", tls_broker.https_url]
    status, _out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, *https, "--ca-cert", tls_broker.other_ca_cert)
    assert status == 1
    assert one_error(err).endswith(
        f"with the CA bundle {tls_broker.other_ca_cert}; check that this CA signed the broker's certificate "
        "and that the host name matches it"
    )


def test_insecure_or_the_ca_from_the_environment_works(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    https = ["--management-url", tls_broker.https_url]
    status, out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, "--detailed-exitcode", *https, "--insecure")
    assert status == 2, err
    assert "Plan: 17 to add" in out

    monkeypatch.setenv("RABBITMQ_CA_CERT", tls_broker.ca_cert)
    status, out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, "--detailed-exitcode", *https)
    assert status == 2, err
    assert "Plan: 17 to add" in out


def test_a_scheme_that_does_not_match_the_port_is_one_clear_line(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain, tls = tls_broker.http_port, tls_broker.https_port
    https_on_plain = f"https://127.0.0.1:{plain}"
    status, _out, err = run(
        capsys, "plan", SPEC, "--vhost", tls_vhost, "--management-url", https_on_plain, "--ca-cert", tls_broker.ca_cert
    )
    assert status == 1
    assert one_error(err) == (
        f"TLS handshake with {https_on_plain} failed (wrong version number): this port does not speak TLS; "
        f"use http://127.0.0.1:{plain} if it serves plain HTTP, else the management HTTPS port (15671 by default)"
    )

    status, _out, err = run(capsys, "plan", SPEC, "--vhost", tls_vhost, "--management-url", f"http://127.0.0.1:{tls}")
    assert status == 1
    assert one_error(err) == (
        f"http://127.0.0.1:{tls} answered with TLS, not plain HTTP: this port serves HTTPS; "
        f"use https://127.0.0.1:{tls} in --management-url (or RABBITMQ_MANAGEMENT_URL)"
    )

    amqps_port = f"https://127.0.0.1:{tls_broker.amqps_port}"
    status, _out, err = run(
        capsys, "plan", SPEC, "--vhost", tls_vhost, "--management-url", amqps_port, "--ca-cert", tls_broker.ca_cert
    )
    assert status == 1
    assert one_error(err).startswith(f"{amqps_port} answered with AMQP: this is an AMQP port, not the management API")


def test_publish_and_consume_over_amqps(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import_topology(tls_broker.management_url, tls_vhost, load_spec(SPEC))
    amqps = ["--url", tls_broker.amqps_url(), "--ca-cert", tls_broker.ca_cert]
    status, out, err = run(capsys, "publish", SPEC, "--vhost", tls_vhost, *PUBLISH, *amqps)
    assert status == 0, err
    assert out.rstrip().endswith(
        f"on vhost {tls_vhost!r} at amqps://127.0.0.1:{tls_broker.amqps_port}: confirmed by the broker"
    )

    # The CLI in a process of its own, the URL and the CA from the environment.
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "RABBITMQ_URL": tls_broker.amqps_url(),
        "RABBITMQ_CA_CERT": tls_broker.ca_cert,
    }
    consumer = Process([RABBITFORM, "consume", SPEC, "--vhost", tls_vhost], env)
    try:
        wait_for(
            lambda: consumer.count("welcome mail to user 7") == 1 and consumer.count("event_store: stored") == 1,
            timeout=20,
            what="the spec's handlers to run on the message published over AMQPS",
        )
        assert consumer.count(f"on vhost {tls_vhost!r} at amqps://127.0.0.1:{tls_broker.amqps_port} with") == 2
    finally:
        code = consumer.terminate()
    assert code == 0, "".join(consumer.lines)


def test_amqps_without_the_ca_or_on_the_wrong_port_is_one_clear_line(
    tls_broker: TlsBroker,  # noqa: F811
    tls_vhost: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["publish", SPEC, "--vhost", tls_vhost, *PUBLISH, "--connect-timeout", "3"]
    url = f"amqps://guest:{SHOWN_NEVER}@127.0.0.1:{tls_broker.amqps_port}"
    status, out, err = run(capsys, *base, "--url", url)
    assert status == 1 and out == ""
    assert one_error(err) == (
        f"cannot connect to amqps://guest:***@127.0.0.1:{tls_broker.amqps_port}/{tls_vhost}: TLS verification failed "
        "(certificate verify failed: self-signed certificate in certificate chain); pass --ca-cert CA.pem "
        "(or set RABBITMQ_CA_CERT) naming the CA that signed the broker's certificate"
    )

    on_plain = f"amqps://guest:guest@127.0.0.1:{tls_broker.port}"
    status, _out, err = run(capsys, *base, "--url", on_plain, "--ca-cert", tls_broker.ca_cert)
    assert status == 1
    assert "TLS handshake failed (wrong version number): the port does not speak TLS; use amqp://" in one_error(err)

    status, _out, err = run(capsys, *base, "--url", f"amqp://guest:guest@127.0.0.1:{tls_broker.amqps_port}")
    assert status == 1
    assert "AMQP handshake failed" in one_error(err) and "a TLS port has an amqps:// URL" in err

    status, _out, err = run(capsys, *base, "--url", url, "--ca-cert", str(Path(tls_broker.ca_cert).with_name("none")))
    assert status == 1
    assert one_error(err).endswith("none: no such file (the CA bundle to verify the broker with)")
