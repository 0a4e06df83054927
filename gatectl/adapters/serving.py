"""The controller's HTTP face: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

Kubernetes probes and Prometheus scrapes must be answered while the
controller loop is busy, so the server runs on its own daemon thread (stdlib
``http.server``, one thread per request). It only reads: the exposition
comes from the ``Recorder``, health and readiness from two callables the
controller provides. A callable that raises counts as *not* healthy/ready.
With a ``DecisionAPI`` (``gatectl.adapters.decisionapi``), ``/v1/...`` is
handed to it: the decision API for Argo Rollouts, Flagger and pipelines.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from gatectl.adapters.decisionapi import MAX_BODY, DecisionAPI
from gatectl.adapters.exposition import Recorder
from gatectl.errors import UsageError

__all__ = ["Server", "parse_address", "serve"]

_log = logging.getLogger(__name__)

_TEXT = "text/plain; version=0.0.4; charset=utf-8"
_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_PLAIN = "text/plain; charset=utf-8"


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:9090"``, ``":8080"`` = every interface) to ``(host, port)``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise UsageError(f"bad listen address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9090")
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"bad listen address {address!r}: port must be 0..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or "0.0.0.0", port)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    api: DecisionAPI | None


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._probe(self.server.healthy)
        elif path == "/readyz":
            self._probe(self.server.ready)
        elif path.startswith("/v1/"):
            self._api(path, b"")
        else:
            self._send(404, _PLAIN, b"not found: try /metrics, /healthz or /readyz\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True
            self._send(413, _PLAIN, b"body missing a length or larger than 64 KiB\n")
            return
        body = self.rfile.read(int(length))
        if path.startswith("/v1/"):
            self._api(path, body)
        else:
            self._send(404, _PLAIN, b"not found\n")

    def _api(self, path: str, body: bytes) -> None:
        if self.server.api is None:
            self._send(404, _PLAIN, b"not found: try /metrics, /healthz or /readyz\n")
            return
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = self.server.api.handle(self.command, path, headers, body)
        except Exception:
            _log.exception("the decision API failed on %s %s", self.command, path)
            self._send(500, _PLAIN, b"internal error\n")
            return
        self._send(answer.status, answer.content_type, answer.body, extra=answer.headers)

    def _metrics(self) -> None:
        """Stream the exposition (chunked; gzipped when asked): never the whole text at once."""
        openmetrics = "application/openmetrics-text" in self.headers.get("Accept", "")
        try:
            chunks = self.server.recorder.exposition_chunks(openmetrics=openmetrics)
            first = next(chunks)  # the registry's own part: a failure here is still a 500
        except Exception:
            _log.exception("building /metrics failed")
            self._send(500, _PLAIN, b"internal error building metrics\n")
            return
        # 10,000 gates are ~50 MB of text; gzip level 1 shrinks it ~10x for little CPU.
        packer = None
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self.send_response(200)
        self.send_header("Content-Type", _OPENMETRICS if openmetrics else _TEXT)
        if packer is not None:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            for piece in itertools.chain((first,), chunks):
                self._chunk(packer.compress(piece) if packer is not None else piece)
            if packer is not None:
                self._chunk(packer.flush())
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:  # the scraper went away
            _log.debug("/metrics not sent whole: %s", exc)
            self.close_connection = True
        except Exception:
            _log.exception("building /metrics failed mid-way; the answer is cut short")
            self.close_connection = True  # no last chunk: the scraper sees it incomplete

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

    def _probe(self, check: Callable[[], bool]) -> None:
        try:
            ok = bool(check())
        except Exception:
            _log.exception("%s check raised; answering 503", self.path)
            ok = False
        if ok:
            self._send(200, _PLAIN, b"ok\n")
        else:
            self._send(503, _PLAIN, b"not ok\n")

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        *,
        encoding: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("%s " + format, self.address_string(), *args)


class Server:
    """A running metrics/health server; ``close()`` stops it and frees the port."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._closed = False

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The port it listens on (the one picked when asked for port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``, for tests and log lines."""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving, wait for the thread, release the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(
    address: str,
    *,
    recorder: Recorder,
    healthy: Callable[[], bool],
    ready: Callable[[], bool],
    api: DecisionAPI | None = None,
) -> Server:
    """Listen on ``address`` (``"127.0.0.1:0"`` picks a free port) on a background thread."""
    host, port = parse_address(address)
    server_class = _HTTPServer6 if ":" in host else _HTTPServer
    try:
        httpd = server_class((host, port), _Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    httpd.recorder = recorder
    httpd.healthy = healthy
    httpd.ready = ready
    httpd.api = api
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"gatectl-http-{httpd.server_address[1]}",
        daemon=True,
    )
    thread.start()
    _log.debug("serving /metrics, /healthz, /readyz on %s:%s", host, httpd.server_address[1])
    return Server(httpd, thread)
