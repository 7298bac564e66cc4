"""`apply` changes nothing, not even the vhost, before the plan is confirmed, and a lock broken
while it waits at the prompt stops it."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.conftest import PASSWORD, USER, delete_ownership_records
from tests.integration.live_support import MAIN, publish
from tests.integration.support import wait_for
from tests.integration.test_plan_apply import holding_one_unacked
from tests.integration.test_plan_apply_cli import _Terminal, broker, write_spec  # noqa: F401 (a fixture)
from topology.broker.management import ManagementClient
from topology.cli.main import main
from topology.state.lock import force_unlock


@pytest.fixture
def missing_vhost(management_url: str) -> Iterator[str]:
    name = f"test-unconfirmed-{uuid.uuid4().hex[:8]}"
    yield name
    requests.delete(f"{management_url}/api/vhosts/{quote(name, safe='')}", auth=(USER, PASSWORD), timeout=30)
    delete_ownership_records(management_url, name)


def _vhost_exists(client: ManagementClient, vhost: str) -> bool:
    return client.get("vhosts", vhost, missing_ok=True) is not None


@pytest.mark.parametrize("stdin", [io.StringIO("yes\n"), _Terminal("no\n")], ids=["no-terminal", "answered-no"])
def test_a_refused_apply_leaves_a_missing_vhost_missing(
    broker: ManagementClient,  # noqa: F811
    missing_vhost: str,
    stdin: io.StringIO,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", missing_vhost)
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["apply", spec]) == 1
    assert "+ vhost" in capsys.readouterr().out  # the plan was shown
    assert not _vhost_exists(broker, missing_vhost)
    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    assert main(["apply", spec]) == 0
    assert "Apply complete: 18 added" in capsys.readouterr().out


def test_a_lock_broken_while_apply_waits_at_its_prompt_stops_it(
    broker: ManagementClient,  # noqa: F811
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)

    class BreakThenYes(_Terminal):
        def readline(self, *args: object) -> str:
            wait_for(lambda: _try_unlock(broker, vhost), "the lock's connection listed")
            return "yes\n"

    monkeypatch.setattr("sys.stdin", BreakThenYes())
    assert main(["apply", spec]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "while apply waited on spec 'alice'" in err and "nothing was changed" in err
    assert main(["plan", spec, "--detailed-exitcode"]) == 2  # nothing was applied


def _try_unlock(client: ManagementClient, vhost: str) -> bool:
    try:
        return force_unlock(client, vhost, "alice") is not None
    except Exception:
        return False


def test_destroy_of_a_spec_never_applied_says_so(
    broker: ManagementClient,  # noqa: F811
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    assert main(["destroy", spec, "--auto-approve"]) == 0
    out = capsys.readouterr().out
    assert f"spec 'alice' had no ownership record on vhost {vhost!r} (never applied there)" in out
    assert "removed the ownership record" not in out


def test_destroy_refuses_a_queue_whose_consumer_holds_a_message_unacknowledged(
    broker: ManagementClient,  # noqa: F811
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The queue has no ready message (AMQP sees it empty, so would `if-empty`): the management
    API's unacknowledged count keeps it, without --allow-data-loss."""
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    assert main(["apply", spec, "--auto-approve"]) == 0
    publish(broker, vhost, MAIN, 1)
    with holding_one_unacked(broker, vhost, MAIN):
        assert main(["destroy", spec, "--auto-approve"]) == 1
        assert broker.get("queues", vhost, MAIN, missing_ok=True) is not None
    out = capsys.readouterr().out
    assert f"queue {MAIN} holds 1 message: deleting it loses them" in out
