"""Which CA verifies the broker's TLS certificate, for HTTPS (management) and AMQPS alike.

One rule for both: `--ca-cert FILE` (or the library's `ca_cert=`), else `$RABBITMQ_CA_CERT`,
else the default trust store; verification (of the host name too) is on unless `--insecure`
turns it off. A CA file that does not exist is an error before any connection, naming where
it came from.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from topology.errors import RabbitformError

CA_CERT_ENV = "RABBITMQ_CA_CERT"


def resolve_ca_cert(
    ca_cert: str | None, environ: Mapping[str, str] | None = None, flag: str = "--ca-cert"
) -> str | None:
    """`ca_cert`, else `$RABBITMQ_CA_CERT` (empty counts as unset), else None: the default trust store."""
    env = os.environ if environ is None else environ
    if ca_cert is not None:
        path, where = ca_cert, flag
    elif env.get(CA_CERT_ENV):
        path, where = env[CA_CERT_ENV], CA_CERT_ENV
    else:
        return None
    if not os.path.isfile(path):
        raise RabbitformError(f"{where} {path}: no such file (the CA bundle to verify the broker with)")
    return path


def client_context(ca_cert: str | None, insecure: bool = False) -> ssl.SSLContext:
    """A client context that verifies the peer and its host name against `ca_cert` only (like
    `--ca-cert` for HTTPS), else the system's CAs; `insecure` verifies nothing."""
    context = ssl.create_default_context(cafile=ca_cert)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
