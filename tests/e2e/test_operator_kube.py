"""The Kubernetes operator end to end: the real controller, a real Prometheus, live traffic.

``gatectl run --kubernetes`` runs as a subprocess (or ``Controller`` +
``KubeStore`` in-process where a test needs to step through one pass at a
time) against the test API server of ``tests/kubeapi`` with the chart's CRD
applied, reading a real Prometheus that scrapes ``LiveWorkflows`` every
second. Windows are seconds long (``promotion_window: 3s``,
``evaluation_interval: 1s``, ``--tick 0.2``), so a whole rollout takes a few
seconds. With ``GATECTL_TEST_KUBECONFIG`` set, the same tests run against a
real cluster (the CRD must be installed there); the ones that inject faults
into the API server are skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi.fixtures import KubeTarget, kube_api
from support.live import LiveWorkflows, Traffic

from e2e.kube_support import (
    CRD_FILE,
    Auditor,
    ControllerProcess,
    apply_crd,
    free_port,
    history_actions,
    jsonpath,
    promotion_gaps,
    releasegate,
    wait_for,
)
from gatectl.kube import (
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    EVENTS,
    HTTPROUTES,
    LEASES,
    RELEASEGATES,
)
from gatectl.localprom import LocalPrometheus, find_binaries

__all__ = ["kube_api"]

pytestmark = [pytest.mark.prometheus]

WINDOW = 3.0
"""Seconds of ``promotion_window`` in every gate here."""
HEALTHY = Traffic(requests_per_second=200.0, exception_rate=0.01, override_rate=0.02)
WORKFLOWS = [
    "walk",
    "regress",
    "route",
    "replicas",
    "approval",
    "paused",
    "blind-a",
    "blind-b",
    "crash",
    "leader",
    "conflict",
    "invalid-ok",
    "metrics",
]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveWorkflows]:
    """One exporter for the module: every workflow healthy until a test says otherwise."""
    with LiveWorkflows(dict.fromkeys(WORKFLOWS, HEALTHY)) as workflows:
        yield workflows


@pytest.fixture(scope="module")
def prometheus(live: LiveWorkflows, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping ``live`` every second, with data already in it."""
    found = find_binaries()
    assert found is not None, "the prometheus marker skips or fails before this"
    server = LocalPrometheus(
        tmp_path_factory.mktemp("operator-prometheus"),
        binary=found[0],
        promtool=found[1],
        scrape_targets=[live.target],
        scrape_interval="1s",
    )
    server.start()
    try:
        _wait_for_scrapes(server.url)
        yield server.url
    finally:
        server.stop()


def _wait_for_scrapes(url: str) -> None:
    """Prometheus scrapes live targets a few seconds after start; wait for two samples."""
    import httpx

    def ready() -> bool:
        response = httpx.get(
            f"{url}/api/v1/query",
            params={"query": "count_over_time(workflow_requests_total[1m])"},
            timeout=5.0,
        )
        result = response.json()["data"]["result"]
        return bool(result) and min(float(r["value"][1]) for r in result) >= 2

    wait_for(ready, timeout=30, what="two scrapes of the live exporter")


@pytest.fixture
def kube(kube_api: KubeTarget) -> KubeTarget:
    """The API (test server or cluster) with the chart's CRD applied through the API."""
    apply_crd(kube_api.resources(CRDS))
    kube_api.require_crd("releasegates.gatectl.io")
    return kube_api


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


@pytest.fixture
def api(kube: KubeTarget) -> Api:
    return Api(kube)


@pytest.fixture
def controller(kube: KubeTarget, prometheus: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    """``gatectl run --kubernetes`` on the test's namespace, with /metrics on a free port."""
    process = ControllerProcess(
        kubeconfig=kube.kubeconfig,
        namespace=kube.namespace,
        prometheus_url=prometheus,
        log_path=tmp_path / "controller.log",
        metrics_port=free_port(),
    )
    with process:
        yield process


def _phase(api: Api, name: str, phase: str) -> Any:
    """A probe: the status once it is in ``phase`` with no traffic change pending."""

    def probe() -> dict[str, Any] | None:
        status = api.status(name)
        return status if status.get("phase") == phase and "pending" not in status else None

    return probe


# -- a rollout ------------------------------------------------------------------------------


def test_gate_walks_every_step_with_status_configmap_and_printer_columns(
    api: Api, controller: ControllerProcess
) -> None:
    api.create(releasegate("walk"))
    auditor = Auditor(api.gates, api.configmaps, api.ns, "walk", "gatectl-walk").start()
    try:
        status = wait_for(
            _phase(api, "walk", "Promoted"),
            timeout=40,
            what="walk promoted to 1.0",
            context=controller.log,
        )
    finally:
        auditor.stop()
    assert (status["step"], status["share"]) == (3, 1.0)
    obj = api.gates.get("walk", namespace=api.ns)
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert history_actions(status).count("promote") == 2
    assert all(gap >= WINDOW for gap in promotion_gaps(status)), promotion_gaps(status)
    shares = [share for _, share in auditor.share_changes()]
    assert shares == [0.05, 0.25, 1.0]
    assert api.configmap("gatectl-walk")["share_mode"] == "ai"
    changes = auditor.share_changes()
    assert all(b[0] - a[0] >= WINDOW - 0.3 for a, b in itertools.pairwise(changes))
    assert {step: len(starts) for step, starts in auditor.step_starts().items()} == {
        1: 1,
        2: 1,
        3: 1,
    }
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    missing = [c["name"] for c in columns if jsonpath(obj, c["jsonPath"]) is None]
    assert missing == [], f"printer columns with no value: {missing}"
    assert jsonpath(obj, ".status.lastDecision.action") == "promote"
