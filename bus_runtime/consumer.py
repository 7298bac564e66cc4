"""`RabbitMqEventConsumer`: run handlers on their queues, with retries and dead letters.

The imperative shell around `bus_runtime.dispatch` (parse, run, decide) and
`bus_runtime.retry` (the decision): one I/O thread owns the connection; handlers run on a
bounded worker pool, so a handler slower than the heartbeat does not kill the connection.
Three units do the I/O: `consumer_connection` (connect, check the queues, consume, reconnect),
`settlement` (acks on the channel that delivered) and `republisher` (retry and dead-letter
copies, on a connection of their own so that a memory alarm blocking publishers does not stop
the acks). This class wires them to the handler pool.

Delivery is at-least-once. A retry or dead-letter decision republishes the same body and
properties, with the decision's headers, on a confirm-mode channel and acks the original only
once the broker confirmed the copy. After a lost connection the broker redelivers whatever was
not acked, so a handler may see a message twice: handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import pika
from pika.channel import Channel

from bus_runtime.async_handlers import is_async_handler
from bus_runtime.batched import Pending, run_batch, run_batch_async
from bus_runtime.breaker_gate import BreakerGate
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer_connection import ConsumerConnection, State
from bus_runtime.dispatch import delivery_of, failure_of_exception, handle_delivery, handle_delivery_async
from bus_runtime.errors import BrokerUnavailable, BusError
from bus_runtime.iothread import IoThread
from bus_runtime.limits import check_timeout
from bus_runtime.republisher import Copy, Republisher
from bus_runtime.retry import RELEASE, Decision, decide
from bus_runtime.settlement import Settlement
from bus_runtime.subscriber import EventSubscriber, Handler, Subscription, store_subscription, subscriptions
from bus_runtime.telemetry import hooks
from topology import naming

if TYPE_CHECKING:
    from bus_runtime.subscriber import SubscriptionGuard

log = logging.getLogger("bus_runtime.consumer")

DEFAULT_PREFETCH = 100
DEFAULT_WORKERS = 8
REPUBLISH_FAILURE_DELAY = 1.0  # seconds before a message whose retry copy failed is requeued


DEFAULT_SHUTDOWN_TIMEOUT = 30.0  # seconds running handlers get to finish on stop
CLOSE_RESERVE_S = 2.0  # of the stop's time, kept for closing the connection
ABORT_S = 0.5  # how long an abort waits for the I/O threads


class _StopNow(BaseException):
    """A second SIGINT/SIGTERM: leave the graceful stop at once."""


class _Work(NamedTuple):
    """One delivery to handle, with the generation of the channel it came on (for its ack)."""

    generation: int
    sub: Subscription
    tag: int
    routing_key: str
    properties: pika.BasicProperties
    body: bytes


_Result = tuple[_Work, Decision]
"""A handled delivery and what to do with it, for the I/O thread."""


class RabbitMqEventConsumer:
    """Consume the queues of `subscribers` (and the store) on `<organization>.<service>`.

    `max_retries=N` allows at most N+1 handler calls per message; `prefetch` bounds the
    messages in hand (default 100); `workers` is the size of the handler pool; `inbox`
    (`bus_runtime.outbox.Inbox`) runs each handler once in effect per message.
    """

    def __init__(
        self,
        connector: RabbitMqConnector | None,
        organization: str,
        service: str,
        *,
        max_retries: int = 5,
        prefetch: int = DEFAULT_PREFETCH,
        workers: int = DEFAULT_WORKERS,
        start_timeout: float = 30.0,
        layout: naming.Layout = naming.DEFAULT_LAYOUT,
        inbox: SubscriptionGuard | None = None,
    ) -> None:
        if connector is not None and not isinstance(connector, RabbitMqConnector):
            raise TypeError(f"connector must be a RabbitMqConnector or None, not {type(connector).__name__}")
        for name, value in (("organization", organization), ("service", service)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        for name, number in (("max_retries", max_retries), ("prefetch", prefetch), ("workers", workers)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f"{name} must be an int, not {type(number).__name__}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if prefetch < 1 or workers < 1:
            raise ValueError("prefetch and workers must be >= 1")
        self.connector = connector or RabbitMqConnector()
        self.organization = organization
        self.service = service
        self.max_retries = max_retries
        self.prefetch = prefetch
        self.workers = workers
        self.start_timeout = start_timeout
        self.layout = layout  # whose queue names and store route: rabbitform's or petisco's
        self.inbox = inbox  # `bus_runtime.outbox.Inbox`: each handler call in its transaction
        self.subscriptions: list[Subscription] = []
        self.reconnect_count = 0

        self._io = IoThread(f"rabbitform-consumer-{organization}.{service}")
        self._executor: ThreadPoolExecutor | None = None
        # `async def` handlers of these queues run on this loop, without a worker thread (set by
        # `bus_runtime.aio.AsyncRabbitMqEventConsumer`); otherwise on the worker pool
        self.handler_loop: asyncio.AbstractEventLoop | None = None
        self._on_loop: frozenset[str] = frozenset()
        self._loop_inbox: deque[_Work] = deque()
        self._loop_wake_pending = False
        self._loop_tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        # deliveries handed to a worker or the loop whose handler has not started, by (generation,
        # tag): whoever pops one first owns it (a worker runs it; stop() returns it to the queue)
        self._unstarted: dict[tuple[int, int], _Work] = {}
        self._batched: Pending[_Work] = Pending(workers)  # an inbox's deliveries, several a transaction
        self._results: deque[_Result] = deque()
        self._wake_pending = False
        # The lifecycle is the connection's `State` (I/O thread); these events only let the
        # caller's thread wait for its steps: consuming (or failed), drained, closed.
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._drained = threading.Event()
        self._closed = threading.Event()
        self._running = False  # caller's side: between start() and the end of the stop
        # I/O-thread units
        self._settlement = Settlement(straggler_limit=max(1, prefetch // 2))
        self._flush_later = False  # a flush is scheduled for acks deferred behind a confirm
        self._connection = ConsumerConnection(self._io, self.connector, self.subscriptions, prefetch, self)
        self._republisher = Republisher(self.connector, self._io, self._republished, self._republish_failed)
        self._gate = BreakerGate(self._io, self._connection, ())  # per subscription, built at start()

    @property
    def handled_count(self) -> int:
        """Deliveries settled: acked after success, retry or dead letter."""
        return self._settlement.settled_count

    @property
    def retried_count(self) -> int:
        return self._republisher.retried_count

    @property
    def dead_lettered_count(self) -> int:
        return self._republisher.dead_lettered_count

    @property
    def state(self) -> State:
        """Where the consumer's connection is (`bus_runtime.consumer_connection.State`)."""
        return self._connection.state

    @property
    def transitions(self) -> list[tuple[State, State, str]]:
        """The last state changes, oldest first: (from, to, why)."""
        return list(self._connection.transitions)

    @property
    def illegal_transitions(self) -> list[tuple[State, State, str]]:
        """State changes `TRANSITIONS` does not allow: a bug if ever non-empty."""
        return list(self._connection.illegal_transitions)

    # ------------------------------------------------------------------ configuration

    def consume(self, subscribers: Iterable[EventSubscriber]) -> None:
        """Add subscribers: each handler consumes its own queue."""
        self._add(subscriptions(self.organization, self.service, subscribers, self.max_retries, self.layout))

    def consume_store(
        self, handler: Handler, queue: str = naming.DEFAULT_STORE_QUEUE, max_retries: int | None = None
    ) -> None:
        """Run `handler` on the store queue, which hears every event and command."""
        retries = self.max_retries if max_retries is None else max_retries
        self._add([store_subscription(self.organization, self.service, handler, retries, queue, self.layout)])

    def add_subscriptions(self, subs: Iterable[Subscription]) -> None:
        self._add(list(subs))

    def _add(self, subs: list[Subscription]) -> None:
        if self._running:
            raise BusError("add subscribers before start()")
        known = {s.queue for s in self.subscriptions}
        if self.inbox is not None:
            subs = [self.inbox.guard(sub) for sub in subs]
        for sub in subs:
            if sub.queue in known:
                raise ValueError(f"queue {sub.queue!r} is consumed twice (same handler name for one message?)")
            known.add(sub.queue)
            self.subscriptions.append(sub)

    @classmethod
    def from_spec(
        cls,
        path: str | Path,
        service: str | None = None,
        subscribers: Iterable[str] | None = None,
        connector: RabbitMqConnector | None = None,
        variables: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RabbitMqEventConsumer:
        """A consumer for the handlers a spec names by import path (see `bus_runtime.spec_runtime`),
        on the spec's vhost unless `connector` is given; `options` go to the constructor.
        The spec loader (PyYAML, jinja2) is imported here, not with the runtime."""
        from bus_runtime.spec_runtime import spec_subscriptions
        from topology.spec.loader import load_spec

        spec = load_spec(path, variables)
        subs = spec_subscriptions(spec, service, subscribers, str(Path(path)))
        chosen = connector or RabbitMqConnector().with_vhost(spec.vhost)
        consumer = cls(chosen, spec.organization, service or subs[0].service, **{"layout": spec.layout, **options})
        consumer.add_subscriptions(subs)
        return consumer

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect, check that every queue exists, start consuming; returns once consuming.

        Raises `TopologyMissing` (run `rabbitform apply`) or `BrokerUnavailable`.
        """
        if not self.subscriptions:
            raise BusError("nothing to consume: call consume(subscribers) or consume_store(handler) first")
        if self._running:
            return
        if self._io.started:
            raise BusError("a stopped consumer cannot be started again: create a new one")
        self._running = True
        if self.handler_loop is not None:
            self._on_loop = frozenset(sub.queue for sub in self.subscriptions if is_async_handler(sub.handler))
        self._gate = BreakerGate(self._io, self._connection, self.subscriptions)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="rabbitform-handler")
        self._io.start()
        self._io.call(self._connection.connect)
        if not self._started.wait(self.start_timeout):
            self._start_error = self._start_error or BrokerUnavailable(
                f"consumer not ready after {self.start_timeout:g}s ({self.connector.safe_url})"
            )
        if self._start_error is not None:
            error = self._start_error
            self._shutdown(time.monotonic() + 5.0)
            raise error
        log.info("consuming %d queue(s) on %s", len(self.subscriptions), self.connector.safe_url)

    def stop(self, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        """Stop at once taking deliveries, return to the queue at once every prefetched delivery
        whose handler has not started, let the running handlers finish within `timeout` seconds
        (their acks, retries and dead letters go out), then close.

        Returns within `timeout` seconds even when the broker does not answer; a handler still
        running then is left behind and the broker redelivers its message (at-least-once)."""
        if not self._running:
            return
        check_timeout(timeout, "stop timeout")
        deadline = time.monotonic() + timeout
        close_reserve = min(CLOSE_RESERVE_S, timeout / 4)
        self._io.call(self._stop_taking)
        if not self._drained.wait(max(0.0, deadline - close_reserve - time.monotonic())):
            log.warning("stop: messages still in hand after %gs; the broker will redeliver them", timeout)
        self._shutdown(deadline)

    def abort(self) -> None:
        """Stop at once: no grace, no goodbye to the broker. Whatever is in hand is not acked and
        the broker requeues it when the connection goes (a second SIGINT/SIGTERM)."""
        self._drained.set()
        self._shutdown(time.monotonic() + ABORT_S)

    def run_forever(self, shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> bool:
        """Start (if needed) and block until SIGINT or SIGTERM, then `stop(shutdown_timeout)`.
        A second signal during the stop stops at once (`abort()`). Returns True when it was
        aborted (handler threads may still be running: the process should exit now)."""
        check_timeout(shutdown_timeout, "shutdown timeout")
        stop = threading.Event()
        signals: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            signals.append(signum)
            if len(signals) == 1:
                log.info(
                    "signal %d: stopping (up to %gs for running handlers; again to stop at once)",
                    signum,
                    shutdown_timeout,
                )
                stop.set()
                return
            log.warning("signal %d again: stopping at once; the broker requeues the messages in hand", signum)
            raise _StopNow

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            try:
                self.start()
                while not stop.wait(0.5):
                    if self._closed.is_set():
                        raise BusError("the consumer's connection closed and could not be re-established")
            finally:
                try:
                    self.stop(shutdown_timeout)
                except _StopNow:
                    self.abort()
                    return True
        except _StopNow:
            self.abort()
            return True
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return False

    @property
    def is_running(self) -> bool:
        return self._running and not self._closed.is_set()

    def __enter__(self) -> RabbitMqEventConsumer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _shutdown(self, deadline: float) -> None:
        """Close the connection, the republisher and the I/O thread, each waiting at most until
        `deadline` (a broker that does not answer does not hold the caller)."""
        self._io.call(self._connection.close)
        self._closed.wait(max(0.0, deadline - time.monotonic()))
        self._republisher.close(max(0.0, deadline - time.monotonic()))
        self._io.stop(max(0.0, deadline - time.monotonic()))
        if self._executor is not None:
            # after a drain every handler returned; else do not hang on one that never returns
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._running = False

    def _stop_taking(self) -> None:
        """On the I/O thread: cancel the consumers and return every delivery whose handler has
        not started to its queue (a nack with requeue), so another consumer can take it now."""
        self._connection.cancel_consumers()
        self._return_unstarted()

    def _return_unstarted(self) -> None:
        returned = 0
        for key in list(self._unstarted):
            work = self._unstarted.pop(key, None)
            if work is not None:
                self._settlement.requeue(work.generation, work.tag)
                returned += 1
        if returned:
            log.info("stop: %d prefetched message(s) returned to their queue", returned)
        self._flush()

    # ------------------------------------------------------------------ I/O thread: ConsumerEvents

    def on_consuming(self, channel: Channel, reconnected: bool) -> None:
        self._settlement.attach(channel)
        if reconnected:
            self.reconnect_count += 1
            hooks.reconnected("consumer", "")
            log.info("consumer reconnected; consuming %d queue(s) again", len(self.subscriptions))
        self._started.set()

    def on_delivery(
        self, sub: Subscription, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        tag = method.delivery_tag
        self._settlement.delivered(tag)
        if self._connection.stopping:  # sent before the broker saw the cancel: back to the queue at once
            self._settlement.requeue(self._settlement.generation, tag)
            self._flush()
            return
        assert self._executor is not None
        work = _Work(self._settlement.generation, sub, tag, method.routing_key, properties, body)
        self._unstarted[(work.generation, tag)] = work
        if sub.batch is not None:
            if self._batched.add(sub.queue, work, self._batch_limit(sub), sub.batch_parallel):
                self._start_drainer(sub)
            return
        if sub.queue in self._on_loop and self.handler_loop is not None:
            self._to_loop(work)
            return
        with contextlib.suppress(RuntimeError):  # the pool is shutting down: the broker redelivers
            self._executor.submit(self._work, work)

    def on_channel_lost(self) -> None:
        """Delivery tags belong to their channel: forget them all (the broker redelivers; a copy
        still in flight settles nothing when it is confirmed)."""
        self._settlement.detach()

    def on_start_failed(self, error: BusError) -> None:
        if not self._started.is_set():
            if self._start_error is None:
                self._start_error = error
            self._started.set()

    def on_cancelled(self) -> None:
        self._maybe_drained()

    def on_closed(self) -> None:
        self._drained.set()
        self._closed.set()

    # ------------------------------------------------------------------ handlers and their results

    def _work(self, work: _Work) -> None:
        """On a worker thread: run the handler, then hand the decision to the I/O thread."""
        if self._unstarted.pop((work.generation, work.tag), None) is None:
            return  # returned to its queue by stop()
        if not self._gate.admits(work.sub):  # its circuit breaker is open
            self._post(work, RELEASE)
            return
        try:
            decision, _message = handle_delivery(work.sub, work.body, work.routing_key, work.properties.headers)
        except BaseException as exc:  # a bug outside the handler, or SystemExit in it: retry
            decision = self._unexpected(exc, work)
        self._gate.record(work.sub, decision)
        self._post(work, decision)

    def _to_loop(self, work: _Work) -> None:
        """From the I/O thread: queue a delivery for the handler loop, waking it once per batch."""
        assert self.handler_loop is not None
        self._loop_inbox.append(work)
        with self._lock:
            if self._loop_wake_pending:
                return
            self._loop_wake_pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the broker redelivers
            self.handler_loop.call_soon_threadsafe(self._start_on_loop)

    def _start_on_loop(self) -> None:
        """On the handler loop: one task per queued delivery."""
        with self._lock:
            self._loop_wake_pending = False
        loop = asyncio.get_running_loop()
        while self._loop_inbox:
            task = loop.create_task(self._work_async(self._loop_inbox.popleft()))
            self._loop_tasks.add(task)  # a reference, until it is done
            task.add_done_callback(self._loop_tasks.discard)

    async def _work_async(self, work: _Work) -> None:
        """On the handler loop: await an async handler, then hand the decision to the I/O thread."""
        if self._unstarted.pop((work.generation, work.tag), None) is None:
            return  # returned to its queue by stop()
        if not self._gate.admits(work.sub):  # its circuit breaker is open
            self._post(work, RELEASE)
            return
        try:
            decision, _message = await handle_delivery_async(
                work.sub, work.body, work.routing_key, work.properties.headers
            )
        except BaseException as exc:  # a bug outside the handler, or SystemExit in it: retry
            decision = self._unexpected(exc, work)
        self._gate.record(work.sub, decision)
        self._post(work, decision)

    # ------------------------------------------------------------------ batched subscriptions (`bus_runtime.batched`)

    def _start_drainer(self, sub: Subscription) -> None:
        """A drainer for the queue's waiting deliveries: a worker, or a task on the handler loop."""
        try:
            if sub.queue in self._on_loop and self.handler_loop is not None:
                self.handler_loop.call_soon_threadsafe(self._drain_on_loop, sub)
            else:
                assert self._executor is not None
                self._executor.submit(self._work_batch, sub)
        except RuntimeError:  # the pool or the loop is closing: the broker redelivers
            self._batched.ended(sub.queue)

    def _drain_on_loop(self, sub: Subscription) -> None:
        task = asyncio.get_running_loop().create_task(self._work_batch_async(sub))
        self._loop_tasks.add(task)
        task.add_done_callback(self._loop_tasks.discard)

    def _batch_limit(self, sub: Subscription) -> int:
        """At most half the prefetch: the next batch's deliveries arrive while one runs."""
        return min(sub.batch_limit, max(1, self.prefetch // 2))

    def _admitted(self, sub: Subscription) -> list[_Work] | None:
        """The next batch (None: the drainer ends), without what stop() returned to the queue
        or what an open circuit breaker releases."""
        taken = self._batched.take(sub.queue, self._batch_limit(sub))
        if not taken:
            return None
        works = []
        for work in taken:
            if self._unstarted.pop((work.generation, work.tag), None) is None:
                continue
            if not self._gate.admits(sub):
                self._post(work, RELEASE)
                continue
            works.append(work)
        return works

    def _work_batch(self, sub: Subscription) -> None:
        """On a worker thread: one batch in one transaction, then its decisions to the I/O thread."""
        works = self._admitted(sub)
        if works is None:
            return
        try:
            if works:
                deliveries = [(w.body, w.routing_key, w.properties) for w in works]
                costs = self._batched.costs(sub.queue)
                decisions = run_batch(sub, deliveries, lambda exc, i: self._unexpected(exc, works[i]), costs)
                self._post_batch(sub, works, decisions)
        finally:
            if self._batched.again(sub.queue):
                self._start_drainer(sub)  # behind the pool's other work

    def _post_batch(self, sub: Subscription, works: list[_Work], decisions: list[Decision]) -> None:
        for work, decision in zip(works, decisions, strict=True):
            self._gate.record(sub, decision)
            self._post(work, decision)

    async def _work_batch_async(self, sub: Subscription) -> None:
        """`_work_batch` for `async def` handlers, on the handler loop."""
        works = self._admitted(sub)
        if works is None:
            return
        try:
            if works:
                deliveries = [(w.body, w.routing_key, w.properties) for w in works]
                costs = self._batched.costs(sub.queue)
                decisions = await run_batch_async(
                    sub, deliveries, lambda exc, i: self._unexpected(exc, works[i]), costs
                )
                self._post_batch(sub, works, decisions)
        finally:
            if self._batched.again(sub.queue):
                self._drain_on_loop(sub)

    @staticmethod
    def _unexpected(exc: BaseException, work: _Work) -> Decision:
        """A failure outside the handler is decided like the handler's own: retried, then dead-lettered."""
        sub = work.sub
        if isinstance(exc, Exception):  # a bug of the runtime's: worth a traceback
            log.exception("cannot handle a delivery on %s", sub.queue)
        else:  # a BaseException the handler raised (SystemExit, a custom one): its failure, no alarm
            log.warning(
                "handler %s raised %s (%s), which is not an Exception; handled as its failure",
                sub.handler_name,
                type(exc).__name__,
                exc,
            )
        delivery = delivery_of(sub, work.routing_key, work.properties.headers)
        return decide(delivery, failure_of_exception(exc), sub.max_retries, datetime.now(timezone.utc))

    def _post(self, work: _Work, decision: Decision) -> None:
        """Queue a decision for the I/O thread, waking it once per batch."""
        self._results.append((work, decision))
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        with contextlib.suppress(Exception):  # the loop is closed: stopped, the broker redelivers
            self._io.call(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        results, settlement = self._results, self._settlement
        generation = settlement.generation
        copies: list[Copy] = []
        while results:
            work, decision = results.popleft()
            if work.generation != generation:
                continue  # its channel is gone; the broker redelivers the message
            if decision.action == "release":
                settlement.requeue(generation, work.tag)
                continue
            if decision.action == "ack":
                settlement.ack(generation, work.tag)
            else:
                settlement.awaiting_confirm(generation, work.tag)
                copies.append((work.tag, decision, work.properties, work.body, work.sub))
        self._republisher.republish_batch(generation, copies)
        self._flush()

    def _republished(self, generation: int, delivery_tag: int) -> None:
        self._settlement.ack(generation, delivery_tag)
        self._flush()

    def _republish_failed(self, generation: int, delivery_tag: int) -> None:
        def requeue() -> None:
            self._settlement.requeue(generation, delivery_tag)
            self._flush()

        self._io.ioloop.call_later(REPUBLISH_FAILURE_DELAY, requeue)

    def _flush(self) -> None:
        self._settlement.flush()
        if self._settlement.deferred and not self._flush_later:
            # acks wait for a copy's confirm (a memory alarm may hold it back): look again once
            # the grace is over, even if nothing else happens meanwhile
            self._flush_later = True
            self._io.ioloop.call_later(self._settlement.ledger.confirm_grace_s, self._deferred_flush)
        if self._connection.state is State.DRAINING:
            self._maybe_drained()

    def _deferred_flush(self) -> None:
        self._flush_later = False
        self._flush()

    def _maybe_drained(self) -> None:
        if self._connection.cancels_pending == 0 and not self._settlement.in_hand and not self._republisher.pending:
            self._drained.set()
