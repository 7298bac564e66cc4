"""4.x stores `x-queue-type` on every queue (3.x only under a vhost default queue type): plans
normalise it, so a broker upgrade never shows a permanent diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from topology.apply.verify import unconverged
from topology.cli.main import main
from topology.compile.compiler import compile_spec
from topology.compile.definitions import default_queue_type, from_definitions, to_definitions
from topology.plan.diff import compute_plan
from topology.plan.scope import Scope
from topology.spec.model import Spec

SPEC: dict[str, Any] = {
    "organization": "alice",
    "services": {
        "petisco": {
            "events": {
                "UserCreated": {
                    "subscribers": {"send_mail_handler": {}, "audit_handler": {"queue_type": "quorum"}},
                }
            }
        }
    },
    "store": {},
}


def as_4x(definitions: dict[str, Any], vhost_default: str | None = None) -> dict[str, Any]:
    """What a 4.x broker returns: every queue with its type spelled out, plus server-added keys."""
    for item in definitions["queues"]:
        item["arguments"] = {"x-queue-type": "classic", **item["arguments"]}
        item["type"] = item["arguments"]["x-queue-type"]
    if vhost_default:
        definitions["vhosts"] = [{"name": "/", "default_queue_type": vhost_default, "metadata": {}}]
    return definitions


@pytest.mark.parametrize("vhost_default", [None, "classic", "quorum"])
def test_an_applied_spec_read_from_4x_plans_no_change(vhost_default: str | None) -> None:
    spec = Spec.model_validate(SPEC)
    desired = compile_spec(spec)
    info = {"name": "/", "default_queue_type": vhost_default} if vhost_default else None
    actual = from_definitions(as_4x(to_definitions(desired), vhost_default), "/", default_queue_type(info))
    plan = compute_plan(desired, actual, Scope.of_spec(spec))
    assert plan.changes == ()
    created = compute_plan(desired, None, Scope.of_spec(spec))
    assert unconverged(created, actual) == []  # apply's verification agrees


def test_a_3x_queue_without_a_type_takes_the_vhost_default() -> None:
    spec = Spec.model_validate(SPEC)
    desired = compile_spec(spec)
    definitions = to_definitions(desired)
    for item in definitions["queues"]:  # declared without a type: quorum under a quorum default
        item["arguments"].pop("x-queue-type", None)
    actual = from_definitions(definitions, "/", default_queue_type({"default_queue_type": "quorum"}))
    replaced = {c.name for c in compute_plan(desired, actual, Scope.of_spec(spec)).changes}
    assert replaced and all("audit_handler" not in name for name in replaced)  # the quorum one matches
    assert default_queue_type({"default_queue_type": "undefined"}) == "classic"  # 3.10 without a default
    assert default_queue_type({"metadata": {"default_queue_type": "quorum"}}) == "quorum"  # 4.x metadata


def test_plan_against_a_4x_export_file_shows_no_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps(SPEC))
    export = as_4x(to_definitions(compile_spec(Spec.model_validate(SPEC))), "quorum")
    state = tmp_path / "export.json"
    state.write_text(json.dumps(export))
    assert main(["plan", str(spec_path), "--state", str(state), "--detailed-exitcode"]) == 0
    assert "No changes" in capsys.readouterr().out
