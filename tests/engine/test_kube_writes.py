"""Kubernetes mode's writes run on the store's worker pool, off the event loop (issue 12).

Against the project's test API server, which can hold one request until the
test releases it (a real API server cannot hang on cue), and a real
Prometheus: one gate whose status write hangs holds one worker while the
other gates' writes go on; the pass returns only once the held write is done;
each gate's traffic moves before its status is written; an unchanged status
is not written again; the cache keeps no managedFields nor last-applied copy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi.server import KubeAPIServer
from prometheus_client import CollectorRegistry
from support.prometheus import require_prometheus

from gatectl.adapters.exposition import Recorder
from gatectl.adapters.kube import CONFIGMAPS, Resources, load_api_client
from gatectl.demo.localprom import LocalPrometheus
from gatectl.engine.actuators import Actuators
from gatectl.engine.kubestore import LAST_APPLIED, KubeStore
from gatectl.engine.reconcile import ClientPool, Controller, TickReport
from gatectl.engine.workers import INLINE, WorkerPool, runner_of

CRD_FILE = Path(__file__).resolve().parents[2] / "charts/gatectl/crds/releasegates.gatectl.io.yaml"
GATES = ("gatectl.io/v1alpha1", "releasegates")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GUARD = 60.0  # seconds before a wait that never ends fails the test (never an assertion on time)


def releasegate(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {
            "workflow": name,
            "canary_traffic": 0.05,
            "steps": [0.05, 1.0],
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        },
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("kube-writes"), binary=binary, promtool=promtool
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def api() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as server:
        crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
        server.put("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
        yield server


class Rig:
    """A controller on a KubeStore with ``workers`` threads; ``start()`` runs one pass in a thread."""

    def __init__(self, api: KubeAPIServer, prometheus: str, *, workers: int = 2) -> None:
        client = load_api_client(kubeconfig=api.kubeconfig_path)
        self.store = KubeStore(client, namespaces=["default"], workers=workers)
        self.controller = Controller(
            self.store,
            clients=ClientPool(url=prometheus),
            actuators=Actuators(resources=lambda _: Resources(client, CONFIGMAPS), kubernetes=True),
            recorder=Recorder(registry=CollectorRegistry()),
            clock=lambda: NOW,
        )

    def start(self) -> Future[TickReport]:
        self.store.sync()
        done: Future[TickReport] = Future()

        async def once() -> TickReport:
            try:
                return await self.controller.tick(force=True)
            finally:
                await self.controller.clients.aclose()

        def run() -> None:
            try:
                done.set_result(asyncio.run(once()))
            except BaseException as exc:
                done.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        return done

    def tick(self) -> TickReport:
        return self.start().result(timeout=GUARD)


def eventually(what: str, check: Callable[[], bool]) -> None:
    """Wait for ``check()``; fail after GUARD seconds (a hang, not a slow run)."""
    deadline = time.monotonic() + GUARD
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}", pytrace=False)
        time.sleep(0.02)


def status_of(api: KubeAPIServer, name: str) -> dict[str, Any]:
    obj = api.get(*GATES, "default", name)
    assert obj is not None
    return dict(obj.get("status") or {})


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(0, id="held-then-served"),
        pytest.param(500, id="held-then-500-and-retried"),
    ],
)
def test_a_hanging_status_write_holds_one_worker_and_the_pass_waits_for_it(
    api: KubeAPIServer, prometheus: str, answer: int
) -> None:
    names = [f"gate-{i}" for i in range(6)]
    for name in names:
        api.put(*GATES, releasegate(name))
    rig = Rig(api, prometheus, workers=2)
    held = api.hold_next(path_contains="/releasegates/gate-0/status", method="PUT", status=answer)

    pass_ = rig.start()
    assert held.arrived.wait(GUARD), "gate-0's status write never came"
    eventually(
        "the other gates' statuses written", lambda: all(status_of(api, n) for n in names[1:])
    )
    assert status_of(api, "gate-0") == {}
    assert not pass_.done(), "the pass returned with a write still in flight"

    assert held.release is not None
    held.release.set()
    report = pass_.result(timeout=GUARD)
    assert report.errors == {}
    assert status_of(api, "gate-0")["phase"] == "Progressing"
    assert {n: status_of(api, n)["share"] for n in names} == dict.fromkeys(names, 0.05)


def test_each_gate_moves_traffic_before_its_status_is_written(
    api: KubeAPIServer, prometheus: str
) -> None:
    names = [f"gate-{i}" for i in range(6)]
    for name in names:
        api.put(*GATES, releasegate(name))
    Rig(api, prometheus, workers=3).tick()
    paths = [(r.method, r.path) for r in api.requests]
    for name in names:
        traffic = paths.index(("GET", f"/api/v1/namespaces/default/configmaps/gatectl-{name}"))
        created = paths.index(("POST", "/api/v1/namespaces/default/configmaps"), traffic)
        written = paths.index(
            ("PUT", f"/apis/gatectl.io/v1alpha1/namespaces/default/releasegates/{name}/status")
        )
        assert traffic < created < written, name
        assert api.get("v1", "configmaps", "default", f"gatectl-{name}") is not None


def test_an_unchanged_status_is_not_written_again(api: KubeAPIServer, prometheus: str) -> None:
    for name in ("a", "b", "c"):
        api.put(*GATES, releasegate(name))
    rig = Rig(api, prometheus)
    rig.tick()
    before = len(api.requests)
    assert rig.tick().errors == {}
    writes = [r for r in api.requests[before:] if r.method != "GET"]
    assert writes == []


def test_the_cache_keeps_no_managed_fields_nor_last_applied_copy(
    api: KubeAPIServer, prometheus: str
) -> None:
    annotations = {LAST_APPLIED: '{"spec": "a whole copy"}', "gatectl.io/paused": "true"}
    managed = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]
    api.put(*GATES, releasegate("a", annotations=annotations, managedFields=managed))
    rig = Rig(api, prometheus)
    rig.tick()
    (entry,) = rig.store.list_gates()
    meta = entry.handle["metadata"]
    assert "managedFields" not in meta
    assert meta["annotations"] == {"gatectl.io/paused": "true"}
    assert entry.requests.paused
    assert entry.status["phase"] == "Paused"
    stored = api.get(*GATES, "default", "a")
    assert stored is not None
    assert stored["metadata"]["annotations"] == annotations  # the status write kept them


def test_the_file_store_runs_inline_and_the_kube_store_on_its_pool(api: KubeAPIServer) -> None:
    store = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path), workers=3)
    assert isinstance(store.io, WorkerPool) and store.io.size == 3
    assert runner_of(store) is store.io
    assert runner_of(object()) is INLINE


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="needs at least one") as raised:
        WorkerPool(0)
    assert str(raised.value) == "a worker pool needs at least one worker, got 0"
