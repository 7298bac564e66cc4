"""The consumer's circuit breakers: one per subscription that has one, on the wall clock.

The pure machine is `bus_runtime.breaker`; this shell acts on its moves. Open: stop consuming
the subscriber's queue (`ConsumerConnection.pause`) and send back what the consumer holds of
it, unhandled (a requeue, not an attempt: the retry count is untouched). After the pause:
half-open, take one message (`basic.get`) and let it through. Closed: consume again. Other
subscribers of the consumer never notice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from pika.channel import Channel

from bus_runtime.breaker import CircuitBreaker, State, counts_as_success
from bus_runtime.consumer_connection import ConsumerConnection
from bus_runtime.iothread import IoThread
from bus_runtime.retry import Decision
from bus_runtime.subscriber import Subscription
from bus_runtime.telemetry import hooks
from topology import naming

log = logging.getLogger("bus_runtime.consumer")

EMPTY_PROBE_INTERVAL = 1.0  # seconds between probes of a half-open subscriber whose queue is empty


class BreakerGate:
    def __init__(
        self,
        io: IoThread,
        connection: ConsumerConnection,
        subscriptions: Iterable[Subscription],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.io = io
        self.connection = connection
        self.clock = clock
        self._lock = threading.Lock()  # `admits` runs on handler threads
        self._breakers = {
            sub.queue: (sub, CircuitBreaker(sub.circuit_breaker))
            for sub in subscriptions
            if sub.circuit_breaker is not None
        }

    def admits(self, sub: Subscription) -> bool:
        """Whether a delivery of `sub` may run now (any thread); if not, send it back unhandled."""
        entry = self._breakers.get(sub.queue)
        if entry is None:
            return True
        with self._lock:
            return entry[1].admits()

    def state(self, queue: str) -> State | None:
        entry = self._breakers.get(queue)
        return None if entry is None else entry[1].state

    def record(self, sub: Subscription, decision: Decision) -> None:
        """A handled delivery's outcome (any thread: the handler's, so that the next delivery
        it picks up already sees an open breaker); the move is carried out on the I/O thread."""
        entry = self._breakers.get(sub.queue)
        if entry is None:
            return
        with self._lock:
            moved = entry[1].record(counts_as_success(decision), self.clock())
        if moved is not None:
            self.io.call(self._moved, sub, entry[1], moved)

    def _moved(self, sub: Subscription, breaker: CircuitBreaker, to: State) -> None:
        hooks.breaker_moved(sub.handler_name, to)
        if to == "open":
            log.warning(
                "%s: circuit breaker open; its deliveries wait in %s for %gs",
                sub.handler_name,
                sub.queue,
                breaker.settings.pause_s,
            )
            self.connection.pause(sub.queue)
            self._mark(sub.queue, paused=True)
            self.io.ioloop.call_later(breaker.settings.pause_s, lambda: self._pause_over(sub, breaker))
        elif to == "half_open":
            log.info("%s: circuit breaker half-open; one delivery goes through", sub.handler_name)
            self._probe(sub, breaker)
        else:
            log.info("%s: circuit breaker closed; consuming %s again", sub.handler_name, sub.queue)
            self.connection.resume(sub.queue)
            self._mark(sub.queue, paused=False)

    def reconnected(self) -> None:
        """A new connection consumes: the paused markers were exclusive to the old one and died
        with it, so declare them again for every queue still paused (open or half-open)."""
        for queue in sorted(self.connection.paused):
            self._mark(queue, paused=True)

    def _pause_over(self, sub: Subscription, breaker: CircuitBreaker) -> None:
        with self._lock:
            moved = breaker.pause_over(self.clock())
        if moved is not None:
            self._moved(sub, breaker, moved)

    def _probe(self, sub: Subscription, breaker: CircuitBreaker) -> None:
        def empty() -> None:  # nothing to try it with: look again shortly
            if breaker.state == "half_open" and not breaker.probing:
                interval = min(EMPTY_PROBE_INTERVAL, breaker.settings.pause_s)
                self.io.ioloop.call_later(interval, lambda: self._probe(sub, breaker))

        if breaker.state == "half_open" and not breaker.probing:
            self.connection.probe(sub.queue, empty)

    def _mark(self, queue: str, paused: bool) -> None:
        """Show the pause on the broker, for `rabbitform status`: an exclusive, empty queue named
        `naming.paused_marker(queue)` that lives while paused (and dies with the connection).
        On a channel of its own: a refusal (no configure permission) closes only that channel,
        and costs only the marker."""
        connection = self.connection.connection
        if connection is None or not connection.is_open:
            return
        marker = naming.paused_marker(queue)

        def on_channel(channel: Channel) -> None:
            channel.add_on_close_callback(lambda _ch, reason: self._marker_closed(marker, reason))
            if paused:
                channel.queue_declare(
                    marker, durable=False, exclusive=True, auto_delete=True, callback=lambda _f: channel.close()
                )
            else:
                channel.queue_delete(marker, callback=lambda _f: channel.close())

        connection.channel(on_open_callback=on_channel)

    @staticmethod
    def _marker_closed(marker: str, reason: BaseException) -> None:
        code = getattr(reason, "reply_code", 200)
        if code not in (0, 200):
            log.warning("cannot mark %s on the broker (%s): status will not show the pause", marker, reason)
