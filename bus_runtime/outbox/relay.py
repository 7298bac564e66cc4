"""`OutboxRelay`: publish committed outbox messages with confirms, mark them sent once confirmed.

The shell around `lifecycle.RelayMachine`: each `step()` does the I/O its state names (claim,
publish, mark, wait) and reports the outcome to the machine. Killed at any moment it loses
nothing: a message is marked sent only after its confirm, in the claim's own transaction, so
the next run publishes again (same message id) whatever was not marked. Consumers with an
`Inbox` see such a duplicate without effect.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import BusError, describe_error
from bus_runtime.outbox.database import UrlOrEngine, is_postgresql
from bus_runtime.outbox.lifecycle import RelayMachine, RelayState, sent_prefix
from bus_runtime.outbox.metrics import OutboxMetrics
from bus_runtime.outbox.outbox import Outbox, StoredMessage
from bus_runtime.outbox.sinks import AmqpSink, MemorySink, Outcome, Sink
from bus_runtime.outbox.store import OutboxStore, SqliteRelayLock
from topology.urls import mask_text

if TYPE_CHECKING:
    from bus_runtime.memory.broker import InMemoryBroker

log = logging.getLogger("bus_runtime.outbox.relay")

DEFAULT_BATCH = 500
DEFAULT_RETENTION = 7 * 24 * 3600.0  # seconds sent messages are kept
PURGE_INTERVAL = 300.0
STATS_INTERVAL = 1.0


class ClaimLike(Protocol):
    rows: list[StoredMessage]

    def done(self, ids: Sequence[int], now: float) -> None: ...

    def release(self) -> None: ...


class Store(Protocol):
    """The relay's database side (`store.OutboxStore`; a fake in the lifecycle's unit tests)."""

    def claim(self, limit: int) -> ClaimLike: ...

    def due(self) -> tuple[int, float | None]: ...

    def purge_sent(self, before: float) -> int: ...


class OutboxRelay:
    """Publishes an outbox's due messages to `sink` (RabbitMQ at `connector` by default).

    `batch` bounds a claim; `poll_interval` is the wait when nothing is due; a failure backs
    off from `backoff_initial` doubling to `backoff_max` seconds; sent messages are removed
    `retention` seconds after they were sent.
    """

    def __init__(
        self,
        outbox: Outbox | UrlOrEngine,
        sink: Sink | None = None,
        *,
        connector: RabbitMqConnector | None = None,
        batch: int = DEFAULT_BATCH,
        poll_interval: float = 0.5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        retention: float = DEFAULT_RETENTION,
        metrics: OutboxMetrics | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox)
        self.sink: Sink = sink if sink is not None else AmqpSink(connector or RabbitMqConnector())
        self.store: Store = store if store is not None else OutboxStore(self.outbox.engine)
        self.batch = batch
        self.retention = retention
        self.metrics = metrics
        self.machine = RelayMachine(poll_interval, backoff_initial, backoff_max)
        self.published_count = 0
        self._clock = clock
        self._claim: ClaimLike | None = None
        self._outcome: Outcome | None = None
        self._stop = threading.Event()
        self._last_purge = 0.0
        self._last_stats = 0.0

    @classmethod
    def in_memory(cls, outbox: Outbox, broker: InMemoryBroker, **options: object) -> OutboxRelay:
        """A relay into an `InMemoryBroker`: `relay.run_once()`, then `broker.run_until_idle()`."""
        return cls(outbox, MemorySink(broker), **options)  # type: ignore[arg-type]

    @property
    def state(self) -> RelayState:
        return self.machine.state

    # ------------------------------------------------------------------ driving

    def run_once(self) -> int:
        """Publish everything due now; returns how many were marked sent. Raises `BusError` when
        a step fails (what was confirmed before is marked; the rest stays due)."""
        if self.machine.state in (RelayState.IDLE, RelayState.BACKING_OFF):
            self.machine.waited()
        before = self.published_count
        while True:
            state = self.step(wait=False)
            if state is RelayState.IDLE:
                return self.published_count - before
            if state is RelayState.BACKING_OFF:
                raise BusError(f"outbox relay: {self.machine.last_error}")
            if state is RelayState.STOPPED:
                return self.published_count - before

    def run_forever(self) -> None:
        """Run until `stop()`, SIGINT or SIGTERM. On SQLite, refuses to start next to another relay."""
        lock = SqliteRelayLock(self.outbox.engine) if not is_postgresql(self.outbox.engine) else None
        if lock is not None:
            lock.acquire()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            while self.step() is not RelayState.STOPPED:
                pass
        finally:
            self._release()
            self.sink.close()
            if lock is not None:
                lock.release()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        self._stop.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the relay", signum)
        self.stop()

    # ------------------------------------------------------------------ one step

    def step(self, wait: bool = True) -> RelayState:
        """Do what the current state says; returns the next state."""
        machine = self.machine
        if self._stop.is_set() and machine.state is not RelayState.STOPPED:
            self._release()
            return machine.stop()
        state = machine.state
        if state is RelayState.STARTING:
            return machine.started()
        if state is RelayState.CLAIMING:
            return self._claim_step()
        if state is RelayState.PUBLISHING:
            return self._publish_step()
        if state is RelayState.MARKING:
            return self._mark_step()
        if state in (RelayState.IDLE, RelayState.BACKING_OFF):
            if state is RelayState.IDLE:  # not while the database or the broker is failing
                self._purge()
            self._refresh_stats(force=True)
            if wait:
                self._stop.wait(machine.delay)
                if self._stop.is_set():
                    return self.step()
            return machine.waited()
        return state

    def _claim_step(self) -> RelayState:
        try:
            self._claim = self.store.claim(self.batch)
        except Exception as exc:
            return self._failed(f"database: {_short(exc)}")
        count = len(self._claim.rows)
        if count == 0:
            self._release()  # nothing due: end the claim's transaction now
        return self.machine.claimed(count)

    def _publish_step(self) -> RelayState:
        assert self._claim is not None
        try:
            self._outcome = self.sink.publish(self._claim.rows)
        except Exception as exc:
            self._release()
            return self._failed(f"broker: {_short(exc)}")
        return self.machine.published()

    def _mark_step(self) -> RelayState:
        claim, outcome = self._claim, self._outcome
        assert claim is not None and outcome is not None
        self._claim = self._outcome = None
        sent = sent_prefix(claim.rows, outcome.confirmed)
        try:
            claim.done(sent, self._clock())
        except Exception as exc:  # not marked: published again on the next claim (same ids)
            self._release(claim)
            return self._failed(f"database: {_short(exc)}")
        self.published_count += len(sent)
        if self.metrics is not None:
            self.metrics.sent(len(sent))
        unconfirmed = len(claim.rows) - len(sent)
        if unconfirmed:
            return self._failed(f"broker: {outcome.error or 'not confirmed'} ({unconfirmed} message(s) stay due)")
        if self.machine.failures:
            log.info("outbox relay: publishing again (after %d failed attempt(s))", self.machine.failures)
        self._refresh_stats()
        return self.machine.marked(0)

    def _failed(self, error: str) -> RelayState:
        state = self.machine.failed(error)
        log.warning(
            "outbox relay: %s; retrying in %.1fs (attempt %d)", error, self.machine.delay, self.machine.failures
        )
        return state

    def _release(self, claim: ClaimLike | None = None) -> None:
        claim = claim or self._claim
        self._claim = self._outcome = None
        if claim is not None:
            try:
                claim.release()
            except Exception as exc:  # the connection is gone: so are its locks
                log.debug("releasing a claim: %s", _short(exc))

    def _purge(self) -> None:
        now = self._clock()
        if now - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = now
            try:
                removed = self.store.purge_sent(now - self.retention)
            except Exception as exc:
                log.warning("outbox relay: removing sent messages failed: %s", _short(exc))
            else:
                if removed:
                    log.info("outbox relay: removed %d message(s) sent over %gs ago", removed, self.retention)

    def _refresh_stats(self, force: bool = False) -> None:
        if self.metrics is None:
            return
        now = self._clock()
        if not force and now - self._last_stats < STATS_INTERVAL:
            return
        self._last_stats = now
        try:
            due, oldest = self.store.due()
        except Exception:
            return  # the next step reports the database's state
        self.metrics.observe(due, 0.0 if oldest is None else max(0.0, now - oldest))


def _short(exc: BaseException) -> str:
    """One line, passwords masked: a driver's error often spans lines and names the URL."""
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip().splitlines()[0] if str(origin).strip() else ""
    return mask_text(text) if text else describe_error(exc)
