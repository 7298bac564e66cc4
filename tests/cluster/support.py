"""What fault tests on the local three-node cluster share.

The cluster is `scripts/rabbitmq-cluster`'s: nodes rf1, rf2, rf3 @localhost, AMQP on
127.0.0.1:5681-5683, management on 127.0.0.1:15681-15683. The helpers here break and mend it
(kill a node's VM, stop and start its application, close its connections), read quorum queues
through the management API of whichever node answers, and wait with a deadline: a fault test
polls for the state it expects, it never sleeps a fixed time."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pika
import requests
from pika.exceptions import AMQPError

from tests.conftest import PASSWORD, USER

T = TypeVar("T")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-cluster"
HOST = "127.0.0.1"
AUTH = (USER, PASSWORD)
# How long `up` may take (its own deadline, RABBITMQ_CLUSTER_DEADLINE, plus the CLI's margin).
UP_TIMEOUT_S = float(os.environ.get("RABBITMQ_CLUSTER_DEADLINE", "120")) + 60
# Errors that mean "not yet" while a node is down or coming back, not a failed test.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    AMQPError,
    OSError,
)


@dataclasses.dataclass(frozen=True)
class ClusterNode:
    """One node of the cluster: `rf1@localhost` listens on 5681 (AMQP) and 15681 (management)."""

    name: str
    amqp_port: int
    management_port: int

    @property
    def short_name(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def management_url(self) -> str:
        return f"http://{HOST}:{self.management_port}"

    def amqp_url(self, vhost: str = "/") -> str:
        """An AMQP URL for `vhost` on this node."""
        return f"amqp://{USER}:{PASSWORD}@{HOST}:{self.amqp_port}/{quote(vhost, safe='')}"


NODES: tuple[ClusterNode, ...] = tuple(ClusterNode(f"rf{i}@localhost", 5680 + i, 15680 + i) for i in (1, 2, 3))


@dataclasses.dataclass(frozen=True)
class Cluster:
    """What the `cluster` fixture yields: the three nodes and how to reach them."""

    nodes: tuple[ClusterNode, ...] = NODES

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def amqp_urls(self) -> list[Callable[[str], str]]:
        """One URL builder per node: `cluster.amqp_urls[1](vhost)` is rf2's URL for `vhost`."""
        return [node.amqp_url for node in self.nodes]

    @property
    def management_urls(self) -> list[str]:
        return [node.management_url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        return node(name)

    def connection_parameters(self, vhost: str) -> list[pika.URLParameters]:
        """pika parameters for every node, for `pika.BlockingConnection(...)` to try in turn."""
        return [pika.URLParameters(build(vhost)) for build in self.amqp_urls]


def node(name: str) -> ClusterNode:
    """The node called `name`: `rf2` or `rf2@localhost`."""
    for candidate in NODES:
        if name in (candidate.name, candidate.short_name):
            return candidate
    raise ValueError(f"no cluster node {name!r} (expected one of {[n.name for n in NODES]})")


def wait_until(predicate: Callable[[], T | None], deadline_s: float, what: str, interval: float = 0.2) -> T:
    """Poll until `predicate()` is truthy and return that value; fail after `deadline_s` seconds.

    While nodes go down and come back a probe may raise a connection error: that counts as
    "not yet", and the last one is reported if the deadline passes."""
    deadline = time.monotonic() + deadline_s
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except TRANSIENT_ERRORS as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {deadline_s:g}s waiting for {what}{detail}")
        time.sleep(interval)


# --- the cluster script ----------------------------------------------------------------------


def run_script(*args: str, timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run `scripts/rabbitmq-cluster ARGS`; raise with its output when it fails."""
    result = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/rabbitmq-cluster {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def cluster_up() -> None:
    """Start whichever nodes are not running and wait until all three run clustered."""
    run_script("up")


def rabbitmqctl(name: str, *args: str, timeout: float = 60) -> str:
    """`rabbitmqctl ARGS` against node `name`, with the cluster's cookie; its standard output."""
    return run_script("ctl", node(name).short_name, *args, timeout=timeout).stdout


# --- faults ----------------------------------------------------------------------------------


def beam_pids(name: str) -> list[int]:
    """The pids of node `name`'s Erlang VM, found by the `-rabbitform_node NAME` marker that
    scripts/rabbitmq-cluster puts on its command line (nothing else carries the node name)."""
    full_name = node(name).name
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if not args or not args[0].endswith(b"beam.smp"):
            continue
        if (b"-rabbitform_node", full_name.encode()) in itertools.pairwise(args):
            pids.append(int(proc.name))
    return pids


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie no one has reaped yet is dead too


def kill_node(name: str, deadline_s: float = 10) -> list[int]:
    """kill -9 node `name`'s Erlang VM (no clean shutdown, as in a crash); wait until it is gone.
    Returns the pids killed."""
    pids = beam_pids(name)
    if not pids:
        raise AssertionError(f"{node(name).name} is not running: no beam.smp process carries its name")
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: all(_gone(pid) for pid in pids), deadline_s, f"{node(name).name} (pid {pids}) to exit")
    return pids


def start_node(name: str) -> None:
    """Bring node `name` back (after kill_node or stop_app): `up` restarts whatever is not
    running, lets it rejoin the cluster and waits until all three run clustered."""
    node(name)
    cluster_up()


def stop_app(name: str) -> None:
    """Stop the RabbitMQ application on node `name`, leaving its Erlang VM up."""
    rabbitmqctl(name, "stop_app")


def start_app(name: str) -> None:
    """Start the RabbitMQ application on node `name` again (after stop_app)."""
    rabbitmqctl(name, "start_app")


def close_all_connections(name: str, reason: str = "rabbitform fault test") -> None:
    """Close every client connection on node `name`, in every vhost; those on the other nodes
    stay open. (`--global` is what makes it every vhost on that node: without it rabbitmqctl
    closes the connections of one vhost, `/`, on all nodes.)"""
    rabbitmqctl(name, "close_all_connections", "--global", reason)


# --- reading the cluster ---------------------------------------------------------------------


def running_nodes(management_url: str) -> list[str]:
    """The nodes that `management_url`'s node reports running, sorted."""
    response = requests.get(f"{management_url}/api/nodes", params={"columns": "name,running"}, auth=AUTH, timeout=5)
    response.raise_for_status()
    return sorted(n["name"] for n in response.json() if n.get("running"))


def _in_turn(management_urls: list[str] | None) -> list[str]:
    return management_urls or [n.management_url for n in NODES]


def queue_info(vhost: str, queue: str, management_urls: list[str] | None = None) -> dict[str, Any]:
    """`GET /api/queues/{vhost}/{queue}` from the first node that answers (rf1, rf2, rf3 unless
    `management_urls` says otherwise): a fault test may have taken any of them down."""
    path = f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    last_error: Exception | None = None
    for url in _in_turn(management_urls):
        try:
            response = requests.get(f"{url}{path}", auth=AUTH, timeout=5)
        except requests.RequestException as exc:
            last_error = exc
            continue
        if response.status_code >= 500:  # a node still booting or shutting down
            last_error = requests.HTTPError(f"{response.status_code} from {url}{path}: {response.text[:200]}")
            continue
        response.raise_for_status()
        info: dict[str, Any] = response.json()
        return info
    raise requests.ConnectionError(f"no management API answered for {path}: {last_error!r}")


def quorum_leader(vhost: str, queue: str, management_urls: list[str] | None = None) -> str | None:
    """The node leading quorum queue `queue` in `vhost`, as the management API reports it
    (`leader`); None while it reports none."""
    leader = queue_info(vhost, queue, management_urls).get("leader")
    return str(leader) if leader else None


def quorum_members(vhost: str, queue: str, management_urls: list[str] | None = None) -> list[str]:
    """The nodes holding a replica of quorum queue `queue` (`members`), sorted."""
    return sorted(queue_info(vhost, queue, management_urls).get("members") or [])


def quorum_online(vhost: str, queue: str, management_urls: list[str] | None = None) -> list[str]:
    """The members of quorum queue `queue` that are up (`online`), sorted."""
    return sorted(queue_info(vhost, queue, management_urls).get("online") or [])


# --- vhosts ----------------------------------------------------------------------------------


def create_vhost(name: str, management_url: str = NODES[0].management_url) -> None:
    """Create vhost `name` with full permissions for the test user."""
    path = quote(name, safe="")
    requests.put(f"{management_url}/api/vhosts/{path}", auth=AUTH, timeout=30).raise_for_status()
    requests.put(
        f"{management_url}/api/permissions/{path}/{quote(USER, safe='')}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        auth=AUTH,
        timeout=30,
    ).raise_for_status()


def delete_vhost(name: str) -> None:
    """Delete vhost `name` through the first node whose management API answers."""
    path = quote(name, safe="")
    for url in _in_turn(None):
        try:
            response = requests.delete(f"{url}/api/vhosts/{path}", auth=AUTH, timeout=60)
        except requests.RequestException:
            continue
        if response.status_code in (204, 404):
            return
    raise AssertionError(f"could not delete vhost {name!r} on the cluster")
