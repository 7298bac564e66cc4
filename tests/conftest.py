"""Shared fixtures. Integration tests get a vhost of their own on the real broker."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
from hypothesis import settings

from tests.integration.private_broker import private_broker  # noqa: F401 (a fixture: one node for the session)

# `make test` (CI) runs the property tests on a fixed seed, so a run is repeatable and a landing
# never hangs on a new random draw; plain pytest and `make unit` explore new inputs each run.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "explore"))

MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672").rstrip("/")
AMQP_HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("RABBITMQ_PORT", "5672"))
USER = os.environ.get("RABBITMQ_USER", "guest")
PASSWORD = os.environ.get("RABBITMQ_PASSWORD", "guest")


@pytest.fixture(scope="session")
def exclusive_test_nodes() -> Iterator[None]:
    """The brokers tests start, stop or kill themselves (the three-node cluster, the private and
    TLS nodes) have fixed names and ports: pytest runs from several checkouts on one machine take
    turns here instead of killing each other's nodes. One run alone never waits."""
    with open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "rabbitform-test-nodes.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _admin() -> requests.Session:
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    return session


@pytest.fixture(scope="session")
def management_url() -> str:
    """The management API of the test broker (credentials are guest/guest unless overridden)."""
    try:  # generous: a busy broker answers slowly, which is not the same as not answering
        _admin().get(f"{MANAGEMENT_URL}/api/overview", timeout=30).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"RabbitMQ management API at {MANAGEMENT_URL} is not reachable ({exc}); run scripts/rabbitmq-up")
    return MANAGEMENT_URL


@pytest.fixture
def vhost(management_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh vhost for one test, with full permissions for the test user; deleted afterwards."""
    name = f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    admin = _admin()
    path = quote(name, safe="")
    admin.put(f"{management_url}/api/vhosts/{path}", timeout=10).raise_for_status()
    admin.put(
        f"{management_url}/api/permissions/{path}/{quote(USER, safe='')}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    try:
        yield name
    finally:
        admin.delete(f"{management_url}/api/vhosts/{path}", timeout=30)
        delete_ownership_records(management_url, name)


def delete_ownership_records(management_url: str, vhost: str) -> None:
    """`apply` records ownership in global parameters, which outlive the vhost: remove the test's."""
    admin = _admin()
    listed = admin.get(f"{management_url}/api/global-parameters", timeout=10).json()
    for item in listed:
        name = str(item.get("name", ""))
        if name.startswith("rabbitform-owner:") and name.endswith(f"@{vhost}"):
            admin.delete(f"{management_url}/api/global-parameters/{quote(name, safe='')}", timeout=10)


@pytest.fixture
def amqp_url(vhost: str) -> str:
    """An AMQP URL for the test's own vhost."""
    return f"amqp://{USER}:{PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{quote(vhost, safe='')}"
