"""`RabbitMqEventConsumer`: run handlers on their queues, with retries and dead letters.

The imperative shell around `bus_runtime.dispatch` (parse, run, decide) and
`bus_runtime.retry` (the decision): one I/O thread owns the connection; handlers run on a
bounded worker pool, so a handler slower than the heartbeat does not kill the connection.

Delivery is at-least-once. A retry or dead-letter decision republishes the same body and
properties, with the decision's headers, on a confirm-mode channel and acks the original only
once the broker confirmed the copy. After a lost connection the broker redelivers whatever was
not acked, so a handler may see a message twice: handlers must be idempotent.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import pika
from pika.channel import Channel
from pika.frame import Method

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.dispatch import delivery_of, handle_delivery
from bus_runtime.errors import BrokerUnavailable, BusError, TopologyMissing
from bus_runtime.iothread import IoThread, backoff, describe_error, open_connection
from bus_runtime.retry import Decision, Failure, decide
from bus_runtime.subscriber import EventSubscriber, Handler, Subscription, store_subscription, subscriptions
from topology import naming

log = logging.getLogger("bus_runtime.consumer")

DEFAULT_PREFETCH = 100
DEFAULT_WORKERS = 8
REPUBLISH_FAILURE_DELAY = 1.0  # seconds before a message whose retry copy failed is requeued


@dataclass(frozen=True)
class _Result:
    generation: int
    delivery_tag: int
    decision: Decision
    properties: pika.BasicProperties
    body: bytes
    subscription: Subscription


@dataclass(frozen=True)
class _Republish:
    generation: int
    delivery_tag: int
    routing_key: str
    message_id: str | None


class RabbitMqEventConsumer:
    """Consume the queues of `subscribers` (and the store) on `<organization>.<service>`.

    `max_retries=N` allows at most N+1 handler calls per message; `prefetch` bounds the
    messages in hand (default 100); `workers` is the size of the handler pool.
    """

    def __init__(
        self,
        connector: RabbitMqConnector | None,
        organization: str,
        service: str,
        max_retries: int = 5,
        prefetch: int = DEFAULT_PREFETCH,
        workers: int = DEFAULT_WORKERS,
        start_timeout: float = 30.0,
        layout: naming.Layout = naming.DEFAULT_LAYOUT,
    ) -> None:
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
        self.subscriptions: list[Subscription] = []
        self.handled_count = 0  # deliveries settled (acked after success, retry or dead letter)
        self.retried_count = 0
        self.dead_lettered_count = 0
        self.reconnect_count = 0

        self._io = IoThread(f"rabbitform-consumer-{organization}.{service}")
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._results: deque[_Result] = deque()
        self._wake_pending = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._drained = threading.Event()
        self._closed = threading.Event()
        self._stopping = False
        self._running = False
        # I/O-thread state, reset on every connection
        self._generation = 0
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._publish_channel: Channel | None = None
        self._by_consumer_tag: dict[str, Subscription] = {}
        self._order: deque[int] = deque()  # delivery tags not yet acked, in delivery order
        self._ready: set[int] = set()  # settled, waiting to be acked
        self._acked_out_of_order: set[int] = set()
        self._republishing: dict[int, _Republish] = {}
        self._publish_tag = 1
        self._returned: set[int] = set()
        self._to_check: list[str] = []
        self._missing: list[str] = []
        self._cancels_pending = 0
        self._failed_attempts = 0

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
        **options: Any,
    ) -> RabbitMqEventConsumer:
        """A consumer for the handlers a spec names by import path (see `bus_runtime.spec_runtime`)."""
        from bus_runtime.spec_runtime import consumer_from_spec

        return consumer_from_spec(cls, path, service, subscribers, connector, **options)

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
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="rabbitform-handler")
        self._io.start()
        self._io.call(self._connect)
        if not self._started.wait(self.start_timeout):
            self._start_error = self._start_error or BrokerUnavailable(
                f"consumer not ready after {self.start_timeout:g}s ({self.connector.safe_url})"
            )
        if self._start_error is not None:
            error = self._start_error
            self._shutdown(timeout=5.0)
            raise error
        log.info("consuming %d queue(s) on %s", len(self.subscriptions), self.connector.safe_url)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, finish the ones in hand, ack them, close."""
        if not self._running:
            return
        self._stopping = True
        self._io.call(self._cancel_consumers)
        if not self._drained.wait(timeout):
            log.warning("stop: messages still in hand after %gs; the broker will redeliver them", timeout)
        self._shutdown(timeout=10.0)

    def run_forever(self) -> None:
        """Start (if needed) and block until SIGINT or SIGTERM, then stop gracefully."""
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            stop.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            while not stop.wait(0.5):
                if self._closed.is_set():
                    raise BusError("the consumer's connection closed and could not be re-established")
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def is_running(self) -> bool:
        return self._running and not self._closed.is_set()

    def __enter__(self) -> RabbitMqEventConsumer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _shutdown(self, timeout: float) -> None:
        self._stopping = True
        self._io.call(self._close)
        self._closed.wait(timeout)
        self._io.stop()
        if self._executor is not None:
            # after a drain every handler returned; else do not hang on one that never returns
            self._executor.shutdown(wait=self._drained.is_set(), cancel_futures=True)
        self._running = False

    # ------------------------------------------------------------------ I/O thread: connection

    def _connect(self) -> None:
        if self._stopping:
            self._closed.set()
            return
        try:
            self._connection = open_connection(
                self._io, self.connector, "consumer", self._on_open, self._on_open_error, self._on_closed
            )
        except Exception as exc:
            self._on_open_error(None, exc)

    def _on_open_error(self, _connection: Any, error: BaseException | str) -> None:
        self._connection = None
        if not self._started.is_set():
            self._start_error = BrokerUnavailable(
                f"cannot connect to {self.connector.safe_url}: {describe_error(error)}"
            )
            self._started.set()
            return
        self._retry_connect(error)

    def _retry_connect(self, reason: object) -> None:
        if self._stopping:
            self._closed.set()
            self._drained.set()
            return
        self._failed_attempts += 1
        delay = backoff(self._failed_attempts, first=0.2, cap=10.0)
        log.warning("consumer connection lost (%s); reconnecting in %.1fs", reason, delay)
        self._io.ioloop.call_later(delay, self._connect)

    def _on_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._reset_channel_state()
        if self._stopping:
            self._drained.set()
            self._closed.set()
            return
        if not self._started.is_set():
            if self._start_error is None:
                self._start_error = BrokerUnavailable(f"connection closed during start: {describe_error(reason)}")
            self._started.set()
            return
        self._retry_connect(reason)

    def _reset_channel_state(self) -> None:
        """Delivery tags belong to their channel: forget them all (the broker redelivers)."""
        self._generation += 1
        self._channel = None
        self._publish_channel = None
        self._by_consumer_tag.clear()
        self._order.clear()
        self._ready.clear()
        self._acked_out_of_order.clear()
        self._republishing.clear()
        self._returned.clear()
        self._cancels_pending = 0

    def _close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is None:
            self._closed.set()
            self._drained.set()

    # ------------------------------------------------------------------ I/O thread: queue check

    def _on_open(self, connection: pika.SelectConnection) -> None:
        self._to_check = [sub.queue for sub in self.subscriptions]
        self._missing = []
        connection.channel(on_open_callback=self._on_check_channel)

    def _on_check_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_check_channel_closed)
        self._check_next(channel)

    def _check_next(self, channel: Channel) -> None:
        if not self._to_check:
            channel.close()
            return
        channel.queue_declare(self._to_check[0], passive=True, callback=lambda _frame: self._checked(channel))

    def _checked(self, channel: Channel) -> None:
        self._to_check.pop(0)
        self._check_next(channel)

    def _on_check_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        connection = self._connection
        if connection is None or not connection.is_open:
            return
        code = getattr(reason, "reply_code", None)
        if self._to_check and code == 404:
            self._missing.append(self._to_check.pop(0))
            connection.channel(on_open_callback=self._on_check_channel)
            return
        if self._to_check:  # refused for another reason (e.g. 403 access refused)
            self._fail_start(BusError(f"cannot check queue {self._to_check[0]!r}: {reason}"))
            return
        if self._missing:
            self._fail_start(TopologyMissing(self.connector.vhost, self._missing))
            return
        connection.channel(on_open_callback=self._on_publish_channel)

    def _fail_start(self, error: BusError) -> None:
        if not self._started.is_set():
            self._start_error = error
            self._started.set()
            self._stopping = True
            if self._connection is not None:
                self._connection.close()
            return
        log.error("%s", error)  # after a reconnect: keep trying, an operator can fix it
        if self._connection is not None:
            self._connection.close()

    # ------------------------------------------------------------------ I/O thread: channels

    def _on_publish_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._publish_tag = 1
        channel.confirm_delivery(
            ack_nack_callback=self._on_republish_confirm,
            callback=lambda _frame: self._publish_channel_ready(channel),
        )

    def _publish_channel_ready(self, channel: Channel) -> None:
        self._publish_channel = channel
        connection = self._connection
        if connection is not None:
            connection.channel(on_open_callback=self._on_consume_channel)

    def _on_consume_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _frame: self._start_consuming(channel))

    def _start_consuming(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        for sub in self.subscriptions:
            tag = channel.basic_consume(sub.queue, self._on_message, auto_ack=False)
            self._by_consumer_tag[tag] = sub
        self._failed_attempts = 0
        if self._started.is_set():
            self.reconnect_count += 1
            log.info("consumer reconnected; consuming %d queue(s) again", len(self.subscriptions))
        self._started.set()

    def _on_cancelled_by_broker(self, frame: Method) -> None:
        """The broker cancelled a consumer (its queue was deleted): reconnect, which checks
        the queues again and keeps retrying, loudly, until the topology is back."""
        sub = self._by_consumer_tag.get(frame.method.consumer_tag)
        log.error("the broker cancelled consuming %s (queue deleted?)", sub.queue if sub else "a queue")
        connection = self._connection
        if not self._stopping and connection is not None and connection.is_open:
            connection.close()

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        """A channel closed by the broker takes its delivery tags with it: start over on a
        fresh connection (the broker redelivers what was not acked)."""
        if self._stopping:
            return
        connection = self._connection
        if connection is not None and connection.is_open and channel in (self._channel, self._publish_channel):
            log.warning("consumer channel closed (%s); reopening the connection", reason)
            connection.close()

    # ------------------------------------------------------------------ I/O thread: deliveries

    def _on_message(
        self, channel: Channel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        sub = self._by_consumer_tag[method.consumer_tag]
        tag = method.delivery_tag
        self._order.append(tag)
        assert self._executor is not None
        with contextlib.suppress(RuntimeError):  # the pool is shutting down: the broker redelivers
            self._executor.submit(self._work, self._generation, sub, tag, method.routing_key, properties, body)

    def _work(
        self,
        generation: int,
        sub: Subscription,
        tag: int,
        routing_key: str,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """On a worker thread: run the handler, then hand the decision to the I/O thread."""
        try:
            decision, _message = handle_delivery(sub, body, routing_key, properties.headers)
        except BaseException as exc:  # a bug outside the handler, or SystemExit in it: retry
            log.exception("cannot handle a delivery on %s", sub.queue)
            delivery = delivery_of(sub, routing_key, properties.headers)
            failure = Failure(type(exc).__name__, str(exc))
            decision = decide(delivery, failure, sub.max_retries, datetime.now(timezone.utc))
        self._results.append(_Result(generation, tag, decision, properties, body, sub))
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        with contextlib.suppress(Exception):  # the loop is closed: stopped, the broker redelivers
            self._io.call(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        results, generation = self._results, self._generation
        while results:
            result = results.popleft()
            if result.generation != generation:
                continue  # its channel is gone; the broker redelivers the message
            decision = result.decision
            if decision.action == "ack":
                self._ready.add(result.delivery_tag)
            else:
                self._republish(result)
        self._flush_acks()

    def _republish(self, result: _Result) -> None:
        decision, sub = result.decision, result.subscription
        channel = self._publish_channel
        if channel is None:
            return
        properties = copy.copy(result.properties)
        properties.headers = dict(decision.headers)
        properties.delivery_mode = 2
        self._republishing[self._publish_tag] = _Republish(
            result.generation, result.delivery_tag, decision.routing_key, properties.message_id
        )
        self._publish_tag += 1
        channel.basic_publish(decision.exchange, decision.routing_key, result.body, properties, mandatory=True)
        headers = decision.headers
        if decision.action == "retry":
            self.retried_count += 1
            log.warning(
                "%s failed (%s: %s); retry %s of %d via %s",
                sub.handler_name,
                headers.get("rabbitform-error-type"),
                headers.get("rabbitform-error-message"),
                headers.get("rabbitform-retry-count"),
                sub.max_retries,
                decision.routing_key,
            )
        else:
            self.dead_lettered_count += 1
            log.error(
                "%s: message %s dead-lettered to %s (%s: %s: %s)",
                sub.handler_name,
                properties.message_id,
                decision.routing_key,
                headers.get("rabbitform-dead-letter-reason"),
                headers.get("rabbitform-error-type"),
                headers.get("rabbitform-error-message"),
            )

    def _on_return(
        self, _channel: Channel, method: pika.spec.Basic.Return, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        """A retry or dead-letter copy found no queue: keep the original (it is requeued)."""
        for publish_tag, pending in self._republishing.items():
            if (
                publish_tag not in self._returned
                and pending.routing_key == method.routing_key
                and pending.message_id == properties.message_id
            ):
                self._returned.add(publish_tag)
                break
        log.error(
            "retry/dead-letter copy unroutable: exchange %r routing key %r has no bound queue; "
            "the original is requeued (check the topology with `rabbitform plan`)",
            method.exchange,
            method.routing_key,
        )

    def _on_republish_confirm(self, frame: Method) -> None:
        method = frame.method
        nack = isinstance(method, pika.spec.Basic.Nack)
        tags = [t for t in self._republishing if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for publish_tag in tags:
            pending = self._republishing.pop(publish_tag, None)
            if pending is None or pending.generation != self._generation:
                continue
            if nack or publish_tag in self._returned:
                self._returned.discard(publish_tag)
                self._io.ioloop.call_later(
                    REPUBLISH_FAILURE_DELAY, lambda p=pending: self._requeue(p.generation, p.delivery_tag)
                )
            else:
                self._ready.add(pending.delivery_tag)
        self._flush_acks()

    def _requeue(self, generation: int, delivery_tag: int) -> None:
        channel = self._channel
        if generation != self._generation or channel is None:
            return
        channel.basic_nack(delivery_tag, multiple=False, requeue=True)
        self._acked_out_of_order.add(delivery_tag)
        self._flush_acks()

    def _flush_acks(self) -> None:
        """Ack the settled prefix with one `multiple` ack; ack stragglers one by one when many
        wait behind a slow message, so one long handler does not stall the prefetch window."""
        channel = self._channel
        if channel is None:
            return
        order, ready, done = self._order, self._ready, self._acked_out_of_order
        last = None
        count = 0
        while order:
            head = order[0]
            if head in ready:
                ready.discard(head)
                last = head
                count += 1
            elif head in done:
                done.discard(head)
            else:
                break
            order.popleft()
        if last is not None:
            channel.basic_ack(last, multiple=count > 1)
            self.handled_count += count
        if len(ready) >= max(1, self.prefetch // 2):
            for tag in sorted(ready):
                channel.basic_ack(tag)
                done.add(tag)
            self.handled_count += len(ready)
            ready.clear()
        if self._stopping:
            self._maybe_drained()

    # ------------------------------------------------------------------ I/O thread: stop

    def _cancel_consumers(self) -> None:
        channel = self._channel
        if channel is None or not channel.is_open:
            self._drained.set()
            return
        self._cancels_pending = len(self._by_consumer_tag)
        for consumer_tag in list(self._by_consumer_tag):
            channel.basic_cancel(consumer_tag, callback=self._on_cancelled)
        if self._cancels_pending == 0:
            self._maybe_drained()

    def _on_cancelled(self, _frame: Method) -> None:
        self._cancels_pending -= 1
        self._maybe_drained()

    def _maybe_drained(self) -> None:
        if self._cancels_pending == 0 and not self._order and not self._republishing:
            self._drained.set()
