"""Dead letters: the pure model (filters, summaries, replay headers) and the operations on the
in-memory broker, which a service's tests use as operators use `rabbitform dlq`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Event, EventSubscriber, retry
from bus_runtime.deadletters import REPLAY_COUNT, REPLAYED_AT, Selection
from bus_runtime.deadletters.cli import parse_rate
from bus_runtime.deadletters.model import dead_letter_from, replay_headers, summarize
from bus_runtime.deadletters.ops import Pacer
from bus_runtime.deadletters.targets import resolve
from bus_runtime.memory import InMemoryBroker
from bus_runtime.subscriber_spec import spec_for_subscribers
from topology.errors import RabbitformError
from topology.spec.loader import parse_spec

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
QUEUE = "alice.petisco.1.event.user.created.send_mail_handler"
DEAD = f"dead_letter.{QUEUE}"
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)


class UserCreated(Event):
    user_id: str


class SmtpDown(Error):
    def __init__(self, message: str) -> None:
        self.message = message


healthy = {"on": False}


def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
    if healthy["on"]:
        return isSuccess
    if event.user_id.startswith("bad"):
        raise ValueError("invalid address")
    return Failure(SmtpDown("smtp down"))


def welcome_handler(event: UserCreated) -> Result[bool, Error]:
    return isSuccess


def letter(headers: dict[str, Any], message_id: str = "m1") -> Any:
    return dead_letter_from(0, b'{"data": {"attributes": {"user_id": "1"}}}', headers, message_id, "user.created", "rk")


# ---------------------------------------------------------------- pure


def test_selection_combines_every_criterion() -> None:
    smtp = letter(
        {
            retry.ERROR_TYPE: "SmtpDown",
            retry.DEAD_LETTER_REASON: "retries_exhausted",
            retry.LAST_FAILURE_AT: T0.isoformat(),
        }
    )
    assert Selection.of(error_types=["SmtpDown"]).matches(smtp)
    assert not Selection.of(error_types=["ValueError"]).matches(smtp)
    assert Selection.of(reasons=["retries_exhausted"], ids=["m1"]).matches(smtp)
    assert not Selection.of(reasons=["poison_message"]).matches(smtp)
    assert Selection.of(since=T0, until=T0).matches(smtp)
    assert not Selection.of(since=datetime(2026, 11, 28, tzinfo=timezone.utc)).matches(smtp)
    assert not Selection.of(since=T0).matches(letter({}))  # no time: cannot be said to be after
    with pytest.raises(ValueError, match="unknown reason"):
        Selection.of(reasons=["tired"])


def test_summary_counts_by_error_type_and_reason_with_oldest_and_newest() -> None:
    letters = [
        letter(
            {
                retry.ERROR_TYPE: "SmtpDown",
                retry.DEAD_LETTER_REASON: "retries_exhausted",
                retry.LAST_FAILURE_AT: "2026-11-27T10:00:00+00:00",
            }
        ),
        letter(
            {
                retry.ERROR_TYPE: "SmtpDown",
                retry.DEAD_LETTER_REASON: "retries_exhausted",
                retry.LAST_FAILURE_AT: "2026-11-27T11:00:00+00:00",
            }
        ),
        dead_letter_from(
            2,
            b"not json",
            {retry.ERROR_TYPE: "PoisonMessage", retry.DEAD_LETTER_REASON: "poison_message"},
            None,
            None,
            "rk",
        ),
    ]
    summary = summarize("petisco/send_mail_handler", QUEUE, DEAD, letters)
    assert summary.count == 3
    assert summary.by_error_type == {"PoisonMessage": 1, "SmtpDown": 2}
    assert summary.by_reason == {"poison_message": 1, "retries_exhausted": 2}
    assert summary.oldest == T0 and summary.newest == T0.replace(hour=11)
    assert letters[2].attributes is None and letters[2].message_id == ""


def test_replay_headers_give_a_fresh_budget_and_keep_the_history() -> None:
    headers = {
        retry.RETRY_COUNT: 5,
        retry.DEAD_LETTER_REASON: "retries_exhausted",
        retry.ERROR_TYPE: "SmtpDown",
        retry.FIRST_FAILURE_AT: "t1",
        "x-death": [{"count": 1}],
        "x-first-death-queue": "q",
        "traceparent": "00-1",
    }
    once = replay_headers(headers, T0)
    assert retry.retry_count(once) == 0 and retry.DEAD_LETTER_REASON not in once
    assert "x-death" not in once and "x-first-death-queue" not in once
    assert once[retry.ERROR_TYPE] == "SmtpDown" and once[retry.FIRST_FAILURE_AT] == "t1"
    assert once["traceparent"] == "00-1"
    assert once[REPLAYED_AT] == T0.isoformat() and once[REPLAY_COUNT] == 1
    assert replay_headers(once, T0)[REPLAY_COUNT] == 2


def test_subscribers_resolve_by_name_service_queue_or_store() -> None:
    spec = parse_spec(ALICE.read_text(), str(ALICE))
    assert resolve(spec, "send_mail_handler").queue == QUEUE
    assert resolve(spec, "petisco/send_mail_handler").queue == QUEUE
    assert resolve(spec, DEAD).queue == QUEUE
    assert resolve(spec, "store").dead_letter_queue == "dead_letter.store"
    with pytest.raises(RabbitformError, match="no subscriber 'nope'"):
        resolve(spec, "nope")


def test_rate_and_pacer() -> None:
    assert parse_rate("100/s") == 100.0 and parse_rate("2.5") == 2.5 and parse_rate(None) is None
    with pytest.raises(RabbitformError, match="--rate"):
        parse_rate("fast")
    now = {"t": 0.0}
    waits: list[float] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        now["t"] += seconds

    pacer = Pacer(20, pause, clock=lambda: now["t"])
    assert pacer.allowance(500) == 2  # about ten batches a second
    pacer.sent(2)
    pacer.allowance(500)
    assert waits == [pytest.approx(0.1)]
    assert Pacer(None, pause).allowance(500) == 500


# ---------------------------------------------------------------- in memory


def broken_broker() -> InMemoryBroker:
    """Two subscribers of UserCreated and the store; send_mail_handler fails for good (no retries)."""
    healthy["on"] = False
    subscribers = [EventSubscriber(UserCreated, [send_mail_handler, welcome_handler])]
    broker = InMemoryBroker.from_spec(spec_for_subscribers("alice", "petisco", subscribers, store=True))
    broker.consumer("petisco", subscribers, max_retries=0)
    broker.event_bus("petisco").publish([UserCreated(user_id=u) for u in ("a", "bad-1", "b", "bad-2", "c")])
    broker.run_until_idle()
    return broker


def ids(broker: InMemoryBroker) -> list[str]:
    return [m.decode(UserCreated).user_id for m in broker.messages(DEAD)]


def test_in_memory_list_show_replay_purge() -> None:
    broker = broken_broker()
    dlq = broker.dead_letters()
    assert ids(broker) == ["a", "bad-1", "b", "bad-2", "c"]
    [mail, welcome, store] = dlq.list()
    assert mail.subscriber == "petisco/send_mail_handler" and store.count == 0 and welcome.count == 0
    assert mail.by_error_type == {"SmtpDown": 3, "ValueError": 2}

    shown = dlq.show("send_mail_handler", error_types=["ValueError"])
    assert [s.attributes["user_id"] for s in shown if s.attributes] == ["bad-1", "bad-2"]
    assert [s.position for s in shown] == [1, 3]
    assert ids(broker) == ["a", "bad-1", "b", "bad-2", "c"]  # untouched, in order

    dry = dlq.replay("send_mail_handler", error_types=["SmtpDown"], dry_run=True)
    assert dry.count == 3 and broker.depth(DEAD) == 5

    healthy["on"] = True
    welcomed = broker.calls("welcome_handler")
    outcome = dlq.replay("send_mail_handler", error_types=["SmtpDown"], limit=2)
    assert outcome.count == 2 and outcome.left == 3
    assert ids(broker) == ["bad-1", "bad-2", "c"]
    replayed = broker.messages(QUEUE)
    assert [m.headers[REPLAY_COUNT] for m in replayed] == [1, 1]
    assert all(retry.retry_count(m.headers) == 0 for m in replayed)
    broker.run_until_idle()
    assert broker.calls("welcome_handler") == welcomed  # the other subscriber heard nothing
    assert broker.depth(QUEUE) == 0

    purged = dlq.purge("send_mail_handler", reasons=["retries_exhausted"], error_types=["ValueError"])
    assert purged.count == 2 and ids(broker) == ["c"]


def test_cli_mistakes_are_one_line_before_any_connection(capsys: pytest.CaptureFixture[str]) -> None:
    from topology.cli.main import main

    base = ["dlq", "replay", str(ALICE), "--url", "amqp://guest:guest@127.0.0.1:1/%2F", "--subscriber", "store"]
    assert main([*base, "--rate", "fast"]) == 1
    assert capsys.readouterr().err == "error: --rate 'fast': give messages per second (at most 1000000), e.g. 100/s\n"
    assert main([*base, "--since", "yesterday"]) == 1
    assert "is not an ISO 8601 time" in capsys.readouterr().err
    assert main(["dlq"]) == 1
    assert "dlq needs an action" in capsys.readouterr().err
    assert main(["dlq", "show", str(ALICE), "--url", "http://x", "--subscriber", "store"]) == 1
    assert "is not amqp or amqps" in capsys.readouterr().err


def test_replay_to_a_missing_queue_takes_nothing() -> None:
    broker = broken_broker()
    dlq = broker.dead_letters()
    broker._queues.pop(QUEUE)  # the subscriber's queue was deleted
    with pytest.raises(RabbitformError, match=f"queue {QUEUE} does not exist"):
        dlq.replay("send_mail_handler")
    assert ids(broker) == ["a", "bad-1", "b", "bad-2", "c"]
