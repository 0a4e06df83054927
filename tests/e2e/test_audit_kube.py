"""The stop button on Kubernetes: a healthy gate falls back at once, for who the API says.

The real ``gatectl run --kubernetes`` runs against the test API server and a
real kube-apiserver, reading a real Prometheus that scrapes a live exporter
whose workflows stay healthy. ``gatectl fallback`` records the caller the API
server authenticated (SelfSubjectReview), not a name typed on the command
line; the controller moves the gate's ConfigMap to 0 within a tick, keeps it
there, and writes a record naming that user to its audit log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubeapi.fixtures import KubeTarget, kube_api  # noqa: F401
from support.live import LiveWorkflows, Traffic
from support.prometheus import require_prometheus

from e2e.kube_support import (
    Api,
    ControllerProcess,
    apply_crd,
    gatectl_cli,
    releasegate,
    wait_for,
)
from gatectl.adapters.kube import CRDS
from gatectl.adapters.kube.identity import whoami
from gatectl.core.chain import verify
from gatectl.demo.localprom import LocalPrometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    binary, promtool = require_prometheus()
    with LiveWorkflows(dict.fromkeys(("halt", "pay"), Traffic())) as live:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            server = LocalPrometheus(
                Path(scratch),
                binary=binary,
                promtool=promtool,
                scrape_targets=[live.target],
                scrape_interval="1s",
            )
            server.start()
            try:
                wait_for(lambda: _scraped(server.url), timeout=30, what="two scrapes")
                yield server.url
            finally:
                server.stop()


def _scraped(url: str) -> bool:
    answer = httpx.get(
        f"{url}/api/v1/query", params={"query": "count_over_time(workflow_requests_total[1m])"}
    ).json()
    result = answer["data"]["result"]
    return bool(result) and min(float(r["value"][1]) for r in result) >= 2


@pytest.fixture
def kube(kube_api: KubeTarget) -> KubeTarget:  # noqa: F811
    apply_crd(kube_api.resources(CRDS))
    kube_api.require_crd("releasegates.gatectl.io")
    return kube_api


def gate(name: str, workflow: str) -> dict[str, object]:
    return releasegate(name, workflow=workflow, prometheus={"scrape_interval": "1s"})


def test_the_stop_button_falls_a_healthy_gate_back_for_the_authenticated_caller(
    kube: KubeTarget, prometheus: str, tmp_path: Path
) -> None:
    api = Api(kube)
    api.create(gate("halt", "halt"))
    api.create(gate("pay-eu", "pay"))
    api.create(gate("pay-us", "pay"))
    log = tmp_path / "audit.jsonl"
    process = ControllerProcess(
        kubeconfig=kube.kubeconfig,
        namespace=kube.namespace,
        prometheus_url=prometheus,
        log_path=tmp_path / "controller.log",
        extra=("--audit-log", str(log)),
    )
    me = whoami(kube.api_client)
    with process:
        wait_for(
            lambda: api.status("halt").get("step") == 2,
            timeout=60,
            what="halt at step 2 (healthy)",
            context=process.log,
        )
        done = gatectl_cli(
            "fallback", "halt", "--reason", "harm seen", "--kubeconfig", kube.kubeconfig,
            "-n", kube.namespace,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr + process.log()
        assert done.stdout == (
            f"fell back {kube.namespace}/halt: traffic at 0% (by {me}: harm seen)\n"
        )
        assert api.share("halt") == 0.0
        annotations = api.gates.get("halt", namespace=kube.namespace)["metadata"]["annotations"]
        assert annotations["gatectl.io/fallback-by"] == me
        time.sleep(4 * 3)  # four promotion windows of healthy metrics
        status = api.status("halt")
        assert (status["share"], status["phase"]) == (0.0, "FallenBack")
        assert status["humanFallback"]["by"] == me
        assert api.share("halt") == 0.0

        both = gatectl_cli(
            "fallback", "--workflow", "pay", "--reason", "incident", "--kubeconfig",
            kube.kubeconfig, "-n", kube.namespace,
        )  # fmt: skip
        assert both.returncode == 0, both.stdout + both.stderr
        assert [api.share(g) for g in ("pay-eu", "pay-us")] == [0.0, 0.0]
    lines = log.read_bytes().splitlines(keepends=True)
    assert verify(lines).intact
    human = [json.loads(line) for line in lines if b'"kind":"human"' in line]
    assert {(r["gate"], r["actor"], r["action"]) for r in human} == {
        ("halt", me, "fallback"),
        ("pay-eu", me, "fallback"),
        ("pay-us", me, "fallback"),
    }
