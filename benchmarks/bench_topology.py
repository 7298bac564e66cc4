"""Topology benchmark: apply generated specs to an empty vhost through the CLI, plan them again
with no changes, and compare with the broker's own bulk import and with petisco 2.2.3's
`RabbitMqMessageConfigurer.configure_subscribers`.

In one run, each in a vhost of its own (deleted afterwards):

1. `rabbitform apply SPEC --auto-approve` of 300 subscribers (2,110 objects) into an empty vhost,
   in a child process: wall time, Python's start-up included (read the spec, take the lock, read
   the vhost, plan, record ownership, apply, re-read to verify, record again, release), with its
   modules' bytecode cached as an installed rabbitform has it (even when the benchmark runs
   under PYTHONDONTWRITEBYTECODE, which would compile every module again at each start)
2. the floor: the broker's bulk import of the same definitions (`POST /api/definitions/{vh}`,
   one document) into an empty vhost
   (both vhosts are created beforehand, the creation not timed)
3. petisco 2.2.3 `configure_subscribers` of the same 300 subscribers (with its store queues)
   (1, 2 and 3 take turns `--repeat` times; the best run of each counts, and each round's
   ratios are printed)
4. rabbitform no-change plan of those 300 subscribers (in this process)
5. rabbitform apply, then no-change plan, of 3,000 subscribers (about 21,000 objects; `--large 0`
   skips it)

Targets (issue 19): through the CLI, apply at most 1.3x the bulk import and at least 2.5x faster
than petisco; (issue 3) no-change plan of 3,000 subscribers under 3 s.
Run: `python -m benchmarks topology` (or `make bench`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmarks.generated import (
    EVENTS_PER_SERVICE,
    SUBSCRIBERS_PER_EVENT,
    event_class,
    generated_spec,
    generated_spec_data,
)
from benchmarks.installed import RABBITFORM, installed_environment
from benchmarks.scratch import scratch_vhost
from topology.apply.live import converge, plan_live
from topology.broker.management import ManagementClient
from topology.compile.compiler import compile_spec
from topology.compile.definitions import to_definitions
from topology.state.store import forget_records

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


def cli_apply(client: ManagementClient, subscribers: int, bytecode: str) -> float:
    """Wall seconds of `rabbitform apply SPEC --auto-approve` into an empty vhost (created first,
    as the floor's is: creating a vhost is the broker's work, not the apply's)."""
    with scratch_vhost(client, f"cli-{subscribers}", create=True) as vhost, tempfile.TemporaryDirectory() as directory:
        spec = Path(directory) / "bench.yaml"
        spec.write_text(yaml.safe_dump(generated_spec_data(subscribers, vhost, ORG)))
        command = [RABBITFORM, "apply", str(spec), "--auto-approve", "--management-url", client.display_url]
        environment = {
            **installed_environment(bytecode),
            "RABBITMQ_USER": client.user,
            "RABBITMQ_PASSWORD": client.password,
        }
        try:
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
            seconds = time.perf_counter() - started
        finally:
            forget_records(client, vhost)  # the ownership record outlives the vhost
        if done.returncode != 0 or "Apply complete" not in done.stdout:
            raise SystemExit(f"rabbitform apply failed ({done.returncode}): {done.stderr.strip()}")
        return seconds


def bulk_import(client: ManagementClient, subscribers: int) -> float:
    """Seconds of the broker's own import of the same definitions into a fresh vhost."""
    with scratch_vhost(client, f"bulk-{subscribers}", create=True) as vhost:
        document = to_definitions(compile_spec(generated_spec(subscribers, vhost, ORG)), include_vhost=False)
        started = time.perf_counter()
        client.post("definitions", vhost, body=document)
        return time.perf_counter() - started


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
    parser.add_argument("--large", type=int, default=3000, help="subscribers of the large spec (default 3000; 0 skips)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the small comparison; the best counts")
    args = parser.parse_args(argv)
    client = ManagementClient.from_env(MANAGEMENT)
    print(
        f"topology benchmark against {client.display_url}: {args.small} and {args.large} subscribers "
        "(the CLI runs with its bytecode cached, as installed)",
        flush=True,
    )

    # Taking turns and repeated: other work on the machine slows whichever runs alongside it.
    cli_runs, bulk_runs, petisco_runs, plan_runs = [], [], [], []
    bytecode = tempfile.TemporaryDirectory(prefix="rabbitform-bench-bytecode-")
    for round_ in range(1, args.repeat + 1):
        cli_runs.append(cli_apply(client, args.small, bytecode.name))
        bulk_runs.append(bulk_import(client, args.small))
        petisco_runs.append(petisco_configure(client, args.small))
        plan_runs.append(ours(client, args.small)[1])
        print(
            f"  round {round_}: CLI apply {cli_runs[-1]:.2f} s, bulk import {bulk_runs[-1]:.2f} s, "
            f"petisco {petisco_runs[-1]:.2f} s: {cli_runs[-1] / bulk_runs[-1]:.2f}x the bulk import, "
            f"{petisco_runs[-1] / cli_runs[-1]:.2f}x faster than petisco",
            flush=True,
        )
    bytecode.cleanup()
    cli_s, bulk_s, petisco_s, small_plan = min(cli_runs), min(bulk_runs), min(petisco_runs), min(plan_runs)
    print(f"  rabbitform apply (CLI), {args.small} subscribers, empty vhost {cli_s:8.2f} s  (best of {args.repeat})")
    print(f"  bulk import (POST /api/definitions), the same definitions  {bulk_s:8.2f} s")
    print(f"  petisco 2.2.3 configure_subscribers, {args.small} subscribers   {petisco_s:8.2f} s")
    print(f"  rabbitform no-change plan, {args.small} subscribers             {small_plan:8.2f} s", flush=True)
    ratio, floor_ratio = petisco_s / cli_s, cli_s / bulk_s
    checks = [
        (f"CLI apply {args.small} subscribers vs bulk import", f"{floor_ratio:.2f}x", floor_ratio <= 1.3, "<= 1.3x"),
        (f"CLI apply {args.small} subscribers vs petisco", f"{ratio:.2f}x faster", ratio >= 2.5, ">= 2.5x"),
    ]
    if args.large:
        large_apply, large_plan = ours(client, args.large)
        print(f"  rabbitform apply {args.large} subscribers to an empty vhost   {large_apply:8.2f} s", flush=True)
        print(f"  rabbitform no-change plan, {args.large} subscribers            {large_plan:8.2f} s", flush=True)
        checks.append((f"no-change plan of {args.large} subscribers", f"{large_plan:.2f} s", large_plan < 3.0, "< 3 s"))
    print("results:")
    for label, value, met, target in checks:
        print(f"  {label:<40} {value:>14}  (target {target}: {'met' if met else 'MISSED'})")
    client.close()
    return 0 if all(met for *_, met, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
