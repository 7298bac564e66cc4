"""Retry ladders, `dead_letter_on` and the circuit breaker in the spec, and the tiers they
compile to (pure: no broker)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topology import naming
from topology.compile.compiler import compile_spec
from topology.compile.policies import effective_arguments
from topology.spec.loader import SpecError, parse_spec
from topology.spec.model import RetryOverride, RetryPolicy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "existing_specs"
Q = "alice.petisco.1.event.user.created.send_mail_handler"


def spec_text(retry: str, extra: str = "", layout: str = "rabbitform") -> str:
    return f"""organization: alice
layout: {layout}
{extra}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler:
            retry: {retry}
"""


# ---------------------------------------------------------------- the ladder


def test_a_ladder_repeats_its_last_delay_until_max_retries() -> None:
    policy = RetryPolicy(delays_ms=(1000, 10000, 60000), max_retries=5)
    assert policy.attempt_delays() == (1000, 10000, 60000, 60000, 60000)
    assert policy.ladder() == (1000, 10000, 60000)
    assert policy.attempt_tiers() == (1, 2, 3, 3, 3)


def test_the_backoff_shorthand_expands_to_a_capped_ladder() -> None:
    policy = RetryPolicy(delay_ms=1000, backoff_multiplier=2, max_delay_ms=5000, max_retries=6)
    assert policy.attempt_delays() == (1000, 2000, 4000, 5000, 5000, 5000)
    assert policy.ladder() == (1000, 2000, 4000, 5000)


def test_delay_ms_alone_is_one_step() -> None:
    assert RetryPolicy(delay_ms=700).ladder() == (700,)
    assert RetryPolicy(delay_ms=700, max_retries=0).attempt_tiers() == (1,)


def test_an_override_that_speaks_of_delays_replaces_the_default_ladder_whole() -> None:
    base = RetryPolicy(delay_ms=1000, backoff_multiplier=3, dead_letter_on=("PaymentDeclined",))
    assert RetryOverride(max_retries=2).over(base).ladder() == (1000, 3000)
    assert RetryOverride(delay_ms=50).over(base).ladder() == (50,)
    assert RetryOverride(delays_ms=(5, 6)).over(base).ladder() == (5, 6)
    assert RetryOverride().over(base).dead_letter_on == ("PaymentDeclined",)
    assert RetryOverride(dead_letter_on=()).over(base).dead_letter_on == ()


@given(
    st.lists(st.integers(1, 10**7), min_size=1, max_size=8),
    st.integers(0, 30),
)
def test_every_attempt_maps_to_a_tier_that_holds_its_delay(delays: list[int], max_retries: int) -> None:
    policy = RetryPolicy(delays_ms=tuple(delays), max_retries=max_retries)
    ladder = policy.ladder()
    assert len(set(ladder)) == len(ladder)
    for delay, tier in zip(policy.attempt_delays(), policy.attempt_tiers(), strict=True):
        assert ladder[tier - 1] == delay


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            spec_text("{delays_ms: [1000, 0]}"),
            "spec.yaml:10 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry.delays_ms.1: "
            "must be a list of one or more integers >= 1 (milliseconds)",
        ),
        (
            spec_text("{delays_ms: [1000], delay_ms: 5}"),
            "spec.yaml:10 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry: "
            "delays_ms lists the whole ladder: leave out delay_ms, backoff_multiplier and max_delay_ms",
        ),
        (
            spec_text("{backoff_multiplier: 0.5}"),
            "spec.yaml:10 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry.backoff_multiplier: "
            "must be a number > 1.0",
        ),
        (
            spec_text("{dead_letter_on: [billing errors]}"),
            "spec.yaml:10 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry.dead_letter_on.0: "
            "must be a list of error class names, each like 'PaymentDeclined' or 'billing.errors:InvalidCard'",
        ),
        (
            spec_text("{}", "defaults:\n  circuit_breaker: {failures: 3, window_s: 0, pause_s: 1}"),
            "spec.yaml:4 defaults.circuit_breaker.window_s: must be a number > 0.0",
        ),
        (
            spec_text("{delays_ms: [1000, 5000]}", layout="petisco"),
            "spec.yaml:10 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry: layout petisco "
            "has one retry queue per subscriber, so one delay: a ladder of 2 delays needs layout rabbitform "
            "(or give one delay_ms)",
        ),
    ],
    ids=["delay below 1", "ladder and delay", "multiplier", "rule", "breaker", "petisco ladder"],
)
def test_a_bad_retry_setting_is_one_line_with_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yaml")
    assert str(caught.value) == expected


def test_petisco_takes_dead_letter_on_and_the_breaker() -> None:
    spec = parse_spec(
        spec_text(
            "{dead_letter_on: [PaymentDeclined]}",
            "defaults:\n  circuit_breaker: {failures: 2, window_s: 1, pause_s: 1}",
            "petisco",
        )
    )
    sub = next(spec.subscribers())
    assert sub.retry.dead_letter_on == ("PaymentDeclined",)
    assert sub.circuit_breaker is not None and sub.circuit_breaker.failures == 2


# ---------------------------------------------------------------- the guard: every existing spec unchanged


def test_every_spec_written_before_ladders_compiles_exactly_as_before() -> None:
    before = json.loads((FIXTURES / "compiled.json").read_text(encoding="utf-8"))
    now = runpy.run_path(str(FIXTURES / "compile_all.py"))["compiled"]()
    assert json.loads(json.dumps(now)) == before


# ---------------------------------------------------------------- tiers


def test_tier_names_keep_the_first_and_number_the_rest() -> None:
    assert naming.retry_tier_queues(Q, 3) == [f"retry.{Q}", f"retry.{Q}.2", f"retry.{Q}.3"]
    assert naming.retry_tier_of(f"retry.{Q}.3") == (Q, 3)
    assert naming.retry_tier_of(f"retry.{Q}") == (Q, 1)
    assert naming.retry_tier_of("retry.store") == ("store", 1)
    assert naming.retry_tier_of(Q) is None


def test_one_queue_per_distinct_delay_each_with_its_ttl_back_to_the_subscriber() -> None:
    topology = compile_spec(parse_spec(spec_text("{delays_ms: [1000, 10000, 60000], max_retries: 5}")))
    queues = {q.name: q for q in topology.queues}
    for tier, delay in ((1, 1000), (2, 10000), (3, 60000)):
        args = queues[naming.retry_tier_queue(Q, tier)].arguments
        assert args["x-message-ttl"] == delay
        assert (args["x-dead-letter-exchange"], args["x-dead-letter-routing-key"]) == ("alice.petisco", f"retry.{Q}")
    routes = {(b.source, b.destination, b.routing_key) for b in topology.bindings}
    assert ("retry.alice.petisco", f"retry.{Q}.3", f"retry.{Q}.3") in routes
    assert ("alice.petisco", Q, f"retry.{Q}") in routes


def test_quorum_tiers_dead_letter_at_least_once() -> None:
    text = spec_text("{delays_ms: [1000, 2000]}", "defaults: {queue_type: quorum}")
    queues = {q.name: q for q in compile_spec(parse_spec(text)).queues}
    for tier in (1, 2):
        args = queues[naming.retry_tier_queue(Q, tier)].arguments
        assert args["x-queue-type"] == "quorum"
        assert args["x-dead-letter-strategy"] == "at-least-once" and args["x-overflow"] == "reject-publish"


def test_with_policies_a_delay_change_changes_only_a_policy() -> None:
    settings = "queue_settings: policies"
    before = compile_spec(parse_spec(spec_text("{delays_ms: [1000, 2000, 4000]}", settings)))
    after = compile_spec(parse_spec(spec_text("{delays_ms: [1000, 3000, 4000]}", settings)))
    assert before.queues == after.queues and before.bindings == after.bindings
    changed = {b.name for b, a in zip(before.policies, after.policies, strict=True) if b != a}
    assert changed == {f"retry.{Q}.2"}
    tier = next(q for q in after.queues if q.name == f"retry.{Q}.2")
    assert effective_arguments(tier, after.policies)["x-message-ttl"] == 3000


def test_the_store_gets_tiers_on_every_service_retry_exchange() -> None:
    text = spec_text("{}") + "store:\n  retry: {delays_ms: [100, 200]}\n"
    topology = compile_spec(parse_spec(text))
    assert {q.name for q in topology.queues} >= {"retry.store", "retry.store.2"}
    assert ("retry.alice.petisco", "retry.store.2", "retry.store.2") in {
        (b.source, b.destination, b.routing_key) for b in topology.bindings
    }


def test_import_reads_ladders_back_and_the_plan_has_no_changes() -> None:
    from topology.adopt.importer import import_spec
    from topology.plan.diff import diff
    from topology.plan.scope import Scope
    from topology.spec.model import Spec

    for settings in ("arguments", "policies"):
        text = (
            spec_text(
                "{delays_ms: [1000, 10000, 60000, 120000, 240000, 480000, 900000]}", f"queue_settings: {settings}"
            )
            + "store:\n  retry: {delay_ms: 100, backoff_multiplier: 3, max_delay_ms: 1000}\n"
        )
        live = compile_spec(parse_spec(text))
        imported = import_spec(live, "alice")
        assert imported.warnings == []
        retry = imported.document["services"]["petisco"]["events"]["UserCreated"]["subscribers"]["send_mail_handler"]
        assert retry["retry"]["delays_ms"][:3] == [1000, 10000, 60000]
        assert imported.document["store"]["retry"] == {"delays_ms": [100, 300, 900, 1000]}
        spec = Spec.model_validate(imported.document)
        changes, _ = diff(compile_spec(spec), Scope.of_spec(spec).filter(live))
        assert changes == []


def test_graph_and_asyncapi_show_the_tiers() -> None:
    from topology.compile.asyncapi import asyncapi_document
    from topology.graph import build_graph, to_mermaid

    spec = parse_spec(
        spec_text(
            "{delays_ms: [1000, 10000, 60000], dead_letter_on: [PaymentDeclined]}",
            "defaults:\n  circuit_breaker: {failures: 20, window_s: 30, pause_s: 60}",
        )
    )
    mermaid = to_mermaid(build_graph(compile_spec(spec)))
    assert f'TTL 60000 ms, retry.{Q}"' in mermaid and f"retry.{Q}.3" in mermaid
    document = json.dumps(asyncapi_document(spec))
    assert f"10000 ms in retry.{Q}.2" in document
    assert "Errors of PaymentDeclined (or subclasses)" in document
    assert "20 failures within 30 s pause the subscriber for 60 s" in document


def test_a_tier_delay_out_of_the_brokers_range_names_delays_ms() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_text("{delays_ms: [1000, 400000000000]}"), "spec.yaml")
    assert str(caught.value).startswith(
        "spec.yaml:10 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry.delays_ms: "
        "x-message-ttl 400000000000 of "
    )
