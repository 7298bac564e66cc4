"""Deliveries handled several to one transaction (`Subscription.batch`: an inbox's subscriptions).

An inbox pays one database COMMIT per transaction (an fsync); one per delivery caps a consumer
far below the broker's pace. So the consumer queues an inbox subscription's deliveries here, and
a drainer (a worker thread, or a task on the handler loop) takes what has arrived, up to the
batch limit, runs their handlers in one transaction, and posts their decisions once it
committed. Nothing waits for deliveries still to come: a drainer starts as soon as a delivery
arrives and none runs for that queue, so a lone message is handled at once, and under load each
batch holds what arrived while the previous ones ran. The handlers of one batch run one after
another (they share a session); another drainer of the same queue, up to the worker count,
starts once a batch's worth of deliveries waits, that worth measured (`Costs`): slow handlers
get a drainer each and keep the worker pool's parallelism, fast ones share transactions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Generic, TypeVar

import pika

from bus_runtime.dispatch import delivery_of, failure_of_exception, handle_delivery, handle_delivery_async
from bus_runtime.retry import Decision, decide
from bus_runtime.subscriber import Subscription

log = logging.getLogger("bus_runtime.consumer")

W = TypeVar("W")

Delivery = tuple[bytes, str, pika.BasicProperties]
"""What a handler call needs of a delivery: body, routing key, properties."""

Unexpected = Callable[[BaseException, int], Decision]
"""The decision for a failure outside the handler (`RabbitMqEventConsumer._unexpected`), by index."""


class Pending(Generic[W]):
    """Per queue: deliveries waiting for a drainer, how many drainers are scheduled or running,
    and what a batch costs (to decide when another drainer pays)."""

    def __init__(self, drainers: int) -> None:
        self.drainers = max(1, drainers)
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[W]] = {}
        self._running: dict[str, int] = {}
        self._costs: dict[str, Costs] = {}

    def add(self, queue: str, work: W, limit: int, parallel: bool = True) -> bool:
        """Queue a delivery; True when the caller must start a drainer for the queue: none runs,
        or a batch's worth waits (`Costs.batch_size`) and fewer than `drainers` run (one when
        not `parallel`)."""
        with self._lock:
            waiting = self._waiting.setdefault(queue, deque())
            waiting.append(work)
            running = self._running.get(queue, 0)
            most = self.drainers if parallel else 1
            if running and (running >= most or len(waiting) < self.costs(queue).batch_size(limit)):
                return False
            self._running[queue] = running + 1
            return True

    def take(self, queue: str, limit: int) -> list[W]:
        """A drainer's batch: the waiting deliveries, oldest first, up to a batch's worth
        (`Costs.batch_size`: one until measured, so a burst of slow handlers spreads over the
        drainers). Empty: the drainer ends (another one took them)."""
        with self._lock:
            waiting = self._waiting.get(queue)
            size = self.costs(queue).batch_size(limit)
            taken = [waiting.popleft() for _ in range(min(size, len(waiting)))] if waiting else []
            if not taken:
                self._running[queue] -= 1
            return taken

    def again(self, queue: str) -> bool:
        """After a batch: True when deliveries wait (the drainer goes on, behind other work);
        otherwise the drainer ends."""
        with self._lock:
            if self._waiting.get(queue):
                return True
            self._running[queue] -= 1
            return False

    def ended(self, queue: str) -> None:
        """A drainer that could not be started (the pool or the loop is closing)."""
        with self._lock:
            self._running[queue] -= 1

    def waiting(self, queue: str) -> int:
        with self._lock:
            return len(self._waiting.get(queue, ()))

    def costs(self, queue: str) -> Costs:
        costs = self._costs.get(queue)
        if costs is None:
            costs = self._costs[queue] = Costs()
        return costs


class Costs:
    """What one queue's batches cost, as moving averages: the transaction's own part (claim and
    commit) and the handlers' part per delivery.

    A batch of n deliveries costs about `overhead + n * handler`; batching pays while the shared
    overhead is large against the handlers' time, so the batch worth waiting for before another
    drainer starts is `overhead / handler` deliveries (at least 1, at most the limit). Slow
    handlers (an HTTP call) thus get a drainer each, in parallel, as without batches; fast ones
    (a few SQL statements) share transactions. Until measured: 1 (no batch is waited for)."""

    WEIGHT = 0.2  # of the newest batch in the averages

    def __init__(self) -> None:
        self.overhead_s: float | None = None
        self.handler_s: float | None = None

    def record(self, count: int, overhead_s: float, handling_s: float) -> None:
        if count < 1:
            return
        per = handling_s / count
        if self.overhead_s is None or self.handler_s is None:
            self.overhead_s, self.handler_s = overhead_s, per
            return
        self.overhead_s += self.WEIGHT * (overhead_s - self.overhead_s)
        self.handler_s += self.WEIGHT * (per - self.handler_s)

    def batch_size(self, limit: int) -> int:
        if self.overhead_s is None or self.handler_s is None:
            return 1
        return max(1, min(limit, math.ceil(self.overhead_s / max(self.handler_s, 1e-6))))


def ids_of(deliveries: Sequence[Delivery]) -> list[str | None]:
    """The message ids known before parsing (the AMQP property), for the batch's one claim."""
    return [properties.message_id for _body, _key, properties in deliveries]


