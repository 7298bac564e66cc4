"""`rabbitform doctor`'s checks, pure: listings in, findings naming the object and the fix out.

The delayed-message exchange is checked here only: RabbitMQ 3.10 (what the tests run) refuses
to declare an `x-delayed-message` exchange without the plugin, which Debian does not ship.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topology.doctor.checks import VhostState, diagnose, spec_queues
from topology.doctor.render import render_json, render_text
from topology.spec.model import Spec


def queue(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "durable": True, "auto_delete": False, "exclusive": False, "arguments": {}, **fields}


def checks(state: VhostState, **options: Any) -> list[tuple[str, str]]:
    return [(f.check, f.name) for f in diagnose(state, **options)]


def test_a_clean_vhost_has_no_finding() -> None:
    state = VhostState(
        "/",
        queues=(
            queue("q"),
            queue("exclusive", durable=False, exclusive=True),
            queue("dead", type="quorum", arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx"}),
        ),
        exchanges=({"name": "e", "type": "topic"},),
        policies=(
            {"name": "ttl", "pattern": ".*", "apply-to": "queues", "priority": 0, "definition": {"message-ttl": 5}},
        ),
        channels=(
            {"name": "c (1)", "global_prefetch_count": 0, "prefetch_count": 10, "connection_details": {"name": "c"}},
        ),
    )
    assert diagnose(state) == []


def test_classic_mirroring_policies_name_their_keys_and_queues() -> None:
    policy = {"name": "ha-all", "pattern": "^ha\\.", "apply-to": "all", "priority": 0}
    state = VhostState(
        "v",
        queues=(queue("ha.one"), queue("other")),
        policies=({**policy, "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}},),
    )
    [finding] = diagnose(state)
    assert (finding.check, finding.kind, finding.name, finding.vhost) == ("classic-mirroring", "policy", "ha-all", "v")
    assert "ha-mode, ha-sync-mode; 1 queue matches it" in finding.problem
    assert "quorum" in finding.fix and "remove ha-mode, ha-sync-mode" in finding.fix


def test_transient_non_exclusive_queues_only() -> None:
    state = VhostState(
        "/", queues=(queue("transient", durable=False), queue("mine", durable=False, exclusive=True), queue("ok"))
    )
    assert checks(state) == [("transient-queue", "transient")]
    assert "durable" in diagnose(state)[0].fix


def test_queue_mode_and_version_1_in_arguments_and_policies() -> None:
    state = VhostState(
        "/",
        queues=(
            queue("lazy", arguments={"x-queue-mode": "lazy"}),
            queue("v1", arguments={"x-queue-version": 1}),
            queue("v2", arguments={"x-queue-version": 2}),
        ),
        policies=(
            {"name": "p-lazy", "pattern": ".*", "definition": {"queue-mode": "lazy"}},
            {"name": "p-v1", "pattern": ".*", "definition": {"queue-version": 1}},
            {"name": "p-v2", "pattern": ".*", "definition": {"queue-version": 2}},
        ),
    )
    assert checks(state) == [
        ("queue-mode", "p-lazy"),
        ("queue-mode", "lazy"),
        ("queue-version-1", "p-v1"),
        ("queue-version-1", "v1"),
    ]


def test_global_qos_is_reported_once_per_connection_with_its_name() -> None:
    connection = "127.0.0.1:50000 -> 127.0.0.1:5672"
    channel = {
        "user": "guest",
        "global_prefetch_count": 1,
        "prefetch_count": 0,
        "connection_details": {"name": connection},
    }
    state = VhostState(
        "/",
        channels=(
            {**channel, "name": f"{connection} (1)"},
            {**channel, "name": f"{connection} (2)"},
            {**channel, "name": "other (1)", "global_prefetch_count": 0, "connection_details": {"name": "other"}},
        ),
        connections={
            connection: {
                "user": "guest",
                "client_properties": {
                    "connection_name": "billing",
                    "product": "Pika Python Client Library",
                    "version": "1.3.2",
                },
            }
        },
    )
    [finding] = diagnose(state)
    assert finding.check == "global-qos" and finding.kind == "connection"
    assert (
        finding.name
        == f"{connection} (client-provided name 'billing', client Pika Python Client Library 1.3.2, user guest)"
    )
    assert finding.problem.startswith("2 channels with global QoS (prefetch 1 per channel)")
    assert "petisco" in finding.fix


@pytest.mark.parametrize(
    ("arguments", "policy", "expected"),
    [
        ({}, None, "drops a message at delivery 20 (its default delivery limit)"),
        ({"x-delivery-limit": 5}, None, "drops a message at delivery 5 and"),
        ({"x-dead-letter-exchange": "dlx"}, None, None),
        ({}, {"dead-letter-exchange": "dlx"}, None),
        ({"x-delivery-limit": -1}, None, None),  # redelivered for ever, by choice
        ({}, {"delivery-limit": 3}, "at delivery 3 (its default"),
    ],
)
def test_quorum_queues_without_a_dead_letter_target(
    arguments: dict[str, Any], policy: dict[str, Any] | None, expected: str | None
) -> None:
    policies = (
        ({"name": "p", "pattern": "^q$", "apply-to": "queues", "priority": 1, "definition": policy},) if policy else ()
    )
    state = VhostState("/", queues=(queue("q", type="quorum", arguments=arguments), queue("c")), policies=policies)
    findings = diagnose(state)
    if expected is None:
        assert findings == []
    else:
        [finding] = findings
        assert finding.check == "quorum-without-dead-letter" and expected in finding.problem


def test_a_quorum_queue_is_known_by_its_argument_when_the_listing_has_no_type() -> None:
    state = VhostState("/", queues=(queue("q", arguments={"x-queue-type": "quorum"}),))
    assert checks(state) == [("quorum-without-dead-letter", "q")]


def test_delayed_message_exchanges_from_a_definitions_snapshot() -> None:
    definitions = {
        "exchanges": [
            {
                "name": "delayed",
                "vhost": "/",
                "type": "x-delayed-message",
                "durable": True,
                "arguments": {"x-delayed-type": "topic"},
            },
            {"name": "plain", "vhost": "/", "type": "topic", "durable": True, "arguments": {}},
        ]
    }
    state = VhostState("/", exchanges=tuple(definitions["exchanges"]))
    [finding] = diagnose(state)
    assert (finding.check, finding.kind, finding.name) == ("delayed-message-exchange", "exchange", "delayed")
    assert "cannot run on 4.3" in finding.problem and "retry" in finding.fix


SPEC = Spec.model_validate(
    {
        "organization": "alice",
        "services": {
            "petisco": {
                "events": {
                    "UserCreated": {"subscribers": {"send_mail_handler": {}, "audit_handler": {"queue_type": "quorum"}}}
                }
            }
        },
        "store": {},
    }
)
MAIL = "alice.petisco.1.event.user.created.send_mail_handler"
AUDIT = "alice.petisco.1.event.user.created.audit_handler"


def test_classic_queues_a_spec_could_move_to_quorum() -> None:
    wanted = spec_queues(SPEC)
    assert {q.name for q in wanted} == {MAIL, AUDIT, "store"}
    state = VhostState(
        "/",
        queues=(
            queue(MAIL),
            queue(AUDIT),  # classic on the broker, quorum in the spec: apply --move-messages
            queue("store", type="quorum", arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "x"}),
            queue("unrelated"),
        ),
    )
    findings = {f.name: f for f in diagnose(state, spec_queues=wanted, spec_path="bus.yaml")}
    assert set(findings) == {MAIL, AUDIT}
    assert (
        "set `queue_type: quorum` at services.petisco.events.UserCreated.subscribers.send_mail_handler in bus.yaml"
        in findings[MAIL].fix
    )
    assert "`rabbitform apply bus.yaml --move-messages`" in findings[MAIL].fix
    assert findings[AUDIT].fix.startswith("the spec already says quorum")
    assert diagnose(state) == []  # without a spec, a classic queue is no finding


def test_findings_are_ordered_and_rendered_as_text_and_json() -> None:
    state = VhostState(
        "v",
        queues=(queue("t", durable=False),),
        exchanges=({"name": "d", "type": "x-delayed-message"},),
        policies=({"name": "ha", "pattern": ".*", "definition": {"ha-mode": "all"}},),
    )
    findings = diagnose(state)
    assert [f.check for f in findings] == ["classic-mirroring", "transient-queue", "delayed-message-exchange"]
    text = render_text(findings, ["v"], "3.10.8", "http://127.0.0.1:15672")
    assert text.splitlines()[0] == "RabbitMQ 3.10.8 at http://127.0.0.1:15672: checked for 4.x, vhost(s) 'v'"
    assert "  [transient-queue] queue t" in text and text.endswith("Doctor: 3 findings for RabbitMQ 4.x.\n")
    data = json.loads(render_json(findings, ["v"], "3.10.8", "http://127.0.0.1:15672"))
    assert data["findings"][0] == findings[0].to_dict() and data["broker"]["version"] == "3.10.8"
    assert "No findings" in render_text([], ["v"], "3.10.8", "u")


def test_malformed_listings_never_crash() -> None:
    state = VhostState(
        "/",
        queues=({"name": "q", "arguments": None}, {"arguments": {"x-queue-version": "1"}}),
        policies=({"name": "p", "definition": None}, {"definition": {"ha-mode": "all"}}),
        channels=({"global_prefetch_count": "1"}, {"global_prefetch_count": True}),
    )
    assert [f.check for f in diagnose(state)] == ["classic-mirroring", "queue-version-1"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        *("name", "durable", "exclusive", "arguments", "type", "pattern", "definition", "priority", "apply-to"),
        *("global_prefetch_count", "connection_details", "user"),
    ]
)
listing = st.dictionaries(KEYS, json_values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    queues=st.lists(listing, max_size=3), policies=st.lists(listing, max_size=3), channels=st.lists(listing, max_size=3)
)
def test_any_listing_gives_findings_or_none_never_a_crash(
    queues: list[dict[str, Any]], policies: list[dict[str, Any]], channels: list[dict[str, Any]]
) -> None:
    state = VhostState(
        "/", queues=tuple(queues), exchanges=tuple(queues), policies=tuple(policies), channels=tuple(channels)
    )
    for finding in diagnose(state):
        assert finding.problem and finding.fix
