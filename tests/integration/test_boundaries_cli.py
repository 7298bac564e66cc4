"""Boundaries that need a broker: the management path prefix and API root, several URLs, the
AMQP handshake on the wrong port, publishing before the topology exists, and generated
malformed URLs given to the library (nothing created anywhere)."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus_runtime.configurer import RabbitMqEventConfigurer
from bus_runtime.connector import RabbitMqConnector
from tests.conftest import MANAGEMENT_URL, PASSWORD, USER
from topology.cli.main import main
from topology.urls import UrlError

SPEC = """organization: bnd
vhost: {vhost}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {{}}
"""


@pytest.fixture
def spec(tmp_path: Path, vhost: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(vhost=vhost))
    return str(path)


def with_credentials(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@{parts.netloc}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_api_root_and_several_urls_plan_a_converged_vhost_as_converged(
    spec: str, management_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = with_credentials(management_url)
    status, out, err = run(capsys, "apply", spec, "--auto-approve", "--management-url", base)
    assert status == 0, (out, err)
    for url in (f"{base}/api", f"{base}/api/", f"{with_credentials('http://127.0.0.1:1')},{base}"):
        status, out, err = run(capsys, "plan", spec, "--detailed-exitcode", "--management-url", url)
        assert (status, err) == (0, ""), (url, out, err)
        assert out.startswith("No changes.")


def test_a_wrong_path_prefix_fails_clearly_instead_of_planning_everything(
    spec: str, management_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_credentials(management_url) + "/not-the-prefix"
    status, out, err = run(capsys, "plan", spec, "--detailed-exitcode", "--management-url", url)
    assert status == 1 and out == ""
    assert err.startswith("error: no RabbitMQ management API at ") and "path_prefix" in err
    assert PASSWORD not in err or PASSWORD == "guest"


def test_publish_to_the_http_port_says_the_handshake_failed(
    spec: str, management_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(management_url)
    url = f"amqp://{USER}:{quote(PASSWORD, safe='')}@{parts.hostname}:{parts.port}"
    argv = ["publish", spec, "--service", "petisco", "--event", "UserCreated", "--url", url, "--connect-timeout", "2"]
    status, _out, err = run(capsys, *argv)
    assert status == 1
    assert "AMQP handshake failed within 2 s" in err and "not the management port" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("where", ["http-port", "wrong-password", "missing-vhost", "refused"])
def test_dlq_says_why_it_cannot_connect_without_pika_exception_names(
    spec: str, management_url: str, amqp_url: str, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(amqp_url)
    urls = {
        "http-port": f"amqp://{USER}:{quote(PASSWORD, safe='')}@{parts.hostname}:{urlsplit(management_url).port}",
        "wrong-password": f"amqp://{USER}:not-the-password@{parts.hostname}:{parts.port}",
        "missing-vhost": f"amqp://{USER}:{quote(PASSWORD, safe='')}@{parts.hostname}:{parts.port}/no-such-vhost-19a",
        "refused": f"amqp://{parts.hostname}:1",
    }
    argv = ["dlq", "list", spec, "--url", urls[where], "--connect-timeout", "2"]
    if where == "missing-vhost":
        argv += ["--vhost", "no-such-vhost-19a"]
    status, _out, err = run(capsys, *argv)
    assert status == 1 and err.count("\n") == 1
    for name in ("Error:", "Exception", "ProbableA", "ConnectionClosedByBroker", "StreamLost", "Incompatible"):
        assert name not in err.replace("error:", ""), err


def test_publish_before_apply_points_at_plan_and_apply(
    spec: str, amqp_url: str, vhost: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = amqp_url.rsplit("/", 1)[0]
    argv = ["publish", spec, "--service", "petisco", "--event", "UserCreated", "--url", base]
    status, _out, err = run(capsys, *argv)
    assert status == 1
    assert f"exchange 'bnd.petisco' does not exist on vhost {vhost!r}" in err
    assert f"`rabbitform plan {spec}` then `rabbitform apply {spec}`" in err


@settings(max_examples=10, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    password=st.builds(
        lambda a, r, b: a + r + b,
        st.text(string.ascii_letters, min_size=3, max_size=6),
        st.sampled_from("#/@"),
        st.text(string.ascii_letters + "#/@", min_size=2, max_size=6),
    )
)
def test_the_library_refuses_malformed_urls_and_creates_nothing(password: str) -> None:
    """The configurer once became guest on `/` and created its objects there."""
    url = f"amqp://{USER}:{password}@127.0.0.1:5672/team"
    with pytest.raises(UrlError) as caught:
        RabbitMqEventConfigurer(RabbitMqConnector(url=url), "bndprop", "petisco")
    assert password not in str(caught.value)
    listed = requests.get(
        f"{MANAGEMENT_URL}/api/exchanges/%2F", auth=(USER, PASSWORD), params={"columns": "name"}, timeout=60
    ).json()
    assert not [e for e in listed if e["name"].startswith("bndprop.")]
