"""A loopback HTTP server that records every request it gets: the place a tenant points to.

Answers ``/api/v1/query`` with an empty Prometheus vector and anything else
with 200 ``{}``, so a client that reaches it carries on; the test then reads
``requests`` to see what arrived (path, headers, body). Used to prove that a
credential, a file's content or a webhook never leaves for a place the
platform did not allow.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["Capture", "Request"]


@dataclass(frozen=True)
class Request:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Capture:
    """``with Capture() as capture: ... capture.url ... capture.requests``."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with capture._lock:
                    capture.requests.append(
                        Request(self.command, self.path, dict(self.headers.items()), body)
                    )
                answer = (
                    {"status": "success", "data": {"resultType": "vector", "result": []}}
                    if self.path.startswith("/api/v1/query")
                    else {}
                )
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _record

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def seen(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def __enter__(self) -> Capture:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
