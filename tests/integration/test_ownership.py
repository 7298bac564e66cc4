"""Ownership recorded in the broker, `destroy`, and the apply lock, on the real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.live_support import client, publish, wait_for_messages
from tests.integration.support import import_topology, queue_names, wait_for
from topology import naming
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_snapshot
from topology.cli.main import main
from topology.compile.objects import Queue, Topology
from topology.plan.scope import Scope
from topology.spec.loader import parse_spec
from topology.state.lock import lock_queue
from topology.state.record import OwnershipRecord
from topology.state.store import read_records, write_record

SUBSCRIBER = "    events:\n      UserCreated:\n        subscribers:\n          send_mail_handler: {}\n"

HOLD_LOCK = """
import sys, time
from topology import naming
from topology.broker.management import ManagementClient
from topology.state.lock import BrokerLock
with BrokerLock(ManagementClient.from_env(), sys.argv[1], sys.argv[2], "apply"):
    print("held", flush=True)
    time.sleep(600)
"""


def spec_text(
    vhost: str, *services: str, organization: str = "alice", name: str | None = None, store: bool = True
) -> str:
    lines = [f"organization: {organization}", f"vhost: {json.dumps(vhost)}"]
    if name:
        lines.append(f"name: {name}")
    lines.append("services:")
    for service in services:
        lines.append(f"  {service}:\n{SUBSCRIBER}")
    if store:
        lines.append("store: {queue: store}")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def broker(management_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementClient]:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)
    c = client(management_url)
    yield c
    c.close()


def owned_by(vhost: str, names: list[str], service: str) -> list[str]:
    return [n for n in names if f"alice.{service}." in n]


def test_dropping_a_service_destroys_exactly_its_objects(
    broker: ManagementClient, management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another team's bus (never recorded) and a hand-made queue share the vhost.
    import_topology(management_url, vhost, parse_spec(spec_text(vhost, "shop", organization="bob", store=False)))
    import_topology(management_url, vhost, Topology(vhost, queues=(Queue("hand-made"),)))
    both = write(tmp_path / "both.yaml", spec_text(vhost, "petisco", "billing"))
    assert main(["apply", both, "--auto-approve", "--no-color"]) == 0
    (recorded,) = read_records(broker, vhost)
    assert (recorded.owner, recorded.scope.services) == ("alice", ("billing", "petisco"))
    before = read_snapshot(broker, vhost).topology
    assert before is not None
    capsys.readouterr()

    petisco_only = write(tmp_path / "petisco.yaml", spec_text(vhost, "petisco"))
    assert main(["apply", petisco_only, "--auto-approve", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "   - exchange alice.billing\n" in out
    assert "   - binding alice.billing -> store [alice.billing.*.event.#]" in out

    after = read_snapshot(broker, vhost).topology
    assert after is not None
    gone = {q.name for q in before.queues} - {q.name for q in after.queues}
    assert gone == {
        "alice.billing.1.event.user.created.send_mail_handler",
        "retry.alice.billing.1.event.user.created.send_mail_handler",
        "dead_letter.alice.billing.1.event.user.created.send_mail_handler",
    }
    assert {e.name for e in before.exchanges} - {e.name for e in after.exchanges} == {
        "alice.billing",
        "retry.alice.billing",
        "dead_letter.alice.billing",
    }
    assert not [b for b in after.bindings if "billing" in b.source or "billing" in b.destination]
    assert {b.key for b in after.bindings} == {b.key for b in before.bindings if "billing" not in b.label}
    assert "hand-made" in {q.name for q in after.queues}
    assert "bob.shop.1.event.user.created.send_mail_handler" in {q.name for q in after.queues}
    (narrowed,) = read_records(broker, vhost)
    assert narrowed.scope.services == ("petisco",)
    assert main(["plan", petisco_only, "--detailed-exitcode"]) == 0


def test_destroy_refuses_messages_then_removes_only_what_the_spec_owns(
    broker: ManagementClient, management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import_topology(management_url, vhost, parse_spec(spec_text(vhost, "shop", organization="bob", store=False)))
    import_topology(management_url, vhost, Topology(vhost, queues=(Queue("hand-made"),)))
    spec = write(tmp_path / "spec.yaml", spec_text(vhost, "petisco"))
    assert main(["apply", spec, "--auto-approve"]) == 0
    queue = "alice.petisco.1.event.user.created.send_mail_handler"
    publish(broker, vhost, queue, 1)
    wait_for_messages(broker, vhost, queue, 1)
    capsys.readouterr()

    assert main(["destroy", spec, "--auto-approve", "--no-color"]) == 1
    assert f"Error: queue {queue} holds 1 message:" in capsys.readouterr().out
    assert main(["destroy", spec, "--allow-data-loss"]) == 1  # stdin is not a terminal
    assert "refusing to destroy without confirmation" in capsys.readouterr().err
    assert queue in queue_names(management_url, vhost) and read_records(broker, vhost)

    assert main(["destroy", spec, "--auto-approve", "--allow-data-loss", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "Plan: 0 to add, 0 to replace, 17 to destroy." in out
    assert f"removed the ownership record of spec 'alice' on vhost '{vhost}'" in out
    assert queue_names(management_url, vhost) == [
        "bob.shop.1.event.user.created.send_mail_handler",
        "dead_letter.bob.shop.1.event.user.created.send_mail_handler",
        "hand-made",
        "retry.bob.shop.1.event.user.created.send_mail_handler",
    ]
    snapshot = read_snapshot(broker, vhost)
    assert snapshot.exists and not snapshot.records  # the vhost stays, the record is gone
    assert {e.name for e in snapshot.topology.exchanges} == {"bob.shop", "retry.bob.shop", "dead_letter.bob.shop"}
    assert main(["destroy", spec, "--auto-approve"]) == 0  # nothing left: a no-op
    assert "Plan: 0 to add" not in capsys.readouterr().out


def hold_lock(vhost: str, owner: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, vhost, owner], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_apply_is_locked_out_and_a_dead_holders_lock_expires(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path / "spec.yaml", spec_text(vhost, "petisco"))
    holder = hold_lock(vhost, "alice")
    try:
        assert main(["apply", spec, "--auto-approve"]) == 1
        error = capsys.readouterr().err
        assert f"error: spec 'alice' on vhost '{vhost}' is locked by `rabbitform apply` on host " in error
        assert f", pid {holder.pid}, since 20" in error
        # plan --out takes no lock and records nothing.
        assert main(["plan", spec, "--out", str(tmp_path / "plan.json")]) == 0
        assert not read_records(broker, vhost)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died: its connection closed and the broker dropped the lock (the wait covers the
    # moment the broker takes to notice the closed socket).
    assert main(["apply", spec, "--auto-approve", "--lock-timeout", "30"]) == 0
    assert broker.get("queues", vhost, lock_queue("alice"), missing_ok=True) is None


def test_force_unlock_breaks_a_stuck_holders_lock(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path / "spec.yaml", spec_text(vhost, "petisco"))
    holder = hold_lock(vhost, "alice")
    try:
        wait_for(
            lambda: (broker.get("queues", vhost, lock_queue("alice"), missing_ok=True) or {}).get("owner_pid_details"),
            "the broker to list the lock's connection",
            timeout=30,
            interval=0.5,
        )
        assert main(["force-unlock", spec]) == 0
        assert (
            f"Broke the lock of spec 'alice' on vhost '{vhost}' held by `rabbitform apply`" in capsys.readouterr().out
        )
        assert main(["apply", spec, "--auto-approve"]) == 0
        assert holder.poll() is None  # the stuck process lives on, without the lock
    finally:
        holder.kill()
        holder.wait()
    assert main(["force-unlock", spec]) == 0
    assert "is not locked: nothing to do" in capsys.readouterr().out


def test_specs_share_a_vhost_and_never_own_the_same_object(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = write(tmp_path / "users.yaml", spec_text(vhost, "petisco", name="alice-users"))
    billing = write(tmp_path / "billing.yaml", spec_text(vhost, "billing", name="alice-billing", store=False))
    assert main(["apply", users, "--auto-approve"]) == 0
    assert main(["apply", billing, "--auto-approve"]) == 0
    assert [r.owner for r in read_records(broker, vhost)] == ["alice-billing", "alice-users"]
    assert main(["plan", users, "--detailed-exitcode"]) == 0
    assert main(["plan", billing, "--detailed-exitcode"]) == 0
    capsys.readouterr()

    rival = write(tmp_path / "rival.yaml", spec_text(vhost, "billing", name="alice-ops", store=False))
    assert main(["apply", rival, "--auto-approve", "--no-color"]) == 1
    out = capsys.readouterr().out
    assert "Error: service billing is already owned by spec 'alice-billing' (organization alice, recorded 20" in out
    assert [r.owner for r in read_records(broker, vhost)] == ["alice-billing", "alice-users"]

    assert main(["destroy", billing, "--auto-approve"]) == 0
    names = queue_names(broker.display_url, vhost)
    assert not [n for n in names if "billing" in n] and "alice.petisco.1.event.user.created.send_mail_handler" in names
    assert main(["plan", users, "--detailed-exitcode"]) == 0
    assert main(["apply", rival, "--auto-approve"]) == 0  # billing is free now


def test_records_of_a_deleted_vhost_are_forgotten(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path / "spec.yaml", spec_text(vhost, "petisco"))
    stale = OwnershipRecord(vhost, "bob", Scope("bob", ("shop",), naming.store_queues("store")))
    write_record(broker, stale)
    broker.delete("vhosts", vhost)  # the records outlive it
    assert main(["destroy", spec, "--auto-approve"]) == 0
    assert "Nothing to destroy: vhost" in capsys.readouterr().out
    assert main(["apply", spec, "--auto-approve"]) == 0  # bob's store claim went with the vhost
    assert [r.owner for r in read_records(broker, vhost)] == ["alice"]


def test_destroy_deletes_only_what_the_spec_declares_or_its_record_lists(
    broker: ManagementClient, management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = write(tmp_path / "both.yaml", spec_text(vhost, "petisco", "billing"))
    assert main(["apply", both, "--auto-approve"]) == 0
    # a hand-made queue with petisco's prefix: in scope by name, but not the spec's
    import_topology(management_url, vhost, Topology(vhost, queues=(Queue("alice.petisco.hand-made"),)))
    capsys.readouterr()
    petisco_only = write(tmp_path / "petisco.yaml", spec_text(vhost, "petisco"))  # billing: in the record only
    assert main(["destroy", petisco_only, "--auto-approve", "--no-color"]) == 0
    captured = capsys.readouterr()
    assert "   - queue alice.petisco.hand-made" not in captured.out
    assert "queue alice.petisco.hand-made has the spec's names but the spec does not declare it" in captured.out
    assert queue_names(management_url, vhost) == ["alice.petisco.hand-made"]  # billing's objects went too
