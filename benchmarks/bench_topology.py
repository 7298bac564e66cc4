"""Topology benchmark: apply generated specs to an empty vhost, plan them again with no
changes, and compare with petisco 2.2.3's `RabbitMqMessageConfigurer.configure_subscribers`.

In one run, each in a vhost of its own (deleted afterwards):

1. rabbitform apply of 300 subscribers to an empty vhost (plan, apply, plan again to verify)
2. petisco 2.2.3 `configure_subscribers` of the same 300 subscribers (with its store queues)
   (1 and 2 alternate `--repeat` times; the best run of each counts)
3. rabbitform no-change plan of those 300 subscribers
4. rabbitform apply, then no-change plan, of 3,000 subscribers (about 21,000 objects)

Targets (issue 3): apply at least 2.5x faster than petisco; no-change plan of 3,000
subscribers under 3 s. Run: `python -m benchmarks topology` (or `make bench`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.generated import EVENTS_PER_SERVICE, SUBSCRIBERS_PER_EVENT, event_class, generated_spec
from benchmarks.scratch import scratch_vhost
from topology.apply.live import converge, plan_live
from topology.broker.management import ManagementClient

HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("RABBITMQ_PORT", "5672"))
MANAGEMENT = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
ORG = "bench"


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ours(client: ManagementClient, subscribers: int, plans: int = 3) -> tuple[float, float]:
    """(seconds to apply to an empty vhost, median seconds of a no-change plan)."""
    with scratch_vhost(client, f"topology-{subscribers}") as vhost:
        spec = generated_spec(subscribers, vhost, ORG)
        apply_s = timed(lambda: converge(spec, client))
        plan_times = []
        for _ in range(plans):
            started = time.perf_counter()
            plan = plan_live(spec, client)
            plan_times.append(time.perf_counter() - started)
            assert not plan.has_changes, "the benchmark spec did not converge"
        return apply_s, statistics.median(plan_times)


def petisco_configure(client: ManagementClient, subscribers: int) -> float:
    """Seconds petisco 2.2.3 takes to configure the same subscribers (one service, with store)."""
    from loguru import logger

    logger.remove()
    from petisco import DomainEvent, MessageSubscriber
    from petisco.extra.rabbitmq import RabbitMqMessageConfigurer

    with scratch_vhost(client, "petisco-topology", create=True) as vhost:
        connector = _petisco_connector(client, vhost)
        events = [
            type(event_class(n), (DomainEvent,), {"__module__": __name__})
            for n in range(-(-subscribers // SUBSCRIBERS_PER_EVENT))
        ]
        assert len(events) <= EVENTS_PER_SERVICE, "petisco is measured on one service"
        classes = []
        for n in range(subscribers):
            event = events[n // SUBSCRIBERS_PER_EVENT]
            namespace = {
                "__module__": __name__,
                "subscribed_to": lambda self, event=event: [event],
                "handle": lambda self, message: None,
            }
            classes.append(type(f"Handler{n % SUBSCRIBERS_PER_EVENT}", (MessageSubscriber,), namespace))
        configurer = RabbitMqMessageConfigurer(ORG, "service0", connector)
        try:
            return timed(lambda: configurer.configure_subscribers(classes))
        finally:
            connector.close_all()


def _petisco_connector(client: ManagementClient, vhost: str) -> Any:
    """petisco's connector reads RABBITMQ_HOST/PORT/USER/PASSWORD and always uses vhost "/":
    a subclass connects to the benchmark's own vhost instead."""
    from petisco.extra.rabbitmq.shared.rabbitmq_connector import RabbitMqConnector
    from pika import BlockingConnection, ConnectionParameters, PlainCredentials

    os.environ.setdefault("RABBITMQ_HOST", HOST)
    os.environ.setdefault("RABBITMQ_PORT", str(PORT))

    class VhostConnector(RabbitMqConnector):
        def _create_blocking_connection(self, connection_name: str) -> BlockingConnection:
            return BlockingConnection(
                ConnectionParameters(
                    host=self.host,
                    port=int(self.port),
                    virtual_host=vhost,
                    heartbeat=self.heartbeat,
                    credentials=PlainCredentials(client.user, client._password),
                    client_properties={"connection_name": connection_name},
                )
            )

    return VhostConnector()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks topology", description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300, help="subscribers compared with petisco (default 300)")
    parser.add_argument("--large", type=int, default=3000, help="subscribers of the large spec (default 3000)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the small comparison; the best counts")
    args = parser.parse_args(argv)
    client = ManagementClient.from_env(MANAGEMENT)
    print(f"topology benchmark against {client.display_url}: {args.small} and {args.large} subscribers", flush=True)

    # Interleaved and repeated: other work on the machine slows whichever runs alongside it.
    small_runs, petisco_runs = [], []
    for _ in range(args.repeat):
        small_runs.append(ours(client, args.small))
        petisco_runs.append(petisco_configure(client, args.small))
    small_apply = min(apply_s for apply_s, _ in small_runs)
    small_plan = min(plan_s for _, plan_s in small_runs)
    petisco_s = min(petisco_runs)
    runs = ", ".join(f"{a:.2f}" for a, _ in small_runs)
    print(f"  rabbitform apply {args.small} subscribers to an empty vhost    {small_apply:8.2f} s  (runs: {runs})")
    runs = ", ".join(f"{p:.2f}" for p in petisco_runs)
    print(f"  petisco 2.2.3 configure_subscribers, {args.small} subscribers   {petisco_s:8.2f} s  (runs: {runs})")
    print(f"  rabbitform no-change plan, {args.small} subscribers             {small_plan:8.2f} s", flush=True)
    large_apply, large_plan = ours(client, args.large)
    print(f"  rabbitform apply {args.large} subscribers to an empty vhost   {large_apply:8.2f} s", flush=True)
    print(f"  rabbitform no-change plan, {args.large} subscribers            {large_plan:8.2f} s", flush=True)

    ratio = petisco_s / small_apply
    checks = [
        (f"apply {args.small} subscribers vs petisco", f"{ratio:.2f}x faster", ratio >= 2.5, ">= 2.5x"),
        (f"no-change plan of {args.large} subscribers", f"{large_plan:.2f} s", large_plan < 3.0, "< 3 s"),
    ]
    print("results:")
    for label, value, met, target in checks:
        print(f"  {label:<40} {value:>14}  (target {target}: {'met' if met else 'MISSED'})")
    client.close()
    return 0 if all(met for *_, met, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
