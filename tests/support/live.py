"""A real exporter of workflow metrics for a real Prometheus to scrape, with traffic we steer.

Serves ``workflow_requests_total``, ``workflow_exceptions_total``,
``workflow_human_overrides_total``, ``workflow_critical_regressions_total``
and ``workflow_reviewer_queue_sla_breached`` (PRODUCT.md §3) on 127.0.0.1
from its own registry. A background thread adds traffic every 100 ms at the
rates set for each workflow and track; tests change the rates mid-run
(``set_traffic``), inject a regression or an SLA breach. Deterministic: the
counts are exact fractions of the request rate, no randomness.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ["LiveWorkflows", "Traffic"]


@dataclass
class Traffic:
    """Per-second request rate and the shares of them that go wrong."""

    requests_per_second: float = 100.0
    exception_rate: float = 0.01
    override_rate: float = 0.05


class LiveWorkflows:
    """An HTTP exporter on 127.0.0.1 whose counters grow while it runs."""

    def __init__(self, workflows: dict[str, Traffic], *, baseline: Traffic | None = None) -> None:
        self.registry = CollectorRegistry()
        labels = ["workflow", "track", "pod"]
        self.requests = Counter("workflow_requests", "Requests.", labels, registry=self.registry)
        self.exceptions = Counter(
            "workflow_exceptions", "Exceptions.", labels, registry=self.registry
        )
        self.overrides = Counter(
            "workflow_human_overrides", "Human overrides.", labels, registry=self.registry
        )
        self.regressions = Counter(
            "workflow_critical_regressions", "Critical regressions.", labels, registry=self.registry
        )
        self.sla = Gauge(
            "workflow_reviewer_queue_sla_breached",
            "SLA breached (0/1).",
            ["workflow"],
            registry=self.registry,
        )
        self._traffic: dict[tuple[str, str], Traffic] = {}
        self._lock = threading.Lock()
        for workflow, traffic in workflows.items():
            self._traffic[(workflow, "canary")] = traffic
            self._traffic[(workflow, "baseline")] = baseline or Traffic()
            for track in ("canary", "baseline"):
                for pod in ("a", "b"):
                    for metric in (
                        self.requests,
                        self.exceptions,
                        self.overrides,
                        self.regressions,
                    ):
                        metric.labels(workflow, track, pod)
            self.sla.labels(workflow).set(0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.port = 0

    @property
    def workflows(self) -> list[str]:
        """The workflows it serves, in the order given."""
        return list(dict.fromkeys(workflow for workflow, _ in self._traffic))

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT`` for Prometheus to scrape."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> LiveWorkflows:
        """Serve and start adding traffic."""
        server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self._server = server
        self.port = server.server_port
        self._thread = threading.Thread(target=self._run, name="live-workflows", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop traffic and the HTTP server."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> LiveWorkflows:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_traffic(self, workflow: str, traffic: Traffic, *, track: str = "canary") -> None:
        """Change a workflow's rates from now on."""
        with self._lock:
            self._traffic[(workflow, track)] = traffic

    def regression(self, workflow: str, count: int = 1) -> None:
        """Count critical regressions on the canary track."""
        self.regressions.labels(workflow, "canary", "a").inc(count)

    def sla_breached(self, workflow: str, breached: bool = True) -> None:
        """Raise or clear the reviewer-queue SLA breach gauge."""
        self.sla.labels(workflow).set(1 if breached else 0)

    def _run(self) -> None:
        period = 0.1
        last = time.monotonic()
        while not self._stop.wait(period):
            now = time.monotonic()
            elapsed, last = now - last, now
            with self._lock:
                items = list(self._traffic.items())
            for (workflow, track), traffic in items:
                per_pod = traffic.requests_per_second * elapsed / 2
                for pod in ("a", "b"):
                    self.requests.labels(workflow, track, pod).inc(per_pod)
                    self.exceptions.labels(workflow, track, pod).inc(
                        per_pod * traffic.exception_rate
                    )
                    self.overrides.labels(workflow, track, pod).inc(per_pod * traffic.override_rate)
