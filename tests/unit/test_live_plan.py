"""Plain-data rules of live planning: verification, additive plans, fingerprints, Markdown."""

from __future__ import annotations

from pathlib import Path

from topology.apply.verify import unconverged
from topology.compile.compiler import compile_spec
from topology.compile.objects import Queue, QueueStats, Topology
from topology.plan.diff import compute_plan, state_fingerprint
from topology.plan.render.markdown import render_markdown
from topology.plan.saved import SavedPlan, plan_data
from topology.plan.scope import Scope
from topology.spec.loader import load_spec

SPEC = load_spec(Path(__file__).resolve().parents[2] / "specs" / "alice.yaml")
DESIRED = compile_spec(SPEC)
SCOPE = Scope.of_spec(SPEC)
Q = "alice.petisco.1.event.user.created.send_mail_handler"
OLD = "alice.petisco.1.event.user.created.old_handler"
WITH_OLD = Topology.of("/", DESIRED.exchanges, [*DESIRED.queues, Queue(OLD)], DESIRED.bindings)


def test_a_plan_has_converged_when_the_broker_shows_its_end_state() -> None:
    plan = compute_plan(DESIRED, None, SCOPE)
    assert unconverged(plan, DESIRED) == []
    assert unconverged(plan, None) == list(plan.changes)
    missing_binding = Topology.of("/", DESIRED.exchanges, DESIRED.queues, DESIRED.bindings[1:])
    assert [c.name for c in unconverged(plan, missing_binding)] == [plan.changes[-8].name]


def test_argument_types_count_when_verifying() -> None:
    plan = compute_plan(DESIRED, None, SCOPE)
    retry = f"retry.{Q}"
    texty = [
        q if q.name != retry else Queue(retry, arguments={**q.arguments, "x-message-ttl": "5000"})
        for q in DESIRED.queues
    ]
    drifted = Topology.of("/", DESIRED.exchanges, texty, DESIRED.bindings)
    assert [c.name for c in unconverged(plan, drifted)] == [retry]


def test_a_delete_has_converged_when_the_object_is_gone() -> None:
    plan = compute_plan(DESIRED, WITH_OLD, SCOPE)
    assert [(c.action, c.name) for c in plan.changes] == [("delete", OLD)]
    assert unconverged(plan, DESIRED) == []
    assert unconverged(plan, WITH_OLD) == list(plan.changes)


def test_creates_only_keeps_creations_and_drops_the_safety_findings() -> None:
    actual = Topology.of("/", DESIRED.exchanges, [Queue(OLD)], ())
    plan = compute_plan(DESIRED, actual, SCOPE, {OLD: QueueStats(messages=4, consumers=1)})
    assert plan.errors and plan.warnings
    additive = plan.creates_only()
    assert {c.action for c in additive.changes} == {"create"}
    assert len(additive.changes) == len(plan.changes) - 1
    assert (additive.errors, additive.warnings) == ((), ())
    assert additive.fingerprint == plan.fingerprint


def test_the_fingerprint_follows_in_scope_state_and_at_risk_queues_only() -> None:
    base = state_fingerprint(WITH_OLD, SCOPE, {}, [OLD])
    assert base == state_fingerprint(WITH_OLD, SCOPE, {Q: QueueStats(messages=9)}, [OLD])  # other traffic
    assert base != state_fingerprint(WITH_OLD, SCOPE, {OLD: QueueStats(messages=1)}, [OLD])  # at-risk queue filled
    assert base != state_fingerprint(DESIRED, SCOPE, {}, [OLD])  # an owned object changed
    outside = Topology.of("/", WITH_OLD.exchanges, [*WITH_OLD.queues, Queue("other.q")], WITH_OLD.bindings)
    assert base == state_fingerprint(outside, SCOPE, {}, [OLD])  # out of scope
    assert state_fingerprint(None, SCOPE, {}, []) != base


def test_a_saved_plan_round_trips_with_its_broker_and_scope() -> None:
    plan = compute_plan(DESIRED, WITH_OLD, SCOPE)
    plan = SavedPlan.model_validate({**plan_data(plan), "management_url": "https://rabbit.example:15671"}).to_plan()
    again = SavedPlan.model_validate(plan_data(plan)).to_plan()
    assert again == plan
    assert again.scope == SCOPE and again.management_url == "https://rabbit.example:15671"


def test_markdown_puts_the_summary_first_and_folds_the_details() -> None:
    actual = Topology.of("/", DESIRED.exchanges, [Queue(OLD)], ())
    plan = compute_plan(DESIRED, actual, SCOPE, {OLD: QueueStats(messages=4, consumers=1)}, allow_data_loss=True)
    text = render_markdown(plan)
    lines = text.splitlines()
    assert lines[0] == "### rabbitform plan: vhost `/`"
    assert lines[2] == "**Plan: 14 to add, 0 to replace, 1 to destroy** (3 unchanged)."
    assert "> :warning: **Warning:** queue " + OLD + " holds 4 messages" in text
    assert "| add | 0 | 0 | 6 | 8 |" in lines
    assert text.index("<details>") < text.index("```diff") < text.index("</details>")
    assert f"- queue {OLD}  (4 messages, 1 consumer)" in lines
    assert f"+ queue {Q}" in lines


def test_markdown_without_changes_is_one_short_paragraph() -> None:
    text = render_markdown(compute_plan(DESIRED, DESIRED, SCOPE))
    assert "**No changes.** The broker matches the spec (17 objects unchanged)." in text
    assert "<details>" not in text
