"""Which AMQP listener the planner uses, which endpoint the user named (flag, $RABBITMQ_URL, the
deprecated $RABBITMQ_HOST/PORT), and when two URLs reach the same broker (pure rules)."""

from __future__ import annotations

import pytest

from topology.broker.amqp_endpoint import (
    HOST_PORT_DEPRECATED,
    BrokerIdentity,
    choose_listener,
    explicit_endpoint,
    identity_from_overview,
    same_broker,
    warn_host_port_deprecated,
)
from topology.broker.management import ManagementClient
from topology.urls import UrlError

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


ADMIN = ManagementClient("http://mgmt:15672", "admin", "admin-pw")


def test_an_amqp_url_flag_is_taken_as_given_before_any_variable() -> None:
    named = explicit_endpoint(ADMIN, "amqp://bob:pw@a:5673/v", {"RABBITMQ_URL": "amqp://b:5674"})
    assert named is not None
    endpoint, source = named
    assert (endpoint.host, endpoint.port, endpoint.username, source) == ("a", 5673, "bob", "--amqp-url")


def test_the_planner_reads_the_runtimes_rabbitmq_url_as_the_management_user(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"RABBITMQ_URL": "amqps://app:app-pw@n1:5671/team,amqps://app:app-pw@n2:5671/team", "RABBITMQ_HOST": "x"}
    named = explicit_endpoint(ADMIN, None, environ)
    assert named is not None
    endpoint, source = named
    assert (endpoint.scheme, endpoint.host, endpoint.port, source) == ("amqps", "n1", 5671, "$RABBITMQ_URL")
    assert (endpoint.username, endpoint.password) == ("admin", "admin-pw")  # not the service's account
    assert capsys.readouterr().err == ""  # RABBITMQ_HOST is ignored when RABBITMQ_URL is set: no warning


def test_rabbitmq_host_and_port_still_work_with_a_one_line_deprecation_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    warn_host_port_deprecated.cache_clear()
    named = explicit_endpoint(ADMIN, None, {"RABBITMQ_HOST": "h", "RABBITMQ_PORT": "5680"})
    assert named is not None
    endpoint, source = named
    assert (endpoint.host, endpoint.port, endpoint.username, source) == (
        "h",
        5680,
        "admin",
        "$RABBITMQ_HOST/$RABBITMQ_PORT",
    )
    err = capsys.readouterr().err
    assert err == f"warning: {HOST_PORT_DEPRECATED}\n" and "set $RABBITMQ_URL" in err
    explicit_endpoint(ADMIN, None, {"RABBITMQ_HOST": "h"})
    assert capsys.readouterr().err == ""  # once per process
    assert explicit_endpoint(ADMIN, None, {}) is None


def test_a_malformed_rabbitmq_url_is_one_line_with_its_password_masked() -> None:
    with pytest.raises(UrlError, match=r"^\$RABBITMQ_URL") as caught:
        explicit_endpoint(ADMIN, None, {"RABBITMQ_URL": "amqp://app:s3cret@h:port/"})
    assert "s3cret" not in str(caught.value)
