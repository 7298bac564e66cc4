"""Which AMQP listener the planner uses, and when two URLs reach the same broker (pure rules)."""

from __future__ import annotations

from topology.broker.amqp_endpoint import BrokerIdentity, choose_listener, identity_from_overview, same_broker

CLUSTER_OVERVIEW = {
    "cluster_name": "rf2@vm",
    "node": "rf2@localhost",
    "listeners": [
        {"node": "rf2@localhost", "protocol": "amqp", "ip_address": "127.0.0.1", "port": 5682},
        {"node": "rf3@localhost", "protocol": "amqp", "ip_address": "127.0.0.1", "port": 5683},
        {"node": "rf2@localhost", "protocol": "clustering", "ip_address": "127.0.0.1", "port": 25682},
        {"node": "rf2@localhost", "protocol": "http", "ip_address": "::", "port": 15682},
    ],
}


def test_the_answering_nodes_listener_is_chosen_amqps_for_https() -> None:
    identity = identity_from_overview(CLUSTER_OVERVIEW)
    assert identity.nodes == {"rf2@localhost", "rf3@localhost"}
    assert choose_listener(identity, tls=False) == ("amqp", 5682)
    assert choose_listener(identity, tls=True) is None  # no amqp/ssl listener: an error, never a guess
    cloud = identity_from_overview(
        {
            "cluster_name": "prod",
            "node": "rabbit@a",
            "listeners": [
                {"node": "rabbit@a", "protocol": "amqp", "port": 5672},
                {"node": "rabbit@a", "protocol": "amqp/ssl", "port": 5671},
            ],
        }
    )
    assert choose_listener(cloud, tls=True) == ("amqps", 5671)


def test_default_cluster_names_match_any_node_of_the_cluster_on_its_host() -> None:
    identity = identity_from_overview(CLUSTER_OVERVIEW)
    assert same_broker(identity, "rf2@vm")
    assert same_broker(identity, "rf3@vm")  # another node of the same cluster
    assert not same_broker(identity, "rabbit@vm")  # the shared broker on the same host
    assert not same_broker(identity, "rftest@vm")  # a private node
    assert not same_broker(identity, "rf3@other")
    assert not same_broker(identity, "")


def test_an_explicit_cluster_name_must_be_equal() -> None:
    identity = BrokerIdentity("prod", "rabbit@a", frozenset({"rabbit@a", "rabbit@b"}))
    assert same_broker(identity, "prod")
    assert not same_broker(identity, "rabbit@b")  # a standalone node named like a member
    assert not same_broker(identity, "staging")
