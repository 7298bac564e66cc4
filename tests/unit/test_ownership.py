"""Ownership records and the lock's holder, on plain data: encoding, scopes, conflicts."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from topology.cli.main import main
from topology.compile.compiler import compile_spec
from topology.plan.diff import compute_plan
from topology.plan.scope import Scope
from topology.spec.model import Spec
from topology.state.lock import Holder, lock_queue, locked_message
from topology.state.record import (
    Ownership,
    OwnershipRecord,
    ownership_of,
    parameter_name,
    scopes_overlap,
    shared_objects,
)
from topology.state.store import decode_records

SUBSCRIBER = {"events": {"UserCreated": {"subscribers": {"send_mail_handler": {}}}}}


def spec(*services: str, store: bool = True, name: str | None = None, organization: str = "alice") -> Spec:
    data: dict[str, object] = {
        "organization": organization,
        "vhost": "v",
        "services": {service: SUBSCRIBER for service in services},
    }
    if store:
        data["store"] = {"queue": "store"}
    if name:
        data["name"] = name
    return Spec.model_validate(data)


def record(spec_: Spec, owner: str | None = None) -> OwnershipRecord:
    return OwnershipRecord(spec_.vhost, owner or spec_.owner, Scope.of_spec(spec_), updated_at="2026-01-01T00:00:00Z")


def test_a_record_round_trips_through_its_parameter_value() -> None:
    original = OwnershipRecord(
        "/", "alice", Scope.of_spec(spec("petisco")), "rabbitform", "t", "apply on host h, pid 1"
    )
    assert OwnershipRecord.from_value(original.to_value()) == original
    assert original.parameter_name == parameter_name("/", "alice") == "rabbitform-owner:alice@/"


def test_values_that_are_not_records_are_ignored_and_newer_formats_refused() -> None:
    assert OwnershipRecord.from_value("rabbitmq-cluster-id") is None
    assert OwnershipRecord.from_value({"kind": "other"}) is None
    newer = {**record(spec("petisco")).to_value(), "format_version": 2}
    with pytest.raises(ValueError, match="upgrade rabbitform"):
        OwnershipRecord.from_value(newer)


def test_records_are_read_for_one_vhost_only() -> None:
    mine, elsewhere = record(spec("petisco")), OwnershipRecord("w", "alice", Scope.of_spec(spec("petisco")))
    listed = [
        {"name": "internal_cluster_id", "value": "x"},
        {"name": mine.parameter_name, "value": mine.to_value()},
        {"name": elsewhere.parameter_name, "value": elsewhere.to_value()},
    ]
    assert decode_records(listed, "v") == [mine]


def test_the_owner_is_the_spec_name_else_the_organization() -> None:
    assert spec("petisco").owner == "alice"
    assert spec("petisco", name="alice-billing").owner == "alice-billing"


def test_a_service_and_the_store_dropped_from_the_spec_stay_in_scope_and_are_deleted() -> None:
    before, after = spec("petisco", "billing"), spec("petisco", store=False)
    ownership = ownership_of(after, [record(before)])
    assert ownership.planning_scope.services == ("billing", "petisco")
    assert set(ownership.planning_scope.store_queues) == {"store", "retry.store", "dead_letter.store"}
    plan = compute_plan(compile_spec(after), compile_spec(before), ownership.planning_scope)
    deleted = {c.name for c in plan.changes if c.action == "delete"}
    assert "alice.billing" in deleted and "alice.billing.1.event.user.created.send_mail_handler" in deleted
    assert {"store", "retry.store", "dead_letter.store"} <= deleted
    assert "alice.billing -> store [alice.billing.*.event.#]" in deleted
    assert not any(c.action == "delete" and "petisco" in c.name and "store" not in c.name for c in plan.changes)
    # Without the record, the dropped service is out of scope and left alone (the old behaviour).
    unrecorded = compute_plan(compile_spec(after), compile_spec(before), Scope.of_spec(after))
    assert "alice.billing" not in {c.name for c in unrecorded.changes}


def test_another_spec_owning_the_same_service_or_store_is_named() -> None:
    billing = spec("billing", name="alice-billing")
    mine = spec("petisco", "billing")
    ownership = ownership_of(mine, [record(billing)])
    problems = ownership.problems(compile_spec(mine), None)
    assert len(problems) == 1
    assert (
        "are already owned by spec 'alice-billing' (organization alice, recorded 2026-01-01T00:00:00Z)" in problems[0]
    )
    assert problems[0].startswith("service billing, store queue dead_letter.store, store queue retry.store and 1 more")


def test_specs_owning_different_services_of_one_organization_do_not_conflict() -> None:
    billing = spec("billing", name="alice-billing", store=False)
    mine = spec("petisco")
    actual = compile_spec(spec("petisco", "billing"))
    assert ownership_of(mine, [record(billing)]).problems(compile_spec(mine), actual) == []


def test_two_organizations_with_a_store_share_its_queue_name() -> None:
    bob = spec("petisco", organization="bob")
    problems = ownership_of(spec("petisco"), [record(bob)]).problems(compile_spec(spec("petisco")), None)
    assert problems and "store queue store" in problems[0] and "spec 'bob'" in problems[0]
    assert scopes_overlap(Scope.of_spec(spec("petisco")), Scope.of_spec(bob)) == [
        "store queue dead_letter.store",
        "store queue retry.store",
        "store queue store",
    ]


def test_a_recorded_organization_change_is_refused() -> None:
    ownership = ownership_of(spec("petisco", organization="bob", name="team"), [record(spec("petisco"), "team")])
    assert ownership.planning_scope == Scope.of_spec(spec("petisco", organization="bob"))
    (problem,) = ownership.problems(compile_spec(spec("petisco", organization="bob")), None)
    assert "recorded for organization alice, not bob" in problem


def test_shared_objects_in_the_vhost_count_only_when_both_scopes_own_them() -> None:
    mine, other = Scope.of_spec(spec("petisco")), Scope.of_spec(spec("billing", store=False))
    actual = compile_spec(spec("petisco", "billing"))
    assert shared_objects(compile_spec(spec("petisco")), actual, mine, other) == []
    # Names no service or store rule catches (organization "retry", service "alice" vs alice's retry
    # queues) are still found object by object.
    odd = Scope.of_spec(spec("alice", organization="retry", store=False))
    assert "queue retry.alice.petisco.1.event.user.created.send_mail_handler" in shared_objects(
        compile_spec(spec("petisco")), None, mine, odd
    )
    assert Ownership.of("alice", mine, []).recorded is None


def test_the_holder_round_trips_through_the_lock_queue_arguments() -> None:
    holder = Holder.me("apply", datetime(2026, 11, 27, 4, 0, 0, 123, tzinfo=timezone.utc))
    assert holder.since == "2026-11-27T04:00:00Z"
    assert Holder.from_arguments(holder.to_arguments()) == holder
    assert Holder.from_arguments({}) is None
    assert holder.describe().startswith(f"`rabbitform apply` on host {holder.host}, pid {holder.pid}, since 2026")


def test_the_locked_out_message_names_the_holder_and_the_ways_out() -> None:
    holder = Holder("destroy", "ci-7", 4242, "2026-11-27T04:00:00Z")
    message = locked_message("staging", "alice", holder, 0)
    assert message == (
        "spec 'alice' on vhost 'staging' is locked by `rabbitform destroy` on host ci-7, pid 4242, since "
        "2026-11-27T04:00:00Z; wait for it to finish, pass --lock-timeout SECONDS to wait, or run "
        "`rabbitform force-unlock SPEC` if that process is stuck"
    )
    assert "(waited 3 s)" in locked_message("staging", "alice", holder, 3)


@pytest.mark.parametrize("organization", ["rabbitform", "rabbitform-lock", "a"])
def test_the_lock_queue_is_in_no_spec_scope(organization: str) -> None:
    scope = Scope.of_spec(spec("lock", organization=organization))
    assert not scope.owns_queue(lock_queue(organization))
    assert not scope.owns_queue(lock_queue("alice"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["apply", "s.yaml", "--lock-timeout", "-1"], "--lock-timeout: must be a number of seconds from 0 to 86400"),
        (["apply", "s.yaml", "--lock-timeout", "nan"], "--lock-timeout: must be a number of seconds from 0 to 86400"),
        (["apply", "s.yaml", "--lock-timeout", "inf"], "--lock-timeout: must be a number of seconds from 0 to 86400"),
        (["destroy", "s.yaml", "--lock-timeout", "1e9"], "--lock-timeout: must be a number of seconds from 0 to 86400"),
        (["destroy", "s.yaml", "--lock-timeout", "soon"], "--lock-timeout: 'soon' is not a number of seconds"),
        (["force-unlock"], "the following arguments are required: SPEC"),
    ],
)
def test_lock_options_are_checked_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 1
    assert message in capsys.readouterr().err


def test_a_dropped_petisco_store_keeps_its_exchanges_in_scope() -> None:
    before = Spec.model_validate(
        {"organization": "alice", "vhost": "v", "layout": "petisco", "services": {"svc": SUBSCRIBER}, "store": {}}
    )
    after = before.model_copy(update={"store": None})
    ownership = ownership_of(after, [record(before)])
    assert ownership.planning_scope.store_exchanges == ("dead_letter.alice.store", "retry.alice.store")
    assert OwnershipRecord.from_value(record(before).to_value()) == record(before)
