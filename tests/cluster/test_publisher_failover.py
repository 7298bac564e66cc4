"""The publisher's side of a failover on the three-node cluster: a `RabbitMqEventBus` given all
three URLs publishes batches back to back to the quorum queue `rabbitform apply` compiles
(`x-overflow: reject-publish`, at-least-once dead-lettering, delivery limit) while a node is
killed with `kill -9` mid-batch. Publishing must resume on another node, every batch must end
confirmed (a failover costs time, not errors), and every confirmed event must be handled or
dead-lettered. Each scenario reports the time from the kill to the first confirmed publish.

A consumer on a node that stays up drains the queue, so what is checked is the publisher."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.cluster.faults import (
    QUEUE,
    BatchPublisher,
    Ledger,
    Report,
    cluster_connector,
    consuming,
    create_topology,
    dead_lettered,
    report,
)
from tests.cluster.support import Cluster, ClusterNode, kill_node, quorum_leader, quorum_online, start_node, wait_until

pytestmark = pytest.mark.cluster

BEFORE = 200  # events confirmed before the kill: the batches are flowing


def _leader(cluster: Cluster, vhost: str) -> ClusterNode:
    wait_until(lambda: len(quorum_online(vhost, QUEUE)) == 3, 30, f"{QUEUE} on all three nodes")
    return cluster.node(wait_until(lambda: quorum_leader(vhost, QUEUE), 30, f"{QUEUE}'s leader"))


def _kill_and_time(publisher: BatchPublisher, victim: ClusterNode) -> float:
    """kill -9 `victim` while batches are in flight; seconds to the first confirmed publish."""
    done = publisher.confirmed_count()
    wait_until(lambda: publisher.confirmed_count() >= done + 40, 30, "batches flowing before the kill", 0.01)
    killed_at = time.monotonic()
    kill_node(victim.name)
    return wait_until(lambda: publisher.first_confirmed_after(killed_at), 60, "a publish confirmed after the kill")


Victim = Callable[[], ClusterNode]  # which node to kill, decided when it is killed


def _run(
    cluster: Cluster, vhost: str, name: str, first: ClusterNode, consumer_node: ClusterNode, victims: list[Victim]
) -> Report:
    ledger = Ledger()
    timings: list[float] = []
    with consuming(cluster_connector(cluster, vhost, consumer_node, "consumer"), ledger):
        publisher = BatchPublisher(cluster_connector(cluster, vhost, first, "publisher"), "f").start()
        try:
            wait_until(lambda: publisher.confirmed_count() >= BEFORE, 60, "events confirmed before the kill")
            for choose in victims:
                victim = choose()
                try:
                    timings.append(_kill_and_time(publisher, victim))
                finally:
                    start_node(victim.name)  # always bring the node back
        finally:
            publisher.stop()
        wait_until(lambda: publisher.confirmed <= ledger.handled(), 120, "every confirmed event handled")
    print(f"\n{name}: kill to first confirmed publish " + ", ".join(f"{t:.2f} s" for t in timings))
    result = report(f"publisher: {name}", publisher, ledger, dead_lettered(cluster, vhost), max(timings))
    assert result.lost == 0, result
    assert not publisher.errors, publisher.errors[:3]  # every batch ended confirmed: resent, not failed
    assert result.confirmed == result.published
    return result


def test_killing_the_publishers_node_mid_batch(cluster: Cluster, cluster_vhost: str) -> None:
    create_topology(cluster, cluster_vhost)
    leader = _leader(cluster, cluster_vhost)
    first, consumer_node = (n for n in cluster.nodes if n != leader)
    _run(cluster, cluster_vhost, "kill -9 the publisher's node", first, consumer_node, [lambda: first])


def test_killing_the_queue_leader_mid_batch(cluster: Cluster, cluster_vhost: str) -> None:
    create_topology(cluster, cluster_vhost)
    leader = _leader(cluster, cluster_vhost)
    first, consumer_node = (n for n in cluster.nodes if n != leader)
    _run(cluster, cluster_vhost, "kill -9 the queue leader", first, consumer_node, [lambda: leader])


def test_killing_the_publishers_node_and_leader_then_the_new_leader(cluster: Cluster, cluster_vhost: str) -> None:
    """The reported outage: the publisher's node is also the queue's leader. After that node is
    back, the new leader dies too (wherever it is, the consumer's node included): the same bus
    goes through a second failover."""
    create_topology(cluster, cluster_vhost)
    leader = _leader(cluster, cluster_vhost)
    consumer_node = next(n for n in cluster.nodes if n != leader)
    name = "kill -9 the publisher's node (the leader), then the new leader"
    _run(cluster, cluster_vhost, name, leader, consumer_node, [lambda: leader, lambda: _leader(cluster, cluster_vhost)])
