"""Run many management calls with a bounded number in flight.

Why bounded: the broker serialises metadata writes, so more parallel requests than a few
only queue up inside it and make each one slower to answer; a handful keeps the HTTP round
trips overlapped without flooding it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

IN_FLIGHT = 4  # requests at once: measured best for deletions on a 2-core broker (docs/performance.md)


def run_bounded(
    items: Sequence[T],
    action: Callable[[T], R],
    *,
    in_flight: int = IN_FLIGHT,
    on_done: Callable[[int], None] | None = None,
) -> list[R]:
    """`action(item)` for every item, at most `in_flight` at once; results in the items' order.

    The first failure stops the calls not yet started and is raised once the running ones
    end; `on_done(count)` reports how many calls have finished so far.
    """
    if not items:
        return []
    if in_flight <= 1 or len(items) == 1:
        results = []
        for index, item in enumerate(items, 1):
            results.append(action(item))
            if on_done is not None:
                on_done(index)
        return results
    with ThreadPoolExecutor(max_workers=min(in_flight, len(items)), thread_name_prefix="rabbitform") as pool:
        futures = [pool.submit(action, item) for item in items]
        finished = 0
        pending: Iterable[Future[R]] = futures
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
            finished += len(done)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for future in pending:
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]
            if done and on_done is not None:
                on_done(finished)
        return [future.result() for future in futures]
