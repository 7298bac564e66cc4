"""Which delivery tags a publisher confirm covers, and the ledgers built on it: `ConfirmLedger`
for a publisher, `TransferLedger` for a transfer that acks each source message once its copy
is confirmed. Pure: no I/O, the callers publish and read the frames.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import takewhile
from typing import Generic, TypeVar

__all__ = ["ConfirmLedger", "TransferLedger", "covered_tags"]

T = TypeVar("T")


def covered_tags(outstanding: Iterable[int], tag: int, multiple: bool) -> list[int]:
    """The delivery tags a `basic.ack`/`basic.nack` settles, given the unconfirmed ones in the
    order they were published: `tag` alone, or with `multiple` every one up to and including it."""
    if multiple:
        return list(takewhile(lambda t: t <= tag, outstanding))
    return [tag] if tag in outstanding else []


class ConfirmLedger(Generic[T]):
    """What was published on one confirm-mode channel and is not settled yet, by delivery tag.

    The broker numbers a channel's publishes 1, 2, ... and settles them with `basic.ack` or
    `basic.nack`, each for one tag or, with `multiple`, every open tag up to it. Pure: the
    caller publishes and reads the frames; this says what each frame settles, so the runtime's
    publisher and the planner's mover cannot count differently. Every item is returned by
    `settle` at most once, whatever the order and overlap of the frames.
    """

    __slots__ = ("_open", "next_tag")

    def __init__(self) -> None:
        self._open: dict[int, T] = {}
        self.next_tag = 1

    def publish(self, item: T) -> int:
        """Record `item` as published next; returns its delivery tag."""
        tag = self.next_tag
        self._open[tag] = item
        self.next_tag = tag + 1
        return tag

    def settle(self, tag: int, multiple: bool) -> list[T]:
        """The items a `basic.ack`/`basic.nack` with this tag settles, in publish order (removed)."""
        opened = self._open
        return [opened.pop(t) for t in covered_tags(opened, tag, multiple)]

    def settle_tagged(self, tag: int, multiple: bool) -> list[tuple[int, T]]:
        """Like `settle`, with each item's tag."""
        opened = self._open
        return [(t, opened.pop(t)) for t in covered_tags(opened, tag, multiple)]

    def new_channel(self) -> None:
        """A fresh channel numbers its publishes from 1 again (take what was open first)."""
        self.next_tag = 1

    def unsettled(self) -> list[tuple[int, T]]:
        """The open (tag, item) pairs, in publish order."""
        return list(self._open.items())

    def take_all(self) -> list[tuple[int, T]]:
        """Every open (tag, item), in publish order, and forget them (a channel closed: none will
        be confirmed on it)."""
        taken = list(self._open.items())
        self._open.clear()
        return taken

    def take(self, tag: int) -> T:
        return self._open.pop(tag)

    def values(self) -> list[T]:
        return list(self._open.values())

    def __len__(self) -> int:
        return len(self._open)

    def __bool__(self) -> bool:
        return bool(self._open)


@dataclass(eq=False)
class _Held:
    """A source message held unacked during a transfer, and whether it may be acked."""

    source_tag: int
    copied: bool  # False: skipped (nothing to publish), ackable at once
    settled: bool = False  # its copy is confirmed (a refused copy never is: it stays in the source)
    left: bool = False  # left in place: never acked, given back when the transfer ends


class TransferLedger:
    """The bookkeeping of a confirmed transfer: messages taken from a source queue are held
    unacked, their copies published with confirms, and each source message is acked only once
    its copy is confirmed. Acks go in delivery order: a source message whose copy is not
    confirmed yet (or was nacked or returned) holds back every later one, so an interruption
    leaves it, and them, in the source. While no message was left in place the confirmed
    prefix is acked as one `basic.ack(multiple=True)`; a message left in place must stay
    unacked, so every later ack is for its own tag alone.

    Pure: `copy`/`skip`/`leave` as messages arrive, `confirm`/`refuse` as the broker answers,
    `acks` for the `basic.ack` frames to send now. Used by the shared transfer
    (`topology.amqp.transfer`); the runtime's publisher keeps its copies in a `ConfirmLedger` too.
    """

    def __init__(self) -> None:
        self.copies: ConfirmLedger[_Held] = ConfirmLedger()
        self._held: deque[_Held] = deque()
        self._one_by_one = False  # a tag left below: `multiple` would ack it
        self.moved = 0  # acked sources whose copy was confirmed
        self.skipped = 0  # acked sources nothing was published for
        self.left = 0  # sources left in place, behind every ack before them

    def copy(self, source_tag: int) -> int:
        """A copy of source message `source_tag` is published next; returns its publish tag."""
        held = _Held(source_tag, copied=True)
        self._held.append(held)
        return self.copies.publish(held)

    def skip(self, source_tag: int) -> None:
        """Source message `source_tag` needs no copy (e.g. a duplicate): ack it in its turn."""
        self._held.append(_Held(source_tag, copied=False, settled=True))

    def leave(self, source_tag: int) -> None:
        """Source message `source_tag` stays where it is: never acked (given back at the end)."""
        self._held.append(_Held(source_tag, copied=False, settled=True, left=True))

    def confirm(self, tag: int, multiple: bool) -> None:
        """The broker acked the copies up to `tag` (`multiple`) or `tag` alone."""
        for held in self.copies.settle(tag, multiple):
            held.settled = True

    def refuse(self, tag: int, multiple: bool) -> list[int]:
        """The broker nacked (or could not route) these copies: their source messages are never
        acked here (they stay in the source). Returns their source tags."""
        return [held.source_tag for held in self.copies.settle(tag, multiple)]

    def acks(self) -> list[tuple[int, bool]]:
        """The (source tag, multiple) acks to send now, in delivery order: the source messages
        up to the first one still waiting for its copy, except those left in place."""
        frames: list[tuple[int, bool]] = []
        run_end: int | None = None  # the last tag of a run one `multiple` ack covers
        held = self._held
        while held and held[0].settled:
            done = held.popleft()
            if done.left:
                if run_end is not None:
                    frames.append((run_end, True))
                    run_end = None
                self._one_by_one = True
                self.left += 1
                continue
            if done.copied:
                self.moved += 1
            else:
                self.skipped += 1
            if self._one_by_one:
                frames.append((done.source_tag, False))
            else:
                run_end = done.source_tag
        if run_end is not None:
            frames.append((run_end, True))
        return frames

    def ackable(self) -> int | None:
        """The highest source tag to ack now with `multiple=True` (None: nothing new), for a
        transfer that leaves nothing in place (else use `acks`)."""
        frames = self.acks()
        return frames[-1][0] if frames else None

    @property
    def pending(self) -> int:
        """Source messages held and not acked (or left) yet."""
        return len(self._held)
