"""``gatectl fallback`` is honoured whatever the gate's state: one controller pass, both stores.

File mode: a gate whose stored state is not trusted is *held* (never moved up,
lowered to its last safe share). An operator's stop must still take it to the
deterministic path at once, be written where a restart finds it (the hold
cleared, the fallback sticky), and say who asked, as any fallback does.
Kubernetes mode has no hold; a ReleaseGate whose status the controller cannot
use (none yet, or unreadable) must fall back in the pass that sees the
request, without traffic first going up to step 1.

Real parts throughout: the SQLite state store and the ``file`` actuator, the
project's test API server with the real CRD, and an (empty) real Prometheus.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Callable, Iterator
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
from gatectl.cli.main import main
from gatectl.demo.localprom import LocalPrometheus
from gatectl.engine.actuators import Actuators
from gatectl.engine.kubestore import ANNOTATIONS, KubeStore
from gatectl.engine.reconcile import ClientPool, Controller, TickReport
from gatectl.engine.statestore import StateStore
from gatectl.engine.stored import StoredGate, stored_gates
from gatectl.engine.stores import FileStore, Store

from .test_state_corruption import Setup, json_set, lower_the_router, seed

ME = pwd.getpwuid(os.getuid()).pw_name
CRD_FILE = Path(__file__).resolve().parents[2] / "charts/gatectl/crds/releasegates.gatectl.io.yaml"
GATES = ("gatectl.io/v1alpha1", "releasegates")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(tmp_path_factory.mktemp("held"), binary=binary, promtool=promtool)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def tick(store: Store, url: str, actuators: Actuators | None = None) -> TickReport:
    """One pass of a new controller (a process that starts, ticks once and exits)."""
    controller = Controller(
        store,
        clients=ClientPool(url=url),
        actuators=actuators or Actuators(),
        recorder=Recorder(registry=CollectorRegistry()),
    )

    async def once() -> TickReport:
        try:
            return await controller.tick(force=True)
        finally:
            await controller.clients.aclose()

    return asyncio.run(once())


# -- file mode ------------------------------------------------------------------------------


def file_pass(setup: Setup, url: str) -> TickReport:
    store = FileStore(setup.policies, setup.state)
    try:
        return tick(store, url)
    finally:
        store.close()


def shown(setup: Setup) -> StoredGate:
    """The gate as ``gatectl status`` and ``gatectl fallback --wait`` read it."""
    state = StateStore(setup.state, readonly=True)
    try:
        (gate,) = stored_gates(state, now=datetime.now(UTC))
        return gate
    finally:
        state.close()


def unpaused(setup: Setup) -> Setup:
    policy = setup.policies / "triage.yaml"
    policy.write_text(policy.read_text().replace("  paused: true\n", ""))
    return setup


@pytest.mark.parametrize(
    ("damage", "held_at"),
    [
        pytest.param(json_set("step", 99), 0.25, id="checksum"),
        pytest.param(lower_the_router, 0.05, id="router-lowered-by-hand"),
    ],
)
def test_a_held_gate_falls_back_at_once_and_stays_fallen_back_after_a_restart(
    tmp_path: Path,
    prometheus: str,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Setup], None],
    held_at: float,
) -> None:
    setup = unpaused(seed(tmp_path, "step2"))
    damage(setup)
    file_pass(setup, prometheus)
    assert shown(setup).held is not None
    assert setup.share() == held_at

    stop = ["fallback", "triage", "--reason", "incident 7", "--state-file", str(setup.state)]
    code = main([*stop, "--wait", "0"])
    assert code == 0, capsys.readouterr().err
    token = shown(setup).requests["fallback"]["token"]
    report = file_pass(setup, prometheus)

    assert setup.share() == 0.0
    gate = shown(setup)
    assert (gate.held, gate.hold) == (None, None)
    status: dict[str, Any] = dict(gate.status)
    assert (status["phase"], status["share"], status["step"]) == ("FallenBack", 0.0, 0)
    assert status["lastFallback"] == token
    assert status["humanFallback"] == {"by": ME, "reason": "incident 7", "at": token}
    assert status["message"] == f"fallen back by {ME}: incident 7"
    actions = [h["action"] for h in status["history"]]
    assert actions[:2] == ["held", "fallback-requested"]
    asked = status["history"][1]
    assert (asked["by"], asked["reason"], asked["share"]) == (ME, "incident 7", held_at)
    assert "default/triage" not in report.errors

    for _ in range(2):  # restarts: not held again, not undone, not acted on twice
        file_pass(setup, prometheus)
        again = shown(setup)
        assert again.held is None
        assert again.status["phase"] == "FallenBack"
        assert [h["action"] for h in again.status["history"]].count("fallback-requested") == 1
        assert setup.share() == 0.0


def test_a_fallback_already_acted_on_is_not_acted_on_again_a_new_one_is(
    tmp_path: Path, prometheus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = unpaused(seed(tmp_path, "step2"))
    stop = ["fallback", "triage", "--state-file", str(setup.state), "--wait", "0"]
    assert main([*stop, "--reason", "first"]) == 0
    file_pass(setup, prometheus)
    assert (shown(setup).status["phase"], setup.share()) == ("FallenBack", 0.0)
    json_set("fallenBack", "no")(setup)  # damaged after that fallback: held at 0
    file_pass(setup, prometheus)
    gate = shown(setup)
    assert gate.held is not None and "holding at share 0 (fallen back)" in gate.held

    assert main([*stop, "--reason", "second"]) == 0
    capsys.readouterr()
    file_pass(setup, prometheus)
    gate = shown(setup)
    assert gate.held is None
    assert gate.status["humanFallback"]["reason"] == "second"
    asked = [h["reason"] for h in gate.status["history"] if h["action"] == "fallback-requested"]
    assert asked == ["second"]  # the history before the damage is not trusted, so not kept
    assert setup.share() == 0.0


# -- Kubernetes mode --------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as server:
        crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
        server.put("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
        yield server


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(None, id="no-status-yet"),
        pytest.param({"phase": "Progressing", "share": 0.25}, id="status-unreadable"),
    ],
)
def test_a_releasegate_without_a_usable_status_falls_back_in_the_pass_that_sees_the_request(
    api: KubeAPIServer, prometheus: str, status: dict[str, Any] | None
) -> None:
    token = "2026-12-02T11:00:00Z"
    annotations = {
        ANNOTATIONS["fallback"]: token,
        ANNOTATIONS["fallback_by"]: "alice",
        ANNOTATIONS["fallback_reason"]: "incident 7",
    }
    body: dict[str, Any] = {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": "triage", "namespace": "default", "annotations": annotations},
        "spec": {
            "canary_traffic": 0.05,
            "steps": [0.05, 1.0],
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        },
    }
    if status is not None:
        body["status"] = status
    api.put(*GATES, body)
    client = load_api_client(kubeconfig=api.kubeconfig_path)
    store = KubeStore(client, namespaces=["default"], workers=1)
    store.sync()
    actuators = Actuators(resources=lambda _: Resources(client, CONFIGMAPS), kubernetes=True)
    report = tick(store, prometheus, actuators)

    assert report.errors == {}
    obj = api.get(*GATES, "default", "triage")
    assert obj is not None
    written = obj["status"]
    assert (written["phase"], written["share"], written["lastFallback"]) == (
        "FallenBack",
        0.0,
        token,
    )
    assert written["humanFallback"] == {"by": "alice", "reason": "incident 7", "at": token}
    configmap = api.get("v1", "configmaps", "default", "gatectl-triage")
    assert configmap is not None and configmap["data"]["share"] == "0"
    patched = [r for r in api.requests if r.method == "PATCH" and "configmaps" in r.path]
    assert patched == []  # created at 0: never at step 1 first
