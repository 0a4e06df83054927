"""Helpers for the operator's end-to-end tests: gates, the controller process, and an auditor.

``ControllerProcess`` runs the real ``gatectl run --kubernetes`` as a
subprocess (its log kept in a file, read on failure); ``Auditor`` polls the
traffic ConfigMap and the gate's status in a background thread while a
rollout runs, so a test can check after the fact that shares only moved one
step at a time and never before the promotion window; ``wait_for`` polls a
condition with a deadline (a failure, never a timed assertion on speed).
``Api`` is a test's view of its namespace, ``InProcess`` runs ``Controller``
and ``KubeStore`` one forced pass at a time, and the small probes below read
status, metrics and the Lease for ``wait_for``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from kubeapi.fixtures import KubeTarget

from gatectl.adapters.exposition import Recorder
from gatectl.adapters.kube import (
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    HTTPROUTES,
    LEASES,
    RELEASEGATES,
    Resources,
)
from gatectl.core.timeparse import parse_time
from gatectl.engine.actuators import Actuators
from gatectl.engine.kubestore import KubeStore
from gatectl.engine.reconcile import ClientPool, Controller, TickReport
from gatectl.errors import GatectlError, NotFoundError

__all__ = [
    "CRD_FILE",
    "Api",
    "Auditor",
    "ControllerProcess",
    "InProcess",
    "Sample",
    "WebhookSink",
    "apply_crd",
    "at_step",
    "decisions_logged",
    "deployment",
    "events_for",
    "explain",
    "free_port",
    "gatectl_cli",
    "has_started",
    "history_actions",
    "httproute",
    "in_phase",
    "is_ready",
    "jsonpath",
    "lease_holder",
    "metric_value",
    "promotion_gaps",
    "releasegate",
    "replica_counts",
    "route_weights",
    "wait_for",
    "wait_for_scrapes",
]

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "charts" / "gatectl" / "crds" / "releasegates.gatectl.io.yaml"
T = TypeVar("T")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for ``--metrics-address``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n{context()}" if context is not None else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}{extra}")


def wait_for_scrapes(url: str) -> None:
    """Prometheus scrapes live targets a few seconds after start; wait for two samples."""

    def ready() -> bool:
        response = httpx.get(
            f"{url}/api/v1/query",
            params={"query": "count_over_time(workflow_requests_total[1m])"},
            timeout=5.0,
        )
        result = response.json()["data"]["result"]
        return bool(result) and min(float(r["value"][1]) for r in result) >= 2

    wait_for(ready, timeout=30, what="two scrapes of the live exporter")


def apply_crd(crds: Resources) -> dict[str, Any]:
    """Create the chart's CRD (or leave an existing one, as on a real cluster)."""
    body = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    try:
        return crds.get(body["metadata"]["name"])
    except NotFoundError:
        return crds.create(body)


def releasegate(
    name: str,
    *,
    workflow: str | None = None,
    steps: Sequence[float] = (0.05, 0.25, 1.0),
    window: str = "3s",
    **spec: Any,
) -> dict[str, Any]:
    """A ReleaseGate with second-long windows, healthy when the canary errs under 4 %."""
    body: dict[str, Any] = {
        "workflow": workflow or name,
        "canary_traffic": steps[0],
        "steps": list(steps),
        "promotion_window": window,
        "evaluation_interval": "1s",
        "prometheus": {"scrape_interval": "1s"},  # the test Prometheus scrapes every second
        "min_samples": 10,
        "confidence": "off",  # point values: these tests are about the operator, not the bounds
        # the live exporter serves both tracks at fixed rates, not the share set
        "exposure": {"enabled": False},
        "success_criteria": {"exception_rate": "<= 0.04"},
        "rollback_trigger": ["exception_rate > 0.2", "critical_regressions > 0"],
    }
    body.update(spec)
    return {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": name},
        "spec": body,
    }


