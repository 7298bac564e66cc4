"""The planner's AMQP endpoint (the lock, moves) on the three-node cluster and a node of the
tests' own: found through the management API, and an explicit one verified to reach the same
broker before anything changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pytest
import requests

from tests.cluster.support import AUTH, Cluster, create_vhost, delete_vhost
from tests.conftest import MANAGEMENT_URL, delete_ownership_records
from tests.integration.private_broker import PrivateBroker
from topology.cli.main import main
from topology.state.lock import lock_queue

SPEC = """\
organization: acme
vhost: {vhost}
defaults: {{queue_type: quorum}}
services:
  orders:
    events:
      OrderPlaced:
        subscribers:
          notify: {{}}
"""
README_URLS = "http://127.0.0.1:15699,http://127.0.0.1:15682"  # as the README prints it
README_SPEC = str(Path(__file__).parents[2] / "specs" / "examples" / "quorum.yaml")


@pytest.fixture(autouse=True)
def no_amqp_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other tests point these at the shared broker for the whole process (petisco reads them)."""
    for name in ("RABBITMQ_HOST", "RABBITMQ_PORT", "RABBITMQ_URL", "RABBITMQ_MANAGEMENT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def new_vhost(cluster: Cluster) -> Iterator[str]:
    """A vhost name no broker has yet; deleted afterwards on the cluster and the shared broker."""
    name = f"endpoint-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        delete_vhost(name)
        requests.delete(f"{MANAGEMENT_URL}/api/vhosts/{quote(name, safe='')}", auth=AUTH, timeout=30)
        delete_ownership_records(cluster.management_urls[1], name)


def _spec(tmp_path: Path, vhost: str) -> str:
    path = tmp_path / "q.yaml"
    path.write_text(SPEC.format(vhost=vhost), encoding="utf-8")
    return str(path)


def _exists(management_url: str, vhost: str) -> bool:
    response = requests.get(f"{management_url}/api/vhosts/{quote(vhost, safe='')}", auth=AUTH, timeout=30)
    return response.status_code == 200


def test_the_readme_cluster_example_works_as_printed(
    cluster: Cluster, new_vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, vhost = README_SPEC, ["--vhost", new_vhost]  # the README's spec, on a vhost of the test's own
    assert main(["apply", spec, *vhost, "--management-url", README_URLS, "--auto-approve"]) == 0
    assert "Apply complete: 11 added" in capsys.readouterr().out  # the vhost and 10 objects
    assert not _exists(MANAGEMENT_URL, new_vhost)  # nothing on the broker at <management host>:5672
    urls = f"amqp://guest:guest@127.0.0.1:5699/{new_vhost},amqp://guest:guest@127.0.0.1:5683/{new_vhost}"
    publish = ["publish", spec, *vhost, "--service", "orders", "--event", "OrderPlaced"]
    assert main([*publish, "--url", urls]) == 0  # as printed
    assert "confirmed by the broker" in capsys.readouterr().out


def test_the_runtime_cli_follows_the_same_rule(
    cluster: Cluster, new_vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, new_vhost)
    assert main(["apply", spec, "--management-url", "http://127.0.0.1:15683", "--auto-approve"]) == 0
    publish = ["publish", spec, "--service", "orders", "--event", "OrderPlaced", "--management-url"]
    assert main([*publish, "http://127.0.0.1:15682"]) == 0  # no --url: the AMQP listener rf2 names
    assert "at amqp://127.0.0.1:5682: confirmed by the broker" in capsys.readouterr().out
    assert main([*publish, "http://127.0.0.1:15682", "--url", "amqp://guest:guest@127.0.0.1:5672"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "are not the same broker" in err[0]


def test_the_lock_is_taken_on_the_cluster_not_on_the_broker_at_5672(
    cluster: Cluster, new_vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A vhost of the same name on the shared broker used to take the lock there, unguarded."""
    create_vhost(new_vhost, cluster.management_urls[1])
    requests.put(f"{MANAGEMENT_URL}/api/vhosts/{new_vhost}", auth=AUTH, timeout=30).raise_for_status()
    holder = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[2](new_vhost)))  # rf3 holds the lock
    try:
        holder.channel().queue_declare(lock_queue("acme"), exclusive=True)
        code = main(["apply", _spec(tmp_path, new_vhost), "--management-url", README_URLS, "--auto-approve"])
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert code == 1
    assert f"spec 'acme' on vhost {new_vhost!r} is locked" in err


@pytest.mark.parametrize("which", ["shared", "private"])
def test_an_amqp_url_of_another_broker_is_refused_before_any_change(
    cluster: Cluster,
    private_broker: PrivateBroker,
    which: str,
    new_vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = "amqp://guest:guest@127.0.0.1:5672" if which == "shared" else private_broker.amqp_url()
    code = main(["apply", _spec(tmp_path, new_vhost), "--management-url", README_URLS, "--amqp-url", other])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "are not the same broker" in err[0] and "nothing was changed" in err[0] and "guest:" not in err[0]
    assert not _exists(cluster.management_urls[1], new_vhost)


def test_an_amqp_url_of_another_node_of_the_same_cluster_is_accepted(
    cluster: Cluster, new_vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, new_vhost)
    rf3 = "amqp://guest:guest@127.0.0.1:5683"
    assert main(["apply", spec, "--management-url", "http://127.0.0.1:15682", "--amqp-url", rf3, "--auto-approve"]) == 0
    assert main(["destroy", spec, "--management-url", "http://127.0.0.1:15682", "--auto-approve"]) == 0
    assert "Destroy complete: 10 destroyed" in capsys.readouterr().out


def test_the_planner_takes_the_runtimes_rabbitmq_url_and_verifies_it(
    cluster: Cluster,
    new_vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One way to name the broker for both sides: `$RABBITMQ_URL` (here with a service account the
    broker does not know: the planner connects as its management user, to the URL's node)."""
    spec = _spec(tmp_path, new_vhost)
    monkeypatch.setenv("RABBITMQ_URL", "amqp://app:app-pw@127.0.0.1:5672/%2F")  # the shared broker: another one
    assert main(["apply", spec, "--management-url", "http://127.0.0.1:15682", "--auto-approve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: $RABBITMQ_URL amqp://127.0.0.1:5672 reaches broker")
    assert "app-pw" not in err[0] and not _exists(cluster.management_urls[1], new_vhost)
    monkeypatch.setenv("RABBITMQ_URL", f"amqp://app:app-pw@127.0.0.1:5683/{new_vhost}")  # rf3: same cluster
    assert main(["apply", spec, "--management-url", "http://127.0.0.1:15682", "--auto-approve"]) == 0
    assert main(["destroy", spec, "--management-url", "http://127.0.0.1:15682", "--auto-approve"]) == 0
    assert "Destroy complete: 10 destroyed" in capsys.readouterr().out


def test_a_lock_taken_through_another_node_is_shown_by_this_nodes_management_api(
    cluster: Cluster, new_vhost: str
) -> None:
    """A different node of the same cluster is the same broker: the lock's check accepts it."""
    from topology.broker.management import ManagementClient
    from topology.state.lock import BrokerLock

    create_vhost(new_vhost, cluster.management_urls[1])
    client = ManagementClient.from_env(cluster.management_urls[1])  # rf2's management API
    try:
        with BrokerLock(client, new_vhost, "acme", "apply", amqp_url=cluster.amqp_urls[2](new_vhost)) as lock:  # rf3
            lock.ensure_held("apply")
    finally:
        client.close()
