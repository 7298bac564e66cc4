"""The plan file's one model: what is written reads back equal, and every field is checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from topology.compile.access import with_access
from topology.compile.compiler import compile_spec
from topology.plan.diff import compute_plan
from topology.plan.model import Plan
from topology.plan.saved import SavedPlanError, parse_saved_plan, plan_data, plan_json
from topology.plan.scope import Scope
from topology.spec.model import Spec

SPEC = Spec.model_validate(
    {
        "organization": "alice",
        "services": {"petisco": {"events": {"UserCreated": {"subscribers": {"send_mail_handler": {}}}}}},
        "store": {},
    }
)


def live_plan() -> Plan:
    plan = compute_plan(compile_spec(SPEC), None, Scope.of_spec(SPEC))
    return Plan(
        **{**plan.__dict__, "management_url": "http://127.0.0.1:15672", "owner": "alice", "source": "spec.yaml"}
    )


def data() -> dict[str, Any]:
    return json.loads(plan_json(live_plan()))


def parse(value: dict[str, Any]) -> Plan:
    return parse_saved_plan(json.dumps(value), "plan.json")


def test_what_is_written_reads_back_equal() -> None:
    plan = live_plan()
    assert parse_saved_plan(plan_json(plan), "plan.json") == plan
    assert plan_data(plan)["owner"] == "alice"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # the owner names the lock queue and the ownership record: the spec's rule for names
        (lambda d: d.update(owner="Alice Smith"), "invalid saved plan: owner: 'Alice Smith' is not a valid owner"),
        (lambda d: d.update(owner=""), "invalid saved plan: owner:"),
        (lambda d: d.update(owner=7), "invalid saved plan: owner: input should be a valid string"),
        (lambda d: d["scope"].update(organization="a.b"), "scope.organization: 'a.b' is not a valid owner"),
        (lambda d: d["scope"].update(services=["ok", "Not ok"]), "scope.services.1:"),
        (lambda d: d["summary"].update(add=3), "summary.add is 3 but the plan has 18"),
        (lambda d: d["summary"].update(unchanged=-1), "summary.unchanged: input should be greater than or equal to 0"),
        (lambda d: d.update(fingerprint="md5:abc"), "invalid saved plan: fingerprint:"),
        (lambda d: d.update(management_url="http://guest:s3cret@127.0.0.1:15672"), "must not hold credentials"),
        (lambda d: d.update(management_url="ftp://127.0.0.1"), "invalid saved plan: management_url:"),
        (lambda d: d.update(allow_data_loss="no"), "allow_data_loss: input should be a valid boolean"),
        (lambda d: d.update(vhost="a\nb"), "invalid saved plan: vhost: holds a control character"),
        (lambda d: d["changes"][0].update(name="other"), "changes.0: names '/', not 'other'"),
        (
            lambda d: d["changes"][0].update(name="other", after={"name": "other"}),
            "changes vhost 'other', not the plan's",
        ),
        (lambda d: d["changes"][1].update(move=True), "only a queue replace moves messages"),
        (lambda d: d["changes"][1].update(messages="3"), "changes.1.messages: input should be a valid integer"),
        (lambda d: d.pop("summary"), "invalid saved plan: summary: is required"),
        (lambda d: d.pop("allow_data_loss"), "allow_data_loss: is required"),
    ],
)
def test_every_field_is_checked(mutate: Any, expected: str) -> None:
    value = data()
    mutate(value)
    with pytest.raises(SavedPlanError) as raised:
        parse(value)
    message = str(raised.value)
    assert expected in message and "\n" not in message
    assert "s3cret" not in message


def test_unknown_keys_are_ignored() -> None:
    value = data()
    value["added_by_a_newer_version"] = {"anything": 1}
    value["changes"][0]["note"] = "x"
    assert parse(value) == live_plan()


def test_the_displayed_form_hides_password_hashes_and_cannot_be_applied() -> None:
    spec = Spec.model_validate({**SPEC.model_dump(), "access": {"billing": {"password": "x", "store": True}}})
    desired = with_access(compile_spec(spec), spec, salt=lambda: b"salt")
    plan = compute_plan(desired, None, Scope.of_spec(spec))
    shown = plan_json(plan, redacted=True)
    assert "password_hash" not in shown and '"password": "(set)"' in shown
    with pytest.raises(SavedPlanError, match="password_hash"):
        parse_saved_plan(shown, "plan.json")
    assert parse_saved_plan(plan_json(plan), "plan.json") == plan
