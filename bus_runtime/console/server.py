"""Serving the console: the standard library's WSGI server with a thread per request, on
loopback by default. Anywhere else needs TLS, or an explicit choice of plain HTTP."""

from __future__ import annotations

import ipaddress
import socketserver
import ssl
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from topology.errors import RabbitformError


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """One line per request on stderr, without the query string (it may name subscribers)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        super().log_message("%s %s %s", self.command, path, code)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, tls: bool, insecure_http: bool) -> str | None:
    """None when `host` may be bound as asked; the warning to print when plain HTTP was chosen
    for a non-loopback address. Raises when neither TLS nor --insecure-http was given."""
    if is_loopback(host) or tls:
        return None
    if not insecure_http:
        raise RabbitformError(
            f"--host {host} would send passwords and session cookies over the network in clear: "
            "give --tls-cert and --tls-key, or --insecure-http to accept that"
        )
    return f"warning: serving plain HTTP on {host}: passwords and session cookies cross the network unencrypted"


def build_server(app: Any, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None) -> WSGIServer:
    """A bound server (`port` 0 picks a free one: read `server.server_port`)."""
    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise RabbitformError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            server.server_close()
            raise RabbitformError(f"cannot load --tls-cert {tls_cert} / --tls-key {tls_key}: {exc}") from None
        # the handshake happens in the request's thread (on its first read), not in the accepting one
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