def jsonpath(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a printer column's ``.a.b.c`` path, or None."""
    value: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def history_actions(status: Mapping[str, Any]) -> list[str]:
    """The ``action`` of each history entry, oldest first."""
    return [str(h.get("action")) for h in status.get("history") or []]


def gatectl_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gatectl`` console script (the real CLI a person uses)."""
    exe = shutil.which("gatectl", path=os.path.dirname(sys.executable)) or "gatectl"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class ControllerProcess:
    """``gatectl run --kubernetes`` as a child process, logging to ``log_path``.

    ``from_args`` runs any other ``gatectl`` command line (e.g. the chart's
    Deployment's), with extra environment variables.
    """

    def __init__(
        self,
        *,
        kubeconfig: str,
        namespace: str,
        prometheus_url: str,
        log_path: Path,
        metrics_port: int | None = None,
        leader_elect: bool = False,
        identity: str | None = None,
        tick: float = 0.2,
        extra: Sequence[str] = (),
    ) -> None:
        args = [
            "run",
            "--kubernetes",
            "--kubeconfig",
            kubeconfig,
            "-n",
            namespace,
            "--prometheus-url",
            prometheus_url,
            "--tick",
            str(tick),
            *extra,
        ]
        if metrics_port is not None:
            args += ["--metrics-address", f"127.0.0.1:{metrics_port}"]
        if leader_elect:
            args += ["--leader-elect", "--lease-namespace", namespace]
            if identity:
                args += ["--identity", identity]
        self._setup(args, log_path=log_path, metrics_port=metrics_port, identity=identity)

    @classmethod
    def from_args(
        cls,
        args: Sequence[str],
        *,
        log_path: Path,
        metrics_port: int | None = None,
        identity: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ControllerProcess:
        """``gatectl ARGS`` exactly (``metrics_port``: where ARGS serve /metrics, if they do)."""
        process = cls.__new__(cls)
        process._setup(args, log_path=log_path, metrics_port=metrics_port, identity=identity)
        process.env = dict(env or {})
        return process

    def _setup(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        metrics_port: int | None,
        identity: str | None,
    ) -> None:
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.identity = identity
        exe = shutil.which("gatectl", path=os.path.dirname(sys.executable)) or "gatectl"
        self.command = [exe, *args]
        self.env: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env} if self.env else None,
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release, exactly like a node dying."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 10 s); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def get(self, path: str) -> httpx.Response:
        """GET one of the controller's endpoints (``/metrics``, ``/healthz``, ``/readyz``)."""
        assert self.metrics_port is not None
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5.0)

    def __enter__(self) -> ControllerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Sample:
    """What the auditor saw at one instant."""

    at: float
    """``time.monotonic()`` when read."""
    configmap_share: float | None
    step: int | None
    share: float | None
    step_started_at: str | None
    phase: str | None


@dataclass
class Auditor:
    """Polls a gate's traffic ConfigMap and status while a rollout runs."""

    gates: Resources
    configmaps: Resources
    namespace: str
    gate: str
    configmap: str
    interval: float = 0.05
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Auditor:
        self._thread = threading.Thread(target=self._run, name="auditor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.samples.append(self._read())  # the state the test stopped on
        return self.samples

    def _read(self) -> Sample:
        share: float | None = None
        try:
            data = self.configmaps.get(self.configmap, namespace=self.namespace).get("data") or {}
            share = float(data["share"]) if "share" in data else None
        except NotFoundError:
            pass
        status = self.gates.get(self.gate, namespace=self.namespace).get("status") or {}
        return Sample(
            at=time.monotonic(),
            configmap_share=share,
            step=status.get("step"),
            share=status.get("share"),
            step_started_at=status.get("stepStartedAt"),
            phase=status.get("phase"),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self._read())
            except GatectlError as exc:  # the API server is fine; keep polling
                self.errors.append(str(exc))

    def share_changes(self) -> list[tuple[float, float]]:
        """(first time seen, share) for each distinct consecutive ConfigMap share."""
        changes: list[tuple[float, float]] = []
        for sample in self.samples:
            if sample.configmap_share is None:
                continue
            if not changes or changes[-1][1] != sample.configmap_share:
                changes.append((sample.at, sample.configmap_share))
        return changes

    def step_starts(self) -> dict[int, set[str]]:
        """Every ``stepStartedAt`` each step was recorded with (one per step: no step twice)."""
        seen: dict[int, set[str]] = {}
        for sample in self.samples:
            if sample.step is not None and sample.step_started_at:
                seen.setdefault(sample.step, set()).add(sample.step_started_at)
        return seen


def events_for(events: Resources, *, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events about one ReleaseGate, oldest first."""
    listed = events.list(namespace=namespace)
    return [
        e
        for e in listed.items
        if (e.get("involvedObject") or {}).get("name") == name
        and (e.get("involvedObject") or {}).get("kind") == "ReleaseGate"
    ]


def promotion_gaps(status: Mapping[str, Any]) -> list[float]:
    """Seconds between each promotion and the previous start/promotion/reset in history."""
    gaps: list[float] = []
    last: datetime | None = None
    now = datetime.now().astimezone()
    for entry in status.get("history") or []:
        action = entry.get("action")
        moment = parse_time(str(entry["time"]), now=now)
        if action == "promote" and last is not None:
            gaps.append((moment - last).total_seconds())
        if action in ("start", "promote", "reset", "new-revision", "fallback"):
            last = moment
    return gaps


class WebhookSink:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# -- the tests' view of the cluster and probes ------------------------------------------------


class Api:
    """The resources a test reads and writes, in the test's namespace."""

    def __init__(self, kube: KubeTarget) -> None:
        self.ns = kube.namespace
        self.gates = kube.resources(RELEASEGATES)
        self.configmaps = kube.resources(CONFIGMAPS)
        self.events = kube.resources(EVENTS)
        self.leases = kube.resources(LEASES)
        self.routes = kube.resources(HTTPROUTES)
        self.deployments = kube.resources(DEPLOYMENTS)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.gates.create(body, namespace=self.ns)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.gates.get(name, namespace=self.ns).get("status") or {})

    def share(self, name: str) -> float | None:
        """The share in the default ConfigMap ``gatectl-NAME``, if there is one yet."""
        try:
            data = self.configmaps.get(f"gatectl-{name}", namespace=self.ns).get("data") or {}
        except Exception:
            return None
        return float(data["share"]) if "share" in data else None

    def configmap(self, name: str) -> dict[str, str]:
        return dict(self.configmaps.get(name, namespace=self.ns).get("data") or {})


def at_step(api: Api, name: str, step: int) -> bool:
    return api.status(name).get("step") == step


def has_started(process: ControllerProcess) -> bool:
    return "controller started" in process.log()


def explain(api: Api, name: str, process: ControllerProcess) -> str:
    """The gate's status and the controller's log, for a failure message."""
    return json.dumps(api.status(name), indent=1)[-3000:] + "\n" + process.log()[-6000:]


def in_phase(api: Api, name: str, phase: str) -> Any:
    """A probe: the status once it is in ``phase`` with no traffic change pending."""

    def probe() -> dict[str, Any] | None:
        status = api.status(name)
        return status if status.get("phase") == phase and "pending" not in status else None

    return probe


def httproute(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "triage-ai", "port": 80, "weight": 0},
                        {"name": "triage-rules", "port": 80, "weight": 100},
                    ]
                }
            ],
        },
    }


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


