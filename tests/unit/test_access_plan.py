"""Users, permissions and topic permissions as plan objects: diff, display, saved plans, apply steps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from topology.apply.executor import execute, schedule
from topology.apply.verify import unconverged
from topology.compile.access import with_access
from topology.compile.compiler import compile_spec
from topology.compile.objects import TopicPermissions, Topology, User
from topology.compile.passwords import hash_password
from topology.plan.diff import compute_plan
from topology.plan.model import Plan
from topology.plan.render.markdown import render_markdown
from topology.plan.render.text import render_text
from topology.plan.saved import SavedPlanError, parse_saved_plan
from topology.plan.scope import Scope
from topology.spec.loader import parse_spec

PASSWORD = "s3cret-Passw0rd"
SPEC = f"""
organization: acme
vhost: prod
services:
  billing:
    events:
      InvoicePaid: {{subscribers: {{mailer: {{}}}}}}
access:
  billing-svc: {{service: billing, password: "{PASSWORD}"}}
"""


def _salt() -> bytes:
    return b"\x01\x02\x03\x04"


def _desired(password: str = PASSWORD) -> tuple[Topology, Scope]:
    spec = parse_spec(SPEC.replace(PASSWORD, password), "spec.yaml")
    return with_access(compile_spec(spec), spec, _salt), Scope.of_spec(spec)


def _applied(desired: Topology, stored_password: str = PASSWORD, algorithm: str | None = None) -> Topology:
    """The broker after an apply: the user stored with its own salt (or a rotated password)."""
    user = User("billing-svc", password_hash=hash_password(stored_password, b"\x09\x09\x09\x09"))
    if algorithm is not None:
        user = replace(user, hashing_algorithm=algorithm)
    return replace(desired, users=(user,))


def _outputs(plan: Plan) -> str:
    return render_text(plan) + render_markdown(plan) + plan.to_json(redacted=True)


def test_a_new_user_is_created_with_its_permissions_and_no_password_anywhere_shown() -> None:
    desired, scope = _desired()
    plan = compute_plan(desired, replace(desired, users=(), permissions=(), topic_permissions=()), scope)
    kinds = {(c.action, c.kind, c.name) for c in plan.changes}
    assert kinds == {
        ("create", "user", "billing-svc"),
        ("create", "permission", "billing-svc"),
        ("create", "topic_permission", "billing-svc"),
    }
    shown = _outputs(plan)
    assert "+ user billing-svc  (password: (set))" in render_text(plan)
    assert PASSWORD not in shown
    assert hash_password(PASSWORD, _salt()) not in shown
    assert '"password": "(set)"' in plan.to_json(redacted=True)
    saved = plan.to_json()
    assert PASSWORD not in saved
    assert hash_password(PASSWORD, _salt()) in saved  # the salted hash apply sends, like the broker keeps


def test_an_unchanged_password_plans_no_change() -> None:
    desired, scope = _desired()
    plan = compute_plan(desired, _applied(desired), scope)
    assert not plan.changes
    assert plan.unchanged == desired.object_count


def test_a_rotated_password_is_an_update_that_never_shows_either_password() -> None:
    desired, scope = _desired("new-Passw0rd")
    plan = compute_plan(desired, _applied(desired, stored_password=PASSWORD), scope)
    (change,) = plan.changes
    assert (change.action, change.kind, change.reason) == ("update", "user", "password changed")
    assert "~ user billing-svc  (password changed, in place)" in render_text(plan)
    assert '"password": "(changed)"' in plan.to_json(redacted=True)
    shown = _outputs(plan)
    for secret in ("new-Passw0rd", PASSWORD, hash_password("new-Passw0rd", _salt())):
        assert secret not in shown
    assert "Plan: 0 to add, 1 to update" in render_text(plan)


def test_an_unknown_hashing_algorithm_rotates_the_password() -> None:
    desired, scope = _desired()
    plan = compute_plan(desired, _applied(desired, algorithm="rabbit_password_hashing_future"), scope)
    assert [(c.action, c.reason) for c in plan.changes] == [("update", "password changed")]


def test_narrowed_permissions_update_in_place_and_topic_permissions_are_reset() -> None:
    desired, scope = _desired()
    actual = _applied(desired)
    wider = replace(actual.permissions[0], write=".*")
    other = TopicPermissions("billing-svc", (("acme.billing", ".*", ".*"),))
    plan = compute_plan(desired, replace(actual, permissions=(wider,), topic_permissions=(other,)), scope)
    assert [(c.action, c.kind) for c in plan.changes] == [("update", "permission"), ("update", "topic_permission")]
    assert plan.changes[0].reason is not None and plan.changes[0].reason.startswith('write: ".*" -> "^acme')
    steps = schedule(plan)
    assert steps.clear_topic_permissions == ("billing-svc",)
    assert [p["write"] for p in steps.put_permissions] == [desired.permissions[0].write]
    assert len(steps.put_topic_permissions) == 1


def test_users_outside_the_spec_are_out_of_scope() -> None:
    desired, scope = _desired()
    stranger = User("someone-else", tags="administrator")
    plan = compute_plan(desired, replace(_applied(desired), users=(*_applied(desired).users, stranger)), scope)
    assert not plan.changes


def test_a_saved_plan_with_users_reads_back_and_schedules_the_salted_hash() -> None:
    desired, scope = _desired()
    plan = compute_plan(desired, replace(desired, users=(), permissions=(), topic_permissions=()), scope)
    read = parse_saved_plan(plan.to_json(), "plan.json")
    assert read.scope is not None and read.scope.users == ("billing-svc",)
    (user,) = schedule(read).put_users
    assert user == {
        "name": "billing-svc",
        "tags": "",
        "password_hash": hash_password(PASSWORD, _salt()),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
    }
    # what the broker shows after the apply converges; a different stored hash does not
    assert unconverged(read, replace(desired, users=(replace(desired.users[0], password=None),))) == []
    assert [c.kind for c in unconverged(read, _applied(desired))] == ["user"]


def test_a_saved_user_without_its_hash_is_refused() -> None:
    desired, scope = _desired()
    plan = compute_plan(desired, replace(desired, users=(), permissions=(), topic_permissions=()), scope)
    text = plan.to_json(redacted=True)  # the displayed form cannot be applied
    with pytest.raises(SavedPlanError, match="password_hash"):
        parse_saved_plan(text, "plan.json")


class _RecordingClient:
    """Stands in for the management client: records every call, answers nothing."""

    user = "admin"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], object]] = []

    def get(self, *segments: str, **_: object) -> object:
        self.calls.append(("GET", segments, None))
        return {"name": "prod"}

    def put(self, *segments: str, body: object = None) -> None:
        self.calls.append(("PUT", segments, body))

    def delete(self, *segments: str, **_: object) -> bool:
        self.calls.append(("DELETE", segments, None))
        return True


def test_apply_puts_the_user_by_hash_then_its_permissions_and_resets_topic_permissions() -> None:
    desired, scope = _desired("new-Passw0rd")
    wider = TopicPermissions("billing-svc", (("acme.billing", ".*", ".*"),))
    plan = compute_plan(desired, replace(_applied(desired), topic_permissions=(wider,)), scope)
    client = _RecordingClient()
    execute(plan, client)  # type: ignore[arg-type]
    writes = [(method, segments) for method, segments, _ in client.calls if method != "GET"]
    assert writes[0] == ("PUT", ("users", "billing-svc"))
    assert writes[1] == ("DELETE", ("topic-permissions", "prod", "billing-svc"))
    assert {w for w in writes[2:]} == {("PUT", ("topic-permissions", "prod", "billing-svc"))}
    body = client.calls[[c[0] for c in client.calls].index("PUT")][2]
    assert body == {
        "password_hash": hash_password("new-Passw0rd", _salt()),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": "",
    }
    assert "new-Passw0rd" not in repr(client.calls)


def test_access_safety_refuses_the_connecting_user_and_existing_users_with_rights() -> None:
    from topology.plan.access_safety import access_problems

    desired, _scope = _desired()
    applied = _applied(desired)
    assert access_problems(desired, applied, "guest") == []  # same rights as the spec grants
    [problem] = access_problems(desired, applied, "billing-svc")
    assert "'billing-svc' is the user rabbitform connects as" in problem
    admin = replace(applied, users=(replace(applied.users[0], tags="administrator", other_vhosts=("/",)),))
    [problem] = access_problems(desired, admin, "guest")
    assert "already exists with tags 'administrator' and permissions on vhost(s) '/'" in problem
    adopted = replace(desired, users=(replace(desired.users[0], adopt=True),))
    assert access_problems(adopted, admin, "guest") == []
    ours = replace(admin, users=(replace(admin.users[0], created_by_spec=True),))
    assert access_problems(desired, ours, "guest") == []
    wider = replace(applied, permissions=(replace(applied.permissions[0], configure=".*"),))
    assert "permissions on this vhost the spec does not grant" in access_problems(desired, wider, "guest")[0]


@pytest.mark.parametrize(
    ("created", "elsewhere", "deleted"), [(True, (), True), (True, ("/",), False), (False, (), False)]
)
def test_a_dropped_user_loses_its_permissions_and_only_a_created_one_is_deleted(
    created: bool, elsewhere: tuple[str, ...], deleted: bool
) -> None:
    desired, scope = _desired()
    applied = _applied(desired)
    applied = replace(applied, users=(replace(applied.users[0], created_by_spec=created, other_vhosts=elsewhere),))
    dropped = replace(desired, users=(), permissions=(), topic_permissions=())
    plan = compute_plan(dropped, applied, scope)  # the record's scope still names the user
    kinds = {(c.action, c.kind) for c in plan.changes if c.name == "billing-svc"}
    expected = {("delete", "permission"), ("delete", "topic_permission")}
    assert kinds == (expected | {("delete", "user")} if deleted else expected)
    steps = schedule(plan)
    assert steps.delete_permissions == ("billing-svc",)
    assert steps.delete_users == (("billing-svc",) if deleted else ())