def run_batch(
    sub: Subscription, deliveries: Sequence[Delivery], unexpected: Unexpected, costs: Costs
) -> list[Decision]:
    """Handle deliveries of one subscription in one transaction; their decisions, in order."""
    assert sub.batch is not None
    decisions: list[Decision] = []
    began = time.perf_counter()
    try:
        with sub.batch(ids_of(deliveries)):
            entered = time.perf_counter()
            for index, (body, routing_key, properties) in enumerate(deliveries):
                try:
                    decision, _message = handle_delivery(sub, body, routing_key, properties.headers)
                except BaseException as exc:  # a bug outside the handler, or SystemExit in it
                    decision = unexpected(exc, index)
                decisions.append(decision)
            handled = time.perf_counter()
    except Exception as exc:  # the claim or the commit failed: nothing of the batch took effect
        return failed(sub, deliveries, decisions, exc)
    costs.record(len(deliveries), (entered - began) + (time.perf_counter() - handled), handled - entered)
    return decisions


async def run_batch_async(
    sub: Subscription, deliveries: Sequence[Delivery], unexpected: Unexpected, costs: Costs
) -> list[Decision]:
    """`run_batch` for `async def` handlers, on their event loop."""
    assert sub.batch is not None
    decisions: list[Decision] = []
    began = time.perf_counter()
    try:
        async with sub.batch(ids_of(deliveries)):
            entered = time.perf_counter()
            for index, (body, routing_key, properties) in enumerate(deliveries):
                try:
                    decision, _message = await handle_delivery_async(sub, body, routing_key, properties.headers)
                except BaseException as exc:
                    decision = unexpected(exc, index)
                decisions.append(decision)
            handled = time.perf_counter()
    except Exception as exc:
        return failed(sub, deliveries, decisions, exc)
    costs.record(len(deliveries), (entered - began) + (time.perf_counter() - handled), handled - entered)
    return decisions


def failed(
    sub: Subscription, deliveries: Sequence[Delivery], decided: Sequence[Decision], exc: Exception
) -> list[Decision]:
    """The decisions when the transaction failed: what was to be acked follows the retry policy
    (its writes were rolled back), and so does what was not decided yet; a retry or a dead letter
    decided already stands."""
    log.warning(
        "%s: the transaction of %d deliveries failed (%s: %s); they follow the retry policy",
        sub.queue,
        len(deliveries),
        type(exc).__name__,
        exc,
    )
    now = datetime.now(timezone.utc)
    decisions = []
    for index, (_body, routing_key, properties) in enumerate(deliveries):
        decision = decided[index] if index < len(decided) else None
        if decision is None or decision.action == "ack":
            delivery = delivery_of(sub, routing_key, properties.headers)
            decision = decide(delivery, failure_of_exception(exc), sub.max_retries, now)
        decisions.append(decision)
    return decisions
