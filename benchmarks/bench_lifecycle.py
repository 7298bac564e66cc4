"""Lifecycle benchmark: what ownership records and the lock add to a plan and an apply.

In one run, in a vhost of its own (deleted afterwards, with its record), for a generated spec
of 300 subscribers applied with its ownership recorded:

1. the snapshot `plan` reads (vhost, definitions, ownership records) and, interleaved with it,
   the ownership records read alone: what the records add (medians of `--rounds`);
2. taking and releasing the apply lock (an AMQP connection and an exclusive queue), median.

Run: `python -m benchmarks lifecycle`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.generated import generated_spec
from benchmarks.scratch import scratch_vhost
from topology.apply.live import plan_live
from topology.broker.management import ManagementClient
from topology.broker.snapshot import read_snapshot
from topology.state.lifecycle import apply_owned
from topology.state.lock import BrokerLock
from topology.state.store import delete_record, read_records


def median_s(action: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks lifecycle")
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(list(argv))
    client = ManagementClient.from_env()
    print(f"lifecycle benchmark against {client.display_url}: {args.subscribers} subscribers, {args.rounds} rounds")
    with scratch_vhost(client, "lifecycle", create=True) as vhost:
        spec = generated_spec(args.subscribers, vhost)
        try:
            apply_owned(spec, client, plan_live(spec, client))
            pairs = [
                (
                    median_s(lambda: read_records(client, vhost), 1),
                    median_s(lambda: read_snapshot(client, vhost), 1),
                )
                for _ in range(args.rounds)  # interleaved: load on the machine hits both alike
            ]
            records_s = statistics.median(p[0] for p in pairs)
            snapshot_s = statistics.median(p[1] for p in pairs)
            lock_s = median_s(lambda: BrokerLock(client, vhost, spec.owner, "apply").__enter__().release(), args.rounds)
        finally:
            delete_record(client, vhost, spec.owner)
    objects = args.subscribers * 7
    rows = [
        (f"snapshot, records included ({objects} objects)", snapshot_s),
        ("of which the ownership records read", records_s),
        ("take and release the apply lock", lock_s),
    ]
    for label, seconds in rows:
        print(f"  {label:<48} {seconds * 1000:7.1f} ms")
    print(f"results:\n  records read / whole snapshot  {records_s / snapshot_s:6.1%}")
    return 0
