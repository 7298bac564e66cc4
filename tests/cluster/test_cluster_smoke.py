"""The cluster that fault tests run on works as one: three running nodes, quorum queues
replicated on all of them, and a new leader when the leader's node dies."""

from __future__ import annotations

import pika
import pytest
import requests

from tests.cluster.support import (
    AUTH,
    Cluster,
    kill_node,
    quorum_leader,
    quorum_members,
    quorum_online,
    running_nodes,
    start_node,
    wait_until,
)

pytestmark = pytest.mark.cluster

QUEUE = "smoke.quorum"


def test_every_node_sees_three_running_nodes(cluster: Cluster) -> None:
    for url in cluster.management_urls:
        requests.get(f"{url}/api/overview", auth=AUTH, timeout=5).raise_for_status()
        assert running_nodes(url) == sorted(cluster.node_names), url


def test_killing_the_leader_of_a_quorum_queue_elects_another(cluster: Cluster, cluster_vhost: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[0](cluster_vhost)))
    try:
        channel = connection.channel()
        channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        channel.basic_publish("", QUEUE, b"survives", pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()

    wait_until(
        lambda: quorum_members(cluster_vhost, QUEUE) == sorted(cluster.node_names),
        10,
        "the quorum queue to have a member on each node",
    )
    leader = wait_until(lambda: quorum_leader(cluster_vhost, QUEUE), 10, "the quorum queue's leader")

    kill_node(leader)
    try:
        new_leader = wait_until(
            lambda: (current := quorum_leader(cluster_vhost, QUEUE)) != leader and current,
            30,
            f"a leader other than {leader}",
        )
        assert new_leader in set(cluster.node_names) - {leader}

        # The confirmed message is still there, read through a surviving node.
        survivor = cluster.node(new_leader)
        connection = pika.BlockingConnection(pika.URLParameters(survivor.amqp_url(cluster_vhost)))
        try:
            assert connection.channel().queue_declare(QUEUE, passive=True).method.message_count == 1
        finally:
            connection.close()
    finally:
        start_node(leader)

    wait_until(
        lambda: quorum_online(cluster_vhost, QUEUE) == sorted(cluster.node_names),
        30,
        f"{leader} to be back among the quorum queue's online members",
    )
