"""Scale benchmark: plan and apply generated specs of thousands of subscribers.

Per size (subscribers; 7 broker objects each), in one run, each vhost of its own and deleted
afterwards:

1. floor: the broker's own bulk import of the same definitions (`POST /api/definitions/{vh}`
   into a fresh vhost, in the same documents apply sends (`CHUNK_SIZE` objects): one document of
   10,000 subscribers is 18 MB, which the broker refuses with HTTP 400)
2. apply: what `rabbitform apply SPEC` does (read, plan, record ownership, apply, plan again
   to verify) into a vhost that does not exist
3. one raw `GET /api/definitions/{vh}` (bytes received, not decoded)
4. the snapshot alone, by each read path (listings, definitions): they must be equal
5. no-change plan: `plan_live` in this process (the time compared with the raw read), and
   `rabbitform plan SPEC --detailed-exitcode` in a child process (must exit 0): its wall
   time, Python's start included, and its peak RSS
6. removal: the spec without its first service, which holds 3,000 subscribers (a third of a
   smaller size; the other services hold 300 each), applied as `rabbitform apply` does: the
   ownership record puts the dropped service in scope, so its exchanges, queues and bindings
   are deleted

Targets (issue 9, at 10,000 subscribers): no-change plan <= 0.5x one raw definitions read;
apply <= 1.2x the floor; no-change plan of 20,000 subscribers under 1 GB peak RSS.
Sizes: `--sizes 300,3000,10000` (the default), or `$RABBITFORM_BENCH_SIZES`; add 20000 when
asked. Run: `python -m benchmarks scale` (or `make bench`). Needs the broker on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from benchmarks.generated import generated_spec, generated_spec_data
from benchmarks.scratch import scratch_vhost
from topology.apply.executor import CHUNK_SIZE, chunks
from topology.apply.live import plan_live
from topology.broker.management import BrokerTimeout, ManagementClient
from topology.broker.snapshot import Snapshot, read_snapshot
from topology.compile.compiler import compile_spec
from topology.compile.definitions import to_definitions
from topology.spec.model import Spec
from topology.state.lifecycle import apply_owned
from topology.state.store import delete_record

MANAGEMENT = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
SIZES_ENV = "RABBITFORM_BENCH_SIZES"
DEFAULT_SIZES = (300, 3000, 10000)
REMOVED = 3000
ORG = "bench"


@dataclass
class Row:
    subscribers: int
    objects: int = 0
    floor: float = 0.0
    apply: float = 0.0
    raw_definitions: float = 0.0
    snapshot_listings: float = 0.0
    snapshot_definitions: float = 0.0
    plan: float = 0.0
    cli_plan: float = 0.0
    plan_rss_mb: float = 0.0
    removed: int = 0
    removal: float = 0.0
    delete_vhost: float = 0.0

    @property
    def apply_ratio(self) -> float:
        return self.apply / self.floor

    @property
    def removal_label(self) -> str:
        return f"a service of {self.removed:,} subscribers"

    @property
    def plan_ratio(self) -> float:
        return self.plan / self.raw_definitions


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def say(text: str) -> None:
    print(text, flush=True)


def apply_as_cli(spec: Spec, client: ManagementClient, allow_data_loss: bool = False) -> Any:
    """What `rabbitform apply SPEC --auto-approve` does once it holds the lock."""
    return apply_owned(spec, client, plan_live(spec, client, allow_data_loss=allow_data_loss))


def first_service(subscribers: int) -> int:
    """Subscribers of the service the benchmark removes: 3,000, or a third of a smaller size."""
    return min(REMOVED, subscribers // 3) // 3 * 3


def floor(client: ManagementClient, definitions: dict[str, Any], label: str) -> tuple[float, float]:
    """(seconds the broker takes to import `definitions` into a fresh vhost, seconds to delete it)."""
    with scratch_vhost(client, label, create=True) as vhost:
        documents = list(chunks(definitions, CHUNK_SIZE))
        started = time.perf_counter()
        for document in documents:
            client.post("definitions", vhost, body=document)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
    return seconds, time.perf_counter() - started


def raw_definitions_read(client: ManagementClient, vhost: str) -> float:
    """One `GET /api/definitions/{vh}`, the bytes received, no JSON decoding; NaN when the
    broker cut it (its HTTP idle timeout closes a request that sent nothing for 60 s)."""
    session = requests.Session()
    session.auth = (client.user, client._password)
    try:
        seconds, response = timed(lambda: session.get(MANAGEMENT.rstrip("/") + client.path("definitions", vhost)))
        response.raise_for_status()
        return seconds
    except requests.ConnectionError:
        return math.nan
    finally:
        session.close()


def definitions_snapshot(client: ManagementClient, vhost: str) -> tuple[float, Snapshot | None]:
    """The snapshot by the definitions path; (NaN, None) when the broker cut the export."""
    try:
        return timed(lambda: read_snapshot(client, vhost, path="definitions"))
    except BrokerTimeout:
        return math.nan, None


def cli_plan(spec_path: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of `rabbitform plan SPEC --detailed-exitcode`."""
    command = [sys.executable, "-c", "from topology.cli.main import main; raise SystemExit(main())"]
    command += ["plan", str(spec_path), "--detailed-exitcode", "--management-url", MANAGEMENT]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, child.returncode


