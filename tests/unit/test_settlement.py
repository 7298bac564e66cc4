"""The ack ledger: which acks to send for the deliveries of one channel (no broker)."""

from __future__ import annotations

from bus_runtime.settlement import Ack, AckLedger


def ledger_with(tags: range, straggler_limit: int = 50) -> AckLedger:
    ledger = AckLedger(straggler_limit)
    for tag in tags:
        ledger.delivered(tag)
    return ledger


def test_a_settled_prefix_is_one_multiple_ack() -> None:
    ledger = ledger_with(range(1, 6))
    for tag in (1, 2, 3):
        ledger.settled(tag)
    assert ledger.acks() == [Ack(3, multiple=True)]
    assert ledger.in_hand == 2 and ledger.settled_count == 3


def test_a_single_settled_head_is_a_single_ack() -> None:
    ledger = ledger_with(range(1, 3))
    ledger.settled(1)
    assert ledger.acks() == [Ack(1, multiple=False)]


def test_nothing_is_acked_behind_an_unsettled_head() -> None:
    ledger = ledger_with(range(1, 6))
    ledger.settled(2)
    ledger.settled(3)
    assert ledger.acks() == []
    ledger.settled(1)
    assert ledger.acks() == [Ack(3, multiple=True)]


def test_stragglers_are_acked_one_by_one_when_many_wait_behind_a_slow_message() -> None:
    ledger = ledger_with(range(1, 6), straggler_limit=2)
    ledger.settled(2)
    ledger.settled(3)
    assert ledger.acks() == [Ack(2), Ack(3)]
    ledger.settled(1)
    assert ledger.acks() == [Ack(1)]  # 2 and 3 were acked already: never twice
    assert ledger.in_hand == 2 and ledger.settled_count == 3


def test_a_requeued_tag_needs_no_ack_and_does_not_block_the_prefix() -> None:
    ledger = ledger_with(range(1, 4))
    ledger.requeued(1)
    ledger.settled(2)
    assert ledger.acks() == [Ack(2)]
    assert ledger.settled_count == 1


def test_clear_forgets_every_tag_of_a_lost_channel() -> None:
    ledger = ledger_with(range(1, 4))
    ledger.settled(1)
    ledger.clear()
    assert ledger.acks() == [] and ledger.in_hand == 0


def test_tags_behind_a_copy_awaiting_its_confirm_wait_for_it_a_moment_then_go_one_by_one() -> None:
    ledger = AckLedger(straggler_limit=2, confirm_grace_s=0.5)
    for tag in (1, 2, 3, 4):
        ledger.delivered(tag)
    ledger.awaiting_confirm(1, now=10.0)
    for tag in (2, 3, 4):
        ledger.settled(tag)
    assert ledger.acks(now=10.1) == []  # the confirm is due any moment: one multiple ack later
    ledger.settled(1)
    assert ledger.acks(now=10.2) == [Ack(4, multiple=True)]

    ledger = AckLedger(straggler_limit=2, confirm_grace_s=0.5)
    for tag in (1, 2, 3):
        ledger.delivered(tag)
    ledger.awaiting_confirm(1, now=10.0)
    ledger.settled(2)
    ledger.settled(3)
    assert ledger.acks(now=10.6) == [Ack(2), Ack(3)]  # a confirm that does not come holds nobody back


def test_with_three_quarters_of_the_window_unacked_tags_behind_a_confirm_go_at_once() -> None:
    ledger = AckLedger(straggler_limit=50, confirm_grace_s=0.5, window=8)
    for tag in range(1, 6):
        ledger.delivered(tag)
    ledger.awaiting_confirm(1, now=10.0)
    for tag in (2, 3, 4):
        ledger.settled(tag)
    assert ledger.acks(now=10.1) == []  # 5 of 8 unacked: the confirm is due any moment
    ledger.delivered(6)
    ledger.settled(5)
    # 6 of 8 unacked: the broker is about to stop sending; the confirm is not awaited
    assert ledger.acks(now=10.1) == [Ack(2), Ack(3), Ack(4), Ack(5)]
    assert not ledger.deferred(10.1)
    ledger.settled(1)
    ledger.settled(6)
    assert ledger.acks(now=10.2) == [Ack(6, multiple=True)]  # the prefix, past the ones acked alone
