"""Fixtures for fault tests on the local three-node cluster (scripts/rabbitmq-cluster).

Tests here are marked `cluster`; `make test` brings the cluster up and runs them with the rest,
`make cluster-test` runs them alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cluster.support import Cluster, cluster_up, create_vhost, delete_vhost


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster" in str(item.path):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(exclusive_test_nodes: None) -> Cluster:
    """The three-node cluster, started (or completed) by `scripts/rabbitmq-cluster up` once per
    session and left running afterwards (`make cluster-down` stops it)."""
    try:
        cluster_up()
    except Exception as exc:
        pytest.fail(f"could not bring the three-node cluster up: {exc}", pytrace=False)
    return Cluster()


@pytest.fixture
def cluster_vhost(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh vhost on the cluster for one test, with full permissions for the test user;
    deleted afterwards through whichever node answers."""
    name = f"cluster-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    create_vhost(name, cluster.management_urls[0])
    try:
        yield name
    finally:
        delete_vhost(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault scenarios' figures as one table (docs/cluster.md quotes it)."""
    from tests.cluster.faults import HEADER, REPORTS

    if REPORTS:
        terminalreporter.write_line("\nfault scenarios on the three-node cluster:")
        terminalreporter.write_line(HEADER)
        for result in REPORTS:
            terminalreporter.write_line(result.line())