def measure(client: ManagementClient, subscribers: int, workdir: Path) -> Row:
    row = Row(subscribers)
    with scratch_vhost(client, f"scale-{subscribers}") as vhost:
        try:
            big = first_service(subscribers)
            spec = generated_spec(subscribers, vhost, ORG, first_service=big)
            desired = compile_spec(spec)
            row.objects = desired.object_count
            row.floor, floor_delete = floor(
                client, to_definitions(desired, include_vhost=False), f"floor-{subscribers}"
            )
            say(
                f"  {subscribers}: floor (bulk import) {row.floor:.1f} s; deleting that vhost took {floor_delete:.1f} s"
            )
            row.apply, _ = timed(lambda: apply_as_cli(spec, client))
            say(f"  {subscribers}: apply {row.apply:.1f} s ({row.apply_ratio:.2f}x the floor)")
            row.raw_definitions = raw_definitions_read(client, vhost)
            row.snapshot_listings, listed = timed(lambda: read_snapshot(client, vhost, path="listings"))
            row.snapshot_definitions, exported = definitions_snapshot(client, vhost)
            if exported is not None and listed != exported:
                raise AssertionError("the two read paths gave different snapshots")
            spec_path = workdir / f"scale-{subscribers}.yaml"
            spec_path.write_text(yaml.safe_dump(generated_spec_data(subscribers, vhost, ORG, big)), encoding="utf-8")
            row.plan, plan = timed(lambda: plan_live(spec, client))
            if plan.has_changes:
                raise AssertionError("the spec did not converge")
            row.cli_plan, row.plan_rss_mb, code = cli_plan(spec_path)
            if code != 0:
                raise AssertionError(f"the no-change plan exited {code}, not 0")
            say(
                f"  {subscribers}: raw definitions read {secs(row.raw_definitions)}; snapshot {row.snapshot_listings:.2f} s "
                f"(listings), {secs(row.snapshot_definitions)} (definitions); no-change plan {row.plan:.2f} s "
                f"({ratio(row.plan_ratio)}); CLI {row.cli_plan:.2f} s, peak RSS {row.plan_rss_mb:.0f} MB"
            )
            smaller = generated_spec(subscribers, vhost, ORG, first_service=big, without_first=True)
            row.removed = big
            row.removal, result = timed(lambda: apply_as_cli(smaller, client, allow_data_loss=True))
            say(f"  {subscribers}: removing {row.removal_label} ({result.destroyed} objects) {row.removal:.1f} s")
        finally:  # the ownership record is a global parameter: it outlives the vhost
            delete_record(client, vhost, ORG)
            started = time.perf_counter()
    row.delete_vhost = time.perf_counter() - started
    return row


def sizes(argv_sizes: str | None) -> list[int]:
    text = argv_sizes or os.environ.get(SIZES_ENV) or ",".join(str(s) for s in DEFAULT_SIZES)
    return [int(part) for part in text.split(",") if part.strip()]


def secs(value: float) -> str:
    """Seconds, or what happened to a read the broker never answered."""
    return "cut by the broker at 60 s" if math.isnan(value) else f"{value:.2f} s"


def ratio(value: float) -> str:
    return "no baseline" if math.isnan(value) else f"{value:.2f}x"


def table(rows: Sequence[Row]) -> str:
    head = (
        "| subscribers | objects | floor (bulk import) | apply | apply / floor | raw definitions read | "
        "snapshot (listings) | snapshot (definitions) | no-change plan | plan / raw read | CLI plan (exit 0) | "
        "CLI peak RSS | removal |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = [
        f"| {r.subscribers:,} | {r.objects:,} | {r.floor:.1f} s | {r.apply:.1f} s | {r.apply_ratio:.2f}x | "
        f"{secs(r.raw_definitions)} | {r.snapshot_listings:.2f} s | {secs(r.snapshot_definitions)} | {r.plan:.2f} s | "
        f"{ratio(r.plan_ratio)} | {r.cli_plan:.2f} s | {r.plan_rss_mb:.0f} MB | {r.removal_label} in {r.removal:.1f} s |"
        for r in rows
    ]
    return head + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help=f"comma-separated subscriber counts (default ${SIZES_ENV} or 300,3000,10000)")
    args, _ = parser.parse_known_args(argv)
    client = ManagementClient.from_env(MANAGEMENT)
    chosen = sizes(args.sizes)
    say(f"scale benchmark against {client.display_url}: {', '.join(f'{s:,}' for s in chosen)} subscribers")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for subscribers in chosen:
            rows.append(measure(client, subscribers, Path(workdir)))
    say(table(rows))
    client.close()
    checks = []
    for row in rows:
        if row.subscribers == 10000:
            checks.append(("no-change plan / raw definitions read at 10,000", row.plan_ratio, 0.5))
            checks.append(("apply / floor at 10,000", row.apply_ratio, 1.2))
        if row.subscribers >= 20000:
            checks.append((f"plan peak RSS (MB) at {row.subscribers:,}", row.plan_rss_mb, 1024))
    say("results:")
    for label, value, limit in checks:
        say(f"  {label:<50} {value:8.2f}  (target <= {limit:g}: {'met' if value <= limit else 'MISSED'})")
    return 0 if all(value <= limit for _, value, limit in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
