"""A TCP relay on loopback in front of the real broker that can freeze: bytes stop flowing both
ways while every socket stays open, as with a broker that hangs (a stuck node, a partition).
The broker and the client are real; only the path between them stops."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class FreezableProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, amqp_url: str) -> str:
        """`amqp_url` with its host:port replaced by the proxy's."""
        scheme, rest = amqp_url.split("://", 1)
        credentials, path = rest.split("@", 1)
        return f"{scheme}://{credentials}@127.0.0.1:{self.port}/{path.split('/', 1)[1]}"

    def freeze(self) -> None:
        self._flowing.clear()

    def close(self) -> None:
        """Cut every connection (the broker then requeues what its consumers held)."""
        self._closed = True
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a relay blocked in recv(); close() alone would not
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                self._flowing.wait()
                if self._closed:
                    return
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def freezable(target_port: int) -> Iterator[FreezableProxy]:
    proxy = FreezableProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
