"""A loopback CloudEvents receiver for the audit log's HTTP sink: up, slow, or answering errors.

``SinkServer(port)`` listens on 127.0.0.1 once ``start()`` is called (before
that the port refuses connections: the sink is down). While ``hold`` is
cleared, each request waits for it before answering (a slow sink, as slow as
the test wants, without a timed sleep). ``status`` is the answer's code.
``events`` are the parsed bodies of the requests answered 2xx, in order.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["SinkServer", "free_port"]


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SinkServer:
    """Records CloudEvents POSTed to it; can be made slow or failing."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.events: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.waiting = 0
        """Requests being held right now."""
        self.hold = threading.Event()
        self.hold.set()
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> SinkServer:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink._lock:
                    sink.waiting += 1
                sink.hold.wait(timeout=120)
                with sink._lock:
                    sink.waiting -= 1
                    status = sink.status
                    if 200 <= status < 300:
                        sink.events.append(json.loads(body))
                        sink.content_types.append(self.headers.get("Content-Type", ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def seqs(self) -> list[int]:
        """The ``seq`` of every record received, in arrival order."""
        with self._lock:
            return [int(e["data"]["seq"]) for e in self.events]

    def stop(self) -> None:
        self.hold.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
