"""A TCP endpoint that can disappear: the store outage of tests/integration/test_outage.py.

``FlakyTcp(target)`` listens on 127.0.0.1. While *up* it forwards every connection to
``target`` (a real Qdrant server); while *down*, or always when there is no target, it
accepts each connection and drops it at once, which is what a crashed or restarting
server behind a load balancer looks like to a client. ``down()`` also cuts the
connections in flight, so pooled keep-alive connections break too.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FlakyTcp:
    def __init__(self, target: tuple[str, int] | None = None) -> None:
        self.target = target
        self._up = target is not None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.dropped = 0  # connections refused while down
        threading.Thread(target=self._accept, name="flaky-tcp", daemon=True).start()

    def up(self) -> None:
        if self.target is None:
            raise RuntimeError("no server to forward to")
        self._up = True

    def down(self) -> None:
        self._up = False
        with self._lock:
            sockets, self._open = list(self._open), set()
        for s in sockets:
            _close(s)

    def close(self) -> None:
        self.down()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._up or self.target is None:
                self.dropped += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _close(s)
                with self._lock:
                    self._open.discard(s)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