def route_weights(api: Api, name: str) -> dict[str, int]:
    route = api.routes.get(name, namespace=api.ns)
    return {
        ref["name"]: ref.get("weight")
        for rule in route["spec"]["rules"]
        for ref in rule["backendRefs"]
    }


def replica_counts(api: Api, *names: str) -> tuple[int, ...]:
    return tuple(api.deployments.get(n, namespace=api.ns)["spec"]["replicas"] for n in names)


def decisions_logged(process: ControllerProcess) -> int:
    return process.log().count('"msg": "decision"')


def metric_value(process: ControllerProcess, name: str, **labels: str) -> float | None:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in process.get("/metrics").text.splitlines():
        if line.startswith(name) and line[len(name)] in "{ " and all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    return None


def is_ready(process: ControllerProcess) -> bool:
    try:
        return process.get("/readyz").status_code == 200
    except httpx.HTTPError:  # not listening yet
        return False


def lease_holder(api: Api) -> str | None:
    try:
        lease = api.leases.get("gatectl-leader", namespace=api.ns)
    except Exception:
        return None
    return (lease.get("spec") or {}).get("holderIdentity") or None


class InProcess:
    """``Controller`` + ``KubeStore`` in this process, one forced pass per ``tick()``.

    No watch thread: ``tick()`` re-lists first (a fresh read), ``tick(sync=False)``
    decides from what was read before, as a controller racing an edit would.
    """

    def __init__(self, kube: KubeTarget, prometheus: str) -> None:
        kinds = {"configmaps": CONFIGMAPS, "deployments": DEPLOYMENTS, "httproutes": HTTPROUTES}
        self.store = KubeStore(kube.api_client, namespaces=[kube.namespace])
        self.recorder = Recorder()
        self.controller = Controller(
            self.store,
            clients=ClientPool(url=prometheus),
            actuators=Actuators(resources=lambda k: kube.resources(kinds[k]), kubernetes=True),
            recorder=self.recorder,
        )
        self.loop = asyncio.new_event_loop()

    def tick(self, *, sync: bool = True) -> TickReport:
        if sync:
            self.store.sync()
        return self.loop.run_until_complete(self.controller.tick(force=True))

    def close(self) -> None:
        self.loop.run_until_complete(self.controller.clients.aclose())
        self.loop.close()
