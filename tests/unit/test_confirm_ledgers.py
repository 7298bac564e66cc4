"""The confirm bookkeeping both sides share (topology.amqp): `ConfirmLedger` (the runtime's
publisher, the planner's mover) and `TransferLedger` (a transfer that acks each source message
only once its copy is confirmed). Pure: any order of the broker's frames, no broker."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from topology.amqp import ConfirmLedger, TransferLedger

# A broker's answers: (tag, multiple, ack) frames in any order; tags may repeat or be stale.
frames = st.lists(st.tuples(st.integers(1, 40), st.booleans(), st.booleans()), max_size=60)


def test_a_ledger_numbers_publishes_from_one_per_channel() -> None:
    ledger: ConfirmLedger[str] = ConfirmLedger()
    assert [ledger.publish(x) for x in "abc"] == [1, 2, 3]
    assert ledger.settle(2, multiple=False) == ["b"]
    assert ledger.settle(3, multiple=True) == ["a", "c"]
    assert not ledger
    ledger.new_channel()
    assert ledger.publish("d") == 1


@given(st.integers(0, 40), frames)
def test_any_interleaving_of_acks_and_nacks_settles_each_tag_exactly_once(
    published: int, answers: list[tuple[int, bool, bool]]
) -> None:
    ledger: ConfirmLedger[int] = ConfirmLedger()
    for n in range(1, published + 1):
        assert ledger.publish(n) == n
    settled: list[int] = []
    for tag, multiple, _ack in answers:
        covered = ledger.settle(tag, multiple)
        if multiple:  # a multiple frame leaves nothing open at or below its tag
            assert all(t > tag for t, _ in ledger.unsettled())
        assert covered == sorted(covered) and all(c <= tag for c in covered)
        settled.extend(covered)
    assert len(settled) == len(set(settled))  # never twice
    assert sorted(settled + [t for t, _ in ledger.unsettled()]) == list(range(1, published + 1))
    settled.extend(ledger.settle(published, multiple=True))  # the broker's last word covers the rest
    assert sorted(settled) == list(range(1, published + 1)) and len(ledger) == 0


@given(st.lists(st.booleans(), max_size=30), st.randoms(use_true_random=False))
def test_a_source_message_is_acked_only_after_its_copy_and_every_earlier_one_is_confirmed(
    copies: list[bool], rng: random.Random
) -> None:
    ledger = TransferLedger()
    publish_tag: dict[int, int] = {}  # source tag -> its copy's publish tag (skipped ones have none)
    for source_tag, copied in enumerate(copies, start=1):
        if copied:
            publish_tag[source_tag] = ledger.copy(source_tag)
        else:
            ledger.skip(source_tag)
    answers = list(publish_tag.values())
    rng.shuffle(answers)  # the broker confirms in any order, sometimes several at once
    acked_upto = 0
    for tag in answers:
        ledger.confirm(tag, multiple=rng.random() < 0.3)
        upto = ledger.ackable()
        if upto is not None:
            assert upto > acked_upto  # acks move forward only
            acked_upto = upto
        unconfirmed = {t for t, _ in ledger.copies.unsettled()}
        assert all(source > acked_upto for source, t in publish_tag.items() if t in unconfirmed)
    last = ledger.ackable()
    acked_upto = last if last is not None else acked_upto
    assert acked_upto == len(copies) and ledger.pending == 0
    assert (ledger.moved, ledger.skipped) == (len(publish_tag), len(copies) - len(publish_tag))


def test_a_refused_copy_keeps_its_source_and_every_later_one_unacked() -> None:
    ledger = TransferLedger()
    first, second, third = ledger.copy(10), ledger.copy(11), ledger.copy(12)
    ledger.skip(13)
    assert ledger.refuse(second, multiple=False) == [11]
    ledger.confirm(third, multiple=True)  # covers `first` too
    assert ledger.ackable() == 10  # 11 was refused: it and what follows stay in the source
    assert ledger.ackable() is None and ledger.pending == 3 and ledger.moved == 1
    assert first == 1
