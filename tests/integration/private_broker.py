"""A RabbitMQ node of the test session's own, for fault tests (memory alarms, forced closes,
restarts) that must never touch the shared broker on 5672.

The node `rftest@localhost` runs from the same Debian package as the shared broker, on its own
ports (AMQP 5691, management 15691, distribution 25691), with its own data directory and Erlang
cookie under /tmp/rabbitform-rftest-5691 (wiped at each start). The RabbitMQ scripts are run directly, not through Debian's /usr/sbin wrapper, which would switch to the rabbitmq user and
its HOME, that is to the shared broker's cookie.

Use the session-scoped `private_broker` fixture (import it into a test module, or into a
conftest.py), then `broker.new_vhost()` (through the management API: rabbitmqctl boots an Erlang
VM per call, seconds each), `broker.amqp_url(vhost)`, `broker.management_url`, and
`broker.ctl(...)` for what only rabbitmqctl does (memory alarms). A node with more listeners
is a subclass that extends `ports`, `config()` and `ready()` (tls_broker.py), started by `running()`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

NODE = os.environ.get("RABBITFORM_TEST_NODE", "rftest@localhost")
AMQP_PORT = int(os.environ.get("RABBITFORM_TEST_NODE_PORT", "5691"))
START_DEADLINE = 90.0
AUTH = ("guest", "guest")
SCRIPTS_CANDIDATES = ("/usr/lib/rabbitmq/bin", "/usr/lib/rabbitmq/sbin")


def _scripts_dir() -> Path | None:
    for candidate in SCRIPTS_CANDIDATES:
        if (Path(candidate) / "rabbitmq-server").exists():
            return Path(candidate)
    server = shutil.which("rabbitmq-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    return Path(server).resolve().parent if server else None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class PrivateBroker:
    """One running node: `ctl` runs rabbitmqctl against it, `amqp_url` names a vhost on it."""

    base: Path
    scripts: Path
    node: str = NODE
    port: int = AMQP_PORT  # management on port + 10000, Erlang distribution on port + 20000

    @property
    def http_port(self) -> int:
        return self.port + 10000

    @property
    def dist_port(self) -> int:
        return self.port + 20000

    @property
    def env(self) -> dict[str, str]:
        cookie = (self.base / ".erlang.cookie").read_text()
        return {
            **os.environ,
            "HOME": str(self.base),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS": f"-kernel inet_dist_use_interface {{127,0,0,1}} -setcookie {cookie}",
        }

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """rabbitmqctl ARGS against this node; its output, or an AssertionError with stderr."""
        result = subprocess.run(
            [str(self.scripts / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout}")
        return result.stdout

    def amqp_url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def new_vhost(self, prefix: str = "fault") -> str:
        """A fresh vhost with full permissions for guest (delete it with `delete_vhost`)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        path = quote(name, safe="")
        requests.put(f"{self.management_url}/api/vhosts/{path}", auth=AUTH, timeout=30).raise_for_status()
        requests.put(
            f"{self.management_url}/api/permissions/{path}/guest",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            auth=AUTH,
            timeout=30,
        ).raise_for_status()
        return name

    def delete_vhost(self, name: str) -> None:
        requests.delete(f"{self.management_url}/api/vhosts/{quote(name, safe='')}", auth=AUTH, timeout=60)

    def memory_alarm(self) -> bool:
        """Whether the node's memory alarm is on (publishing connections are blocked)."""
        response = requests.get(f"{self.management_url}/api/nodes", auth=AUTH, timeout=30)
        response.raise_for_status()
        return any(node.get("mem_alarm") for node in response.json())

    def queue_counts(self, vhost: str, queue: str) -> tuple[int, int]:
        """(ready, unacked) of a queue, from the management API (lags by the stats interval)."""
        path = f"{quote(vhost, safe='')}/{quote(queue, safe='')}"
        response = requests.get(f"{self.management_url}/api/queues/{path}", auth=AUTH, timeout=30)
        response.raise_for_status()
        body = response.json()
        return int(body.get("messages_ready", -1)), int(body.get("messages_unacknowledged", -1))

    def _management_answers(self) -> bool:
        try:
            return requests.get(f"{self.management_url}/api/overview", auth=AUTH, timeout=5).ok
        except requests.RequestException:
            return False

    # ---------------------------------------------------------------- lifecycle

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the node listens on: all must be free before it starts."""
        return (self.port, self.http_port, self.dist_port)

    def config(self) -> list[str]:
        """The lines of its rabbitmq.conf (a subclass adds its own)."""
        return [
            f"listeners.tcp.1 = 127.0.0.1:{self.port}",
            "management.tcp.ip = 127.0.0.1",
            f"management.tcp.port = {self.http_port}",
            "collect_statistics_interval = 500",  # queue counts in the management API lag 0.5 s, not 5
        ]

    def ready(self) -> bool:
        return _port_open(self.port) and self._management_answers()

    def prepare(self) -> None:
        for sub in ("mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        cookie = self.base / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        (self.base / "rabbitmq-env.conf").write_text("")  # not the shared broker's /etc/rabbitmq one
        (self.base / "rabbitmq.conf").write_text("".join(f"{line}\n" for line in self.config()))
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")

    def start(self) -> None:
        for port in self.ports:
            if _port_open(port):
                raise RuntimeError(f"port {port}, which the private test broker needs, is taken")
        self.prepare()
        with open(self.base / "log" / "startup.log", "ab") as out:
            subprocess.run(
                [str(self.scripts / "rabbitmq-server"), "-detached"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=60,
            )
        deadline = time.monotonic() + START_DEADLINE
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node} did not listen on {self.port} (logs: {self.base / 'log'})")
            time.sleep(0.2)

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM to the node's own VM (by the pid it wrote), SIGKILL if it lingers; without
        `graceful`, SIGKILL at once (a throwaway node whose directory goes next)."""
        pid_file = self.base / "node.pid"
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if not text.isdigit():
            return
        pid = int(text)
        try:  # only the VM this directory started: its command line names the directory (-home)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        if not any(b"beam" in arg for arg in cmdline[:1]) or str(self.base).encode() not in cmdline:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.2)
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running(broker: PrivateBroker) -> Iterator[PrivateBroker]:
    """Start `broker` in a clean directory, stop it and remove the directory afterwards.

    One directory per node, so that a session killed before its teardown leaves a node the
    next session can find (by its pid file) and stop, instead of failing on a taken port.
    """
    broker.stop()
    shutil.rmtree(broker.base, ignore_errors=True)
    try:
        broker.start()
    except Exception as exc:
        broker.stop()
        pytest.fail(f"cannot start the private test broker {broker.node}: {exc} (logs under {broker.base / 'log'})")
    try:
        yield broker
    finally:
        broker.stop(graceful=False)
        shutil.rmtree(broker.base, ignore_errors=True)


def rabbitmq_scripts() -> Path:
    """The RabbitMQ scripts directory; skips the test when RabbitMQ is not installed."""
    scripts = _scripts_dir()
    if scripts is None:
        pytest.skip("rabbitmq-server is not installed: cannot start a private broker")
    return scripts


@pytest.fixture(scope="session")
def private_broker(exclusive_test_nodes: None) -> Iterator[PrivateBroker]:
    """A RabbitMQ node this test session started and stops (skipped when RabbitMQ is not installed)."""
    base = Path(tempfile.gettempdir()) / f"rabbitform-rftest-{AMQP_PORT}"
    with running(PrivateBroker(base, rabbitmq_scripts())) as broker:
        yield broker
