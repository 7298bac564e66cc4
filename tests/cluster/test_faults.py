"""Faults on the three-node cluster while the runtime publishes and consumes a quorum queue.

Each scenario publishes uniquely numbered events through the runtime (all three nodes in its
URL list), breaks the cluster while messages flow, mends it, and checks that every confirmed
event was handled or dead-lettered: zero lost. Duplicates are allowed (at-least-once) and
reported. Every wait has a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.faults import (
    QUEUE,
    RETRY_QUEUE,
    Ledger,
    Publisher,
    cluster_connector,
    cluster_urls,
    consuming,
    create_topology,
    dead_lettered,
    report,
)
from tests.cluster.support import (
    Cluster,
    ClusterNode,
    close_all_connections,
    kill_node,
    quorum_leader,
    quorum_online,
    start_app,
    start_node,
    stop_app,
    wait_until,
)

pytestmark = pytest.mark.cluster

TOTAL = 800
Fault = Callable[[], Callable[[], None]]  # breaks something, returns how to mend it


def _leader(cluster: Cluster, vhost: str, queue: str) -> ClusterNode:
    wait_until(lambda: len(quorum_online(vhost, queue)) == 3, 30, f"{queue} on all three nodes")
    return cluster.node(wait_until(lambda: quorum_leader(vhost, queue), 30, f"{queue}'s leader"))


def _kill(node: ClusterNode) -> Callable[[], None]:
    kill_node(node.name)
    return lambda: start_node(node.name)


def _stop_app(node: ClusterNode) -> Callable[[], None]:
    stop_app(node.name)
    return lambda: start_app(node.name)


def _close_connections(node: ClusterNode) -> Callable[[], None]:
    close_all_connections(node.name)
    return lambda: None


def _scenario(cluster: Cluster, vhost: str, name: str) -> tuple[ClusterNode, Fault]:
    """Which node the runtime connects to first, and the fault to inject."""
    if name == "kill -9 the consumer's node":
        node = cluster.nodes[1]
        return node, lambda: _kill(node)
    if name == "kill -9 the queue leader":
        leader = _leader(cluster, vhost, QUEUE)
        elsewhere = next(n for n in cluster.nodes if n != leader)
        return elsewhere, lambda: _kill(leader)
    if name == "stop_app / start_app":
        node = cluster.nodes[2]
        return node, lambda: _stop_app(node)
    node = cluster.nodes[0]
    return node, lambda: _close_connections(node)


@pytest.mark.parametrize(
    "name",
    ["kill -9 the consumer's node", "kill -9 the queue leader", "stop_app / start_app", "close_all_connections"],
)
def test_no_confirmed_message_is_lost(cluster: Cluster, cluster_vhost: str, name: str) -> None:
    create_topology(cluster, cluster_vhost)
    first, fault = _scenario(cluster, cluster_vhost, name)
    ledger = Ledger()
    with consuming(cluster_connector(cluster, cluster_vhost, first, "consumer"), ledger) as consumer:
        publisher = Publisher(cluster_connector(cluster, cluster_vhost, first, "publisher"), "m", TOTAL).start()
        wait_until(lambda: len(ledger.handled()) >= TOTAL // 5, 60, "a fifth of the events handled")
        fault_at = time.monotonic()
        mend = fault()
        try:
            publisher.join(120)
            wait_until(lambda: publisher.confirmed <= ledger.handled(), 120, "every confirmed event handled")
        finally:
            mend()
        assert consumer.is_running
    pause = ledger.longest_pause_after(fault_at)
    result = report(name, publisher, ledger, dead_lettered(cluster, cluster_vhost), pause)
    assert result.lost == 0, result
    assert result.confirmed == result.published or publisher.errors  # unconfirmed ones were reported


def test_a_message_mid_retry_comes_back_when_its_retry_queue_leader_dies(cluster: Cluster, cluster_vhost: str) -> None:
    create_topology(cluster, cluster_vhost, retry_ms=3000)
    leader = _leader(cluster, cluster_vhost, RETRY_QUEUE)
    first = next(n for n in cluster.nodes if n != leader)
    ledger = Ledger(fail_first={"r-0"})
    with consuming(cluster_connector(cluster, cluster_vhost, first, "consumer"), ledger) as consumer:
        publisher = Publisher(cluster_connector(cluster, cluster_vhost, first, "publisher"), "r", 1).start()
        publisher.join(30)
        # the management API's counts lag by seconds: the consumer's own count says it is on its way
        wait_until(lambda: consumer.retried_count == 1, 30, "the failed event sent to its retry queue")
        fault_at = time.monotonic()
        mend = _kill(leader)
        try:
            wait_until(lambda: ledger.seen["r-0"] >= 2, 60, "the retried event handled again")
        finally:
            mend()
    back = ledger.first_after(fault_at)
    recover = None if back is None else back - fault_at
    result = report("kill -9 the retry queue's leader mid-retry (TTL 3 s)", publisher, ledger, 0, recover)
    assert result.lost == 0 and ledger.seen["r-0"] >= 2


PREFETCH = 50


def test_killing_a_consumer_process_mid_batch_duplicates_at_most_the_prefetch(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path
) -> None:
    create_topology(cluster, cluster_vhost)
    node = cluster.nodes[0]
    publisher = Publisher(cluster_connector(cluster, cluster_vhost, node, "publisher"), "p", TOTAL).start()
    publisher.join(120)
    seen_file = tmp_path / "handled.txt"
    urls = cluster_urls(cluster, cluster_vhost, node)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.consumer_process", urls, str(seen_file), str(PREFETCH)],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_until(lambda: seen_file.exists() and len(seen_file.read_text().split()) >= TOTAL // 4, 60, "a batch")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    fault_at = time.monotonic()
    first_run = seen_file.read_text().split()
    ledger = Ledger()
    with consuming(cluster_connector(cluster, cluster_vhost, node, "consumer"), ledger, prefetch=PREFETCH):
        wait_until(
            lambda: publisher.confirmed <= ledger.handled() | set(first_run), 60, "every confirmed event handled"
        )
    for user_id in first_run:
        ledger.seen[user_id] += 1
    back = ledger.first_after(fault_at)
    recover = None if back is None else back - fault_at
    result = report("kill -9 a consumer process mid-batch", publisher, ledger, 0, recover)
    assert result.lost == 0
    assert result.duplicates <= PREFETCH, result
