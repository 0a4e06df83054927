"""An in-memory Kubernetes API server on 127.0.0.1 for tests of the real ``kubernetes`` client.

No API server can be installed here, so the operator's tests talk HTTP/JSON
to this one instead. It is faithful where a controller depends on it (see
``store.py``): resourceVersions, 409 on stale writes, merge / JSON / strategic
/ apply patches, the status subresource, watches with bookmarks and 410 Gone,
Kubernetes ``Status`` error bodies. Tests can inject faults
(``fail_next``), hold requests until released (``hold_next``), force a
compaction (``compact``) and read the store directly.

    with KubeAPIServer() as api:
        client = gatectl.adapters.kube.load_api_client(kubeconfig=api.kubeconfig_path)
        ...
        api.get("gatectl.io/v1alpha1", "releasegates", "default", "triage")
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from .handlers import REASONS, handle
from .resources import ResourceType
from .store import ApiError, Store

__all__ = ["Fault", "KubeAPIServer", "Request"]


@dataclass
class Fault:
    """``remaining`` requests whose method and path-with-query match get ``status``.

    With ``release``, a matching request waits until it is set (``arrived`` says one
    came), then gets ``status``, or is served as usual when ``status`` is 0.
    """

    remaining: int
    status: int
    path_contains: str | None = None
    method: str | None = None
    retry_after: float | None = None
    message: str = "injected fault"
    release: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, target: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path_contains is None or self.path_contains in target)
        )


@dataclass(frozen=True)
class Request:
    """One request the server received (for assertions on retries and calls)."""

    method: str
    path: str
    query: Mapping[str, str]
    status: int = field(default=0, compare=False)


class KubeAPIServer:
    """The server; a context manager that starts it on a free port and stops it."""

    def __init__(
        self,
        *,
        history: int = 10_000,
        bookmark_interval: float = 1.0,
        auto_namespaces: bool = True,
        token: str | None = None,
        port: int = 0,
        prune_unknown_fields: bool = True,
    ) -> None:
        self.store = Store(
            history=history, auto_namespaces=auto_namespaces, prune=prune_unknown_fields
        )
        self.bookmark_interval = bookmark_interval
        self.token = token
        self.port = port
        self.requests: list[Request] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._tmp: TemporaryDirectory[str] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> KubeAPIServer:
        handler = type("Handler", (_Handler,), {"api": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            open_connections, self._connections = list(self._connections), set()
        for connection in open_connections:  # keep-alive clients must see the server go away
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KubeAPIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def kubeconfig_path(self) -> str:
        """A kubeconfig file (context ``kubeapi``, namespace ``default``) for this server."""
        if self._tmp is None:
            self._tmp = TemporaryDirectory(prefix="kubeapi-")
        path = Path(self._tmp.name) / "kubeconfig"
        if not path.exists():
            path.write_text(yaml.safe_dump(self.kubeconfig()))
        return str(path)

    def kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig as a dict (for ``new_client_from_config_dict``)."""
        user = {"token": self.token or "kubeapi-test-token"}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubeapi", "cluster": {"server": self.url}}],
            "users": [{"name": "kubeapi", "user": user}],
            "contexts": [
                {
                    "name": "kubeapi",
                    "context": {"cluster": "kubeapi", "user": "kubeapi", "namespace": "default"},
                }
            ],
            "current-context": "kubeapi",
        }

    # -- test helpers --------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        path_contains: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
        message: str = "injected fault",
    ) -> Fault:
        """Answer the next ``n`` matching requests with ``status`` (a Status body)."""
        fault = Fault(n, status, path_contains, method, retry_after, message)
        with self._lock:
            self._faults.append(fault)
        return fault

    def hold_next(
        self,
        n: int = 1,
        *,
        path_contains: str | None = None,
        method: str | None = None,
        status: int = 0,
    ) -> Fault:
        """Hold the next ``n`` matching requests until ``fault.release`` is set.

        Then they get ``status`` (a Status body), or are served as usual with 0.
        """
        fault = Fault(n, status, path_contains, method, release=threading.Event())
        with self._lock:
            self._faults.append(fault)
        return fault

    def compact(self) -> int:
        """Drop the watch history: watches from any older resourceVersion get 410 Gone."""
        return self.store.compact()

    def get(
        self, group_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The stored object (a copy), or None; e.g. ``get("v1", "configmaps", "ns", "x")``."""
        rtype = self._type(group_version, plural)
        try:
            return self.store.get(rtype, namespace if rtype.namespaced else None, name)
        except ApiError:
            return None

    def list(
        self, group_version: str, plural: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored objects of one resource, in one namespace or all."""
        return self.store.list(self._type(group_version, plural), namespace)[0]

    def put(self, group_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite (status included) without going through HTTP."""
        rtype = self._type(group_version, plural)
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "default") if rtype.namespaced else None
        existing = self.get(group_version, plural, namespace, meta["name"])
        if existing is None:
            created = self.store.create(rtype, namespace, obj)
            if "status" not in obj:
                return created
            existing = created
        body = dict(obj, metadata=dict(meta, resourceVersion=None))
        self.store.update(rtype, namespace, meta["name"], body, status=False)
        return self.store.update(rtype, namespace, meta["name"], body, status=True)

    def _type(self, group_version: str, plural: str) -> ResourceType:
        group, _, version = group_version.rpartition("/")
        for rtype in self.store.types:
            if (rtype.group, rtype.version, rtype.plural) == (group, version, plural):
                return rtype
        raise KeyError(f"{group_version} {plural} is not served")

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, target):
                    fault.remaining -= 1
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    api: KubeAPIServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle plus the
        # client's delayed ACK add ~40 ms to every request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.api._lock:
            self.api._connections.add(self.connection)

    def finish(self) -> None:
        with self.api._lock:
            self.api._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing --------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        raw = self._read_body()
        self._request: Request | None = Request(method, split.path, query)
        try:
            fault = self.api._take_fault(method, self.path)
            if fault is not None and fault.release is not None:
                fault.arrived.set()
                while not fault.release.wait(0.05) and not self.api._stopping.is_set():
                    pass
                if fault.status == 0:
                    fault = None
            if fault is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(math.ceil(fault.retry_after))  # whole seconds
                raise ApiError(
                    fault.status,
                    REASONS.get(fault.status, "Unknown"),
                    fault.message,
                    headers=headers,
                )
            self._check_auth()
            handle(self, method, split.path, query, raw)
        except ApiError as exc:
            self._send_json(exc.status, exc.body(), headers=exc.headers)
        except OSError:  # the client (or stop()) closed the connection
            self._record(499)

    def _record(self, status: int) -> None:
        """Log the request before its answer leaves, so a test that got it sees it logged."""
        request, self._request = self._request, None
        if request is not None:
            with self.api._lock:
                self.api.requests.append(
                    Request(request.method, request.path, request.query, status)
                )

    def _check_auth(self) -> None:
        if self.api.token is None:
            return
        if self.headers.get("Authorization") != f"Bearer {self.api.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, body: Any, *, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self) -> None:
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_chunk(self, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
