"""`status` from management-API rows: counts, unknowns, drift, unbound events, the check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from topology import naming
from topology.spec.loader import parse_spec
from topology.status.model import build_status, check_problems, topic_matches
from topology.status.render import render_status_json, render_status_text

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
Q = "alice.petisco.1.event.user.created.send_mail_handler"
SPEC = parse_spec(ALICE.read_text(), str(ALICE))
BOUND = {"alice.petisco": [{"destination": "store", "routing_key": "alice.petisco.*.event.#"}]}


def row(
    name: str, ready: int | None = 0, unacked: int | None = 0, consumers: int | None = 1, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, **extra}
    for key, value in (("messages_ready", ready), ("messages_unacknowledged", unacked), ("consumers", consumers)):
        if value is not None:
            data[key] = value
    return data


def healthy_rows() -> list[dict[str, Any]]:
    return [row(n) for n in (Q, f"retry.{Q}", f"dead_letter.{Q}", "store", "retry.store", "dead_letter.store")]


def test_topic_matching() -> None:
    assert topic_matches("alice.petisco.*.event.#", "alice.petisco.1.event.user.created")
    assert topic_matches("a.#", "a") and topic_matches("#", "a.b") and topic_matches("a.*", "a.b")
    assert not topic_matches("alice.petisco.*.command.#", "alice.petisco.1.event.user.created")
    assert not topic_matches("a.*", "a.b.c")


def test_a_healthy_bus_passes_the_check() -> None:
    rows = healthy_rows()
    rows[0] = row(Q, ready=3, unacked=2, consumers=1, message_stats={"publish_details": {"rate": 12.5}})
    report = build_status(SPEC, rows, BOUND)
    assert check_problems(report) == []
    text = render_status_text(report)
    assert "petisco/send_mail_handler" in text and "12.5" in text
    assert "bound to 1 queue(s)" in text


def test_dead_letters_and_missing_consumers_fail_the_check() -> None:
    rows = healthy_rows()
    rows[2] = row(f"dead_letter.{Q}", ready=4, consumers=0)
    rows[3] = row("store", consumers=0)
    report = build_status(SPEC, rows, BOUND)
    problems = check_problems(report)
    assert any("4 dead letter(s)" in p for p in problems)
    assert any("no consumer on store" in p for p in problems)
    assert check_problems(report, max_dead_letters=4, require_consumers=False) == []


def test_unknown_counts_are_unknown_never_zero() -> None:
    rows = healthy_rows()
    rows[2] = row(f"dead_letter.{Q}", ready=None, unacked=None)
    report = build_status(SPEC, rows, BOUND)
    assert report.subscribers[0].dead_letter.messages is None
    assert any("unknown" in p for p in check_problems(report))
    assert "?" in render_status_text(report)


def test_missing_queues_and_unbound_events_are_warnings() -> None:
    report = build_status(SPEC, [row(Q)], {"alice.petisco": []})
    assert any(f"retry.{Q} is missing" in w for w in report.warnings)
    assert any("nothing is bound to UserCreated" in w for w in report.warnings)
    assert any("missing" in p for p in check_problems(report))
    assert '"exists": false' in render_status_json(report)
    gone = build_status(SPEC, [], {"alice.petisco": None})
    assert any("exchange alice.petisco is missing" in w for w in gone.warnings)


def test_watch_prints_until_ctrl_c_and_check_decides_the_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from topology.cli import status as command
    from topology.cli.main import main

    rows = healthy_rows()
    rows[2] = row(f"dead_letter.{Q}", ready=1)
    monkeypatch.setattr(command, "read_status", lambda spec, client: build_status(spec, rows, BOUND))
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(command.time, "sleep", sleep)
    assert main(["status", str(ALICE), "--watch", "0.5", "--check"]) == 2
    out = capsys.readouterr().out
    assert out.count("rabbitform status of vhost") == 2 and naps == [0.5, 0.5]
    assert "Check failed: petisco/send_mail_handler: 1 dead letter(s)" in out
    for bad in ("0", "nan", "inf", "1e-9", "-1", "1e9"):
        assert main(["status", str(ALICE), "--watch", bad]) == 1
        assert "give a number of seconds from 0.5 to 86400" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["rabbitform", "petisco"])
def test_status_follows_the_specs_layout(layout: str) -> None:
    """Every declared event is bound when the broker holds what the spec compiles to, whatever its layout."""
    from topology.compile.compiler import compile_spec
    from topology.spec.loader import parse_spec

    spec = parse_spec(
        f"organization: alice\nlayout: {layout}\nservices:\n  petisco:\n    events:\n"
        "      UserCreated: {subscribers: {send_mail_handler: {}}}\n      OrderPlacedTwice: {subscribers: {h: {}}}\n"
    )
    compiled = compile_spec(spec)
    bindings = {
        exchange.name: [
            {"destination": b.destination, "routing_key": b.routing_key}
            for b in compiled.bindings
            if b.source == exchange.name
        ]
        for exchange in compiled.exchanges
    }
    report = build_status(spec, [row(q.name) for q in compiled.queues], bindings)
    assert [e.queues for e in report.events if not e.queues] == []
    assert not report.warnings


def test_retrying_counts_every_tier_and_a_marker_shows_a_paused_subscriber() -> None:
    spec = parse_spec(
        "organization: alice\nservices:\n  petisco:\n    events:\n      UserCreated:\n        subscribers:\n"
        "          send_mail_handler: {retry: {delays_ms: [1000, 5000, 30000]}}\n"
    )
    tiers = [f"retry.{Q}", f"retry.{Q}.2", f"retry.{Q}.3"]
    rows = [row(Q), *(row(t, ready=n) for t, n in zip(tiers, (1, 2, 4), strict=True)), row(f"dead_letter.{Q}")]
    rows.append(row(naming.paused_marker(Q)))
    report = build_status(spec, rows, BOUND)
    [sub] = report.subscribers
    assert (sub.retrying, sub.paused) == (7, True)
    assert "petisco/send_mail_handler (paused)" in render_status_text(report)
    assert any("paused by its circuit breaker" in p for p in check_problems(report))
    assert report.warnings == ()
