"""A private RabbitMQ node that speaks TLS: management over HTTPS and AMQP over TLS (AMQPS).

It is a `PrivateBroker` (see private_broker.py) with a few more listeners: the node
`rftls@localhost` answers plain AMQP on 5693 and plain HTTP management on 15693 (for the
fixtures' own calls, and to test an `https://` URL pointed at a plain port), AMQPS on 5694
and HTTPS management on 15694; distribution on 25693. Its certificates are made with the
`openssl` command at start, in the node's directory: a throwaway CA (`ca.pem`), a server
certificate it signed for `localhost` and `127.0.0.1`, and a second CA that signed nothing
(`other_ca.pem`), to test a CA bundle that does not match.

Use the session-scoped `tls_broker` fixture (import it into a test module).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.private_broker import PrivateBroker, _port_open, rabbitmq_scripts, running

NODE = "rftls@localhost"
AMQP_PORT = int(os.environ.get("RABBITFORM_TLS_NODE_PORT", "5693"))
SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass
class TlsBroker(PrivateBroker):
    """A private node with TLS listeners: AMQPS on port + 1, HTTPS management on port + 10001."""

    node: str = NODE
    port: int = AMQP_PORT

    @property
    def amqps_port(self) -> int:
        return self.port + 1

    @property
    def https_port(self) -> int:
        return self.http_port + 1

    @property
    def tls_dir(self) -> Path:
        return self.base / "tls"

    @property
    def ca_cert(self) -> str:
        """The CA that signed the node's certificate."""
        return str(self.tls_dir / "ca.pem")

    @property
    def other_ca_cert(self) -> str:
        """A CA that signed nothing the node uses."""
        return str(self.tls_dir / "other_ca.pem")

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def amqps_url(self, vhost: str | None = None) -> str:
        """`amqps://` with guest's credentials, on `vhost` when given (else the URL names none)."""
        tail = "" if vhost is None else "/" + quote(vhost, safe="")
        return f"amqps://guest:guest@127.0.0.1:{self.amqps_port}{tail}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (*super().ports, self.amqps_port, self.https_port)

    def config(self) -> list[str]:
        tls = self.tls_dir
        return [
            *super().config(),
            f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}",
            f"ssl_options.cacertfile = {tls / 'ca.pem'}",
            f"ssl_options.certfile = {tls / 'server.pem'}",
            f"ssl_options.keyfile = {tls / 'server.key'}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
            "management.ssl.ip = 127.0.0.1",
            f"management.ssl.port = {self.https_port}",
            f"management.ssl.cacertfile = {tls / 'ca.pem'}",
            f"management.ssl.certfile = {tls / 'server.pem'}",
            f"management.ssl.keyfile = {tls / 'server.key'}",
        ]

    def ready(self) -> bool:
        return super().ready() and _port_open(self.amqps_port) and _port_open(self.https_port)

    def prepare(self) -> None:
        make_certificates(self.tls_dir)
        super().prepare()


def make_certificates(directory: Path) -> None:
    """ca.pem, server.pem and server.key (signed by ca.pem, for localhost and 127.0.0.1), and
    other_ca.pem, with the `openssl` command: valid two days, never reused."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=directory, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

    for name, subject in (("ca", "/CN=rabbitform test CA"), ("other_ca", "/CN=rabbitform unrelated CA")):
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.pem",
        )  # fmt: skip
    (directory / "server.ext").write_text(SERVER_EXTENSIONS)
    openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
    )  # fmt: skip


@pytest.fixture(scope="session")
def tls_broker(exclusive_test_nodes: None) -> Iterator[TlsBroker]:
    """A TLS-speaking RabbitMQ node this test session started and stops (skipped without
    RabbitMQ or the `openssl` command)."""
    scripts = rabbitmq_scripts()
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make the TLS test broker's certificates")
    base = Path(tempfile.gettempdir()) / f"rabbitform-rftls-{AMQP_PORT}"
    with running(TlsBroker(base, scripts)) as broker:
        yield broker
