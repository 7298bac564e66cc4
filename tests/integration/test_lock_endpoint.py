"""The lock is held on the broker the management URL names, whatever AMQP endpoint took it.

The cluster-name probe before any change cannot tell two brokers apart that announce the same
cluster name; the lock can: its queue carries a connection name of its own, and the management
API must show that queue. Here a node of the tests' own (`private_broker`) is given the shared
broker's cluster name and a vhost of the same name, the case that used to take the lock there
unguarded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.conftest import AMQP_HOST, AMQP_PORT, PASSWORD, USER
from tests.integration.private_broker import AUTH, PrivateBroker
from topology.broker.amqp_endpoint import EndpointMismatch
from topology.broker.management import ManagementClient
from topology.cli.main import main
from topology.state.lock import BrokerLock, lock_queue

SPEC = """\
organization: acme
vhost: {vhost}
services:
  orders:
    events:
      OrderPlaced:
        subscribers:
          notify: {{}}
"""


def _cluster_name(management_url: str) -> str:
    response = requests.get(f"{management_url}/api/overview", params={"columns": "cluster_name"}, auth=AUTH, timeout=30)
    response.raise_for_status()
    return str(response.json()["cluster_name"])


@pytest.fixture
def twin(
    private_broker: PrivateBroker,
    management_url: str,
    vhost: str,
) -> Iterator[PrivateBroker]:
    """The private node, announcing the shared broker's cluster name, with a vhost named as the test's."""
    own_name = _cluster_name(private_broker.management_url)
    path = quote(vhost, safe="")
    requests.put(f"{private_broker.management_url}/api/vhosts/{path}", auth=AUTH, timeout=30).raise_for_status()
    requests.put(
        f"{private_broker.management_url}/api/permissions/{path}/guest",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        auth=AUTH,
        timeout=30,
    ).raise_for_status()
    private_broker.ctl("set_cluster_name", _cluster_name(management_url))
    try:
        yield private_broker
    finally:
        private_broker.ctl("set_cluster_name", own_name)
        private_broker.delete_vhost(vhost)


@pytest.fixture
def client(management_url: str) -> Iterator[ManagementClient]:
    managed = ManagementClient.from_env(management_url)
    try:
        yield managed
    finally:
        managed.close()


def test_a_lock_taken_on_the_managed_broker_is_verified(client: ManagementClient, vhost: str) -> None:
    url = f"amqp://{USER}:{PASSWORD}@{AMQP_HOST}:{AMQP_PORT}"
    with BrokerLock(client, vhost, "acme", "apply", amqp_url=url) as lock:
        lock.ensure_held("apply")


def test_a_lock_taken_on_another_broker_is_refused(client: ManagementClient, vhost: str, twin: PrivateBroker) -> None:
    lock = BrokerLock(client, vhost, "acme", "apply", amqp_url=twin.amqp_url())
    with pytest.raises(EndpointMismatch) as refused:
        lock.acquire()
    message = str(refused.value)
    assert "\n" not in message and "guest:" not in message
    assert f"127.0.0.1:{twin.port}" in message and client.display_url in message and "not the same broker" in message
    # the refused lock's connection is closed: the other broker holds nothing
    queue = f"{twin.management_url}/api/queues/{quote(vhost, safe='')}/{quote(lock_queue('acme'), safe='')}"
    assert requests.get(queue, auth=AUTH, timeout=30).status_code == 404


def test_apply_through_a_twin_cluster_name_changes_nothing(
    vhost: str, twin: PrivateBroker, management_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The probe before any change passes (same cluster name); the lock's check stops the apply."""
    spec = tmp_path / "acme.yaml"
    spec.write_text(SPEC.format(vhost=vhost), encoding="utf-8")
    arguments = ["--management-url", management_url, "--amqp-url", twin.amqp_url(), "--auto-approve"]
    assert main(["apply", str(spec), *arguments]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the same broker" in err[0] and "guest:" not in err[0]
    queues = requests.get(f"{management_url}/api/queues/{quote(vhost, safe='')}", auth=AUTH, timeout=30).json()
    assert queues == []  # nothing was created on the managed broker
