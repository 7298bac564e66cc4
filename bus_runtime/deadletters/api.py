"""`DeadLetterQueues`: the dead-letter operations of one spec, on one broker."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime, timezone
from os import PathLike
from typing import TYPE_CHECKING, Any

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.deadletters import ops
from bus_runtime.deadletters.model import DeadLetter, Selection, Summary
from bus_runtime.deadletters.targets import Target, resolve, targets_of
from topology.spec.model import Spec

if TYPE_CHECKING:
    from bus_runtime.deadletters.memory import MemoryBroker


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class DeadLetterQueues:
    """Subscribers are named as in the spec (`send_mail_handler`, `petisco/send_mail_handler`,
    a queue name, or `store`). Filters: `error_types`, `reasons` (`retries_exhausted`,
    `poison_message`), `ids`, `since`/`until` (the last failure time), `limit`."""

    def __init__(self, spec: Spec, transport: ops.Transport, now: Callable[[], datetime] = _utc_now) -> None:
        self.spec = spec
        self.transport = transport
        self._now = now

    @classmethod
    def connect(
        cls, spec: Spec | str | PathLike[str], connector: RabbitMqConnector | None = None, vhost: str | None = None
    ) -> DeadLetterQueues:
        """On RabbitMQ: `connector` (default `RABBITMQ_URL`) on the spec's vhost unless `vhost` says otherwise."""
        from bus_runtime.deadletters.amqp import AmqpTransport
        from topology.spec.loader import load_spec

        loaded = spec if isinstance(spec, Spec) else load_spec(spec)
        chosen = vhost or loaded.vhost
        base = connector or RabbitMqConnector()
        return cls(loaded.model_copy(update={"vhost": chosen}), AmqpTransport(base.with_vhost(chosen)))

    @classmethod
    def in_memory(cls, broker: MemoryBroker) -> DeadLetterQueues:
        """On an `InMemoryBroker` built from a spec; replayed-at stamps use its virtual clock."""
        from bus_runtime.deadletters.memory import MemoryTransport

        if broker.spec is None:
            raise ValueError("the in-memory broker was not built from a spec: use InMemoryBroker.from_spec")
        return cls(broker.spec, MemoryTransport(broker), now=broker.now)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> DeadLetterQueues:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ operations

    def targets(self) -> builtins.list[Target]:
        return targets_of(self.spec)

    def target(self, subscriber: str, service: str | None = None) -> Target:
        return resolve(self.spec, subscriber, service)

    def list(self) -> builtins.list[Summary]:
        """Every subscriber's dead-letter queue: count, oldest and newest, by error type and reason."""
        return [ops.summary(self.transport, target) for target in self.targets()]

    def show(self, subscriber: str, **filters: Any) -> builtins.list[DeadLetter]:
        """The matching dead letters, in queue order; the queue keeps all of them, in order."""
        return ops.scan(self.transport, self.target(subscriber), Selection.of(**filters))

    def replay(
        self,
        subscriber: str,
        *,
        dry_run: bool = False,
        rate: float | None = None,
        on_progress: Callable[[int], None] | None = None,
        **filters: Any,
    ) -> ops.Outcome:
        """Move the matching dead letters back to the subscriber's queue alone, with a fresh retry budget."""
        return ops.replay(
            self.transport,
            self.target(subscriber),
            Selection.of(**filters),
            self._now,
            dry_run=dry_run,
            rate=rate,
            on_progress=on_progress,
        )

    def purge(
        self,
        subscriber: str,
        *,
        dry_run: bool = False,
        on_progress: Callable[[int], None] | None = None,
        **filters: Any,
    ) -> ops.Outcome:
        """Delete the matching dead letters."""
        return ops.purge(
            self.transport, self.target(subscriber), Selection.of(**filters), dry_run=dry_run, on_progress=on_progress
        )
