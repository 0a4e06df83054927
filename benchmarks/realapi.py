"""A real etcd + kube-apiserver for the fleet benchmarks, with the in-process server's interface.

``fleet_shards.py --api real`` uses it instead of the project's test API
server (``tests/kubeapi``), which serves every request in the benchmark's own
Python process and was the bottleneck at 10,000 gates. The control plane is
the realkube tests' own (``tests/support/controlplane.py``: binaries built by
``scripts/kube-binaries.sh`` and cached in ``~/.cache/gatectl``, everything on
127.0.0.1, an admin token in ``system:masters``). The replicas use the admin
kubeconfig: RBAC is enforced, but the chart's own Role is tested elsewhere
(``tests/realkube/test_chart_shards_rbac.py``).

For a long run with many writes: etcd's quota is raised (a wave of 30,000
status writes is ~100 MB of revisions) and the API server compacts every
minute instead of every five.
"""

from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fleet import cpu_seconds, peak_rss_mb  # noqa: E402
from support.controlplane import ControlPlane, find_binaries  # noqa: E402

__all__ = ["RealKube"]

PAGE = 2000  # objects a list page
CREATORS = 16  # concurrent creates: the API server, not this process, should be the limit


class RealKube:
    """``put``/``list``/``kubeconfig_path`` as ``KubeAPIServer`` has them, on a real server."""

    def __init__(self) -> None:
        self.plane = ControlPlane(
            find_binaries(),
            extra_apiserver_args=["--etcd-compaction-interval=1m"],
            etcd_quota_bytes=4 * 1024**3,
        )
        self.http: httpx.Client | None = None

    def __enter__(self) -> RealKube:
        started = time.perf_counter()
        self.plane.start()
        self.http = httpx.Client(
            base_url=self.plane.url,
            verify=str(self.plane.ca_file),
            headers={"Authorization": f"Bearer {self.plane.admin_token}"},
            timeout=120,
            limits=httpx.Limits(max_connections=CREATORS, max_keepalive_connections=CREATORS),
        )
        print(f"etcd + kube-apiserver ready in {time.perf_counter() - started:.1f}s", flush=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.http is not None:
            self.http.close()
        self.plane.stop()

    @property
    def kubeconfig_path(self) -> str:
        return str(self.plane.kubeconfig)

    def _client(self) -> httpx.Client:
        assert self.http is not None, "not started"
        return self.http

    @staticmethod
    def _path(group_version: str, plural: str, namespace: str | None) -> str:
        root = "/api" if "/" not in group_version else "/apis"
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{root}/{group_version}{where}/{plural}"

    def put(self, group_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``; a CRD is waited for until Established."""
        path = self._path(group_version, plural, obj["metadata"].get("namespace"))
        response = self._client().post(path, json=obj)
        if response.status_code not in (200, 201):
            sys.exit(f"POST {path}: {response.status_code} {response.text[:300]}")
        created: dict[str, Any] = response.json()
        if plural == "customresourcedefinitions":
            self._established(f"{path}/{obj['metadata']['name']}")
        return created

    def _established(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = self._client().get(path).json().get("status") or {}
            conditions = status.get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return
            time.sleep(0.2)
        sys.exit(f"{path} not Established within 60 s")

    def create_all(self, group_version: str, plural: str, objs: list[dict[str, Any]]) -> float:
        """Create every object, ``CREATORS`` at once; returns the seconds it took."""
        started = time.perf_counter()
        with ThreadPoolExecutor(CREATORS) as pool:
            for _ in pool.map(lambda o: self.put(group_version, plural, o), objs):
                pass
        return time.perf_counter() - started

    def list(self, group_version: str, plural: str) -> list[dict[str, Any]]:
        """Every object, in pages of ``PAGE`` (one list of 30,000 gates, ~150 MB, outlived the
        API server's 60 s request timeout on a loaded machine); a page that fails is asked
        again, a few times."""
        path = self._path(group_version, plural, None)
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"limit": str(PAGE), **({"continue": token} if token else {})}
            for attempt in range(5):
                try:
                    response = self._client().get(path, params=params)
                    response.raise_for_status()
                    body = response.json()
                    break
                except (httpx.HTTPError, ValueError) as error:
                    if attempt == 4:
                        raise
                    print(f"listing {plural}: {error}: again", flush=True)
                    time.sleep(2)
            items.extend(body["items"])
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def writes(self) -> dict[str, int]:
        """Requests served that change ReleaseGates, by verb and subresource (its /metrics)."""
        text = self._client().get("/metrics").text
        found: dict[str, int] = {}
        for line in text.splitlines():
            if (
                not line.startswith("apiserver_request_total{")
                or 'resource="releasegates"' not in line
            ):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if labels.get("verb") in ("POST", "PUT", "PATCH", "APPLY", "DELETE"):
                key = (
                    f"{labels['verb']} {labels.get('subresource') or 'object'} {labels.get('code')}"
                )
                found[key] = found.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
        return found

    def usage(self) -> dict[str, tuple[float, float]]:
        """(CPU seconds, peak RSS MB) of etcd and kube-apiserver so far."""
        found = {}
        for name, process, _ in self.plane._processes:
            if process.poll() is None and os.path.exists(f"/proc/{process.pid}"):
                found[name] = (cpu_seconds(process.pid), peak_rss_mb(process.pid))
        return found
