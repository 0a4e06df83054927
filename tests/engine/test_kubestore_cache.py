"""KubeStore validates a ReleaseGate once per spec, not on every pass, and caches it slim (issue 12).

Against the project's test API server: a status write changes the object's
resourceVersion but not its generation, so the next ``list_gates`` hands back
the very same validated Gate; a spec change (a new generation) is validated
again, and an invalid spec keeps its message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi.fixtures import KubeTarget, kube_api  # noqa: F401
from kubeapi.server import KubeAPIServer
from realkube.fixtures import real_kube  # noqa: F401

from gatectl.adapters.kube import RELEASEGATES, Resources, load_api_client
from gatectl.core.packed import PackedHistory
from gatectl.engine import kubestore
from gatectl.engine.kubestore import LAST_APPLIED, KubeStore

CRD_FILE = Path(__file__).resolve().parents[2] / "charts/gatectl/crds/releasegates.gatectl.io.yaml"
GATES = ("gatectl.io/v1alpha1", "releasegates")


def releasegate(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "workflow": name,
        "canary_traffic": 0.05,
        "steps": [0.05, 1.0],
        "promotion_window": "1h",
        "success_criteria": {"exception_rate": "<= 0.04"},
    }
    body.update(spec)
    return {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }


@pytest.fixture
def api() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as server:
        crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
        server.put("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
        yield server


def test_a_status_write_does_not_revalidate_the_gate(api: KubeAPIServer) -> None:
    api.put(*GATES, releasegate("triage"))
    store = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    store.sync()
    (first,) = store.list_gates()
    assert first.gate is not None
    written = store.write_status(first, {"phase": "Progressing", "step": 1})
    (second,) = store.list_gates()
    assert (
        second.handle["metadata"]["resourceVersion"] != first.handle["metadata"]["resourceVersion"]
    )
    assert second.status == written.status == {"phase": "Progressing", "step": 1}
    assert second.gate is first.gate  # the same validated object: no pydantic pass


def test_the_watch_s_echo_of_a_status_write_is_not_kept_again(
    api: KubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.put(*GATES, releasegate("triage"))
    store = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    store.sync()
    (entry,) = store.list_gates()
    written = store.write_status(entry, {"phase": "Progressing", "step": 1})
    slimmed: list[str] = []
    real_slim = kubestore.slim

    def counting(obj: dict[str, Any]) -> dict[str, Any]:
        slimmed.append(obj["metadata"]["resourceVersion"])
        return real_slim(obj)

    monkeypatch.setattr(kubestore, "slim", counting)
    echo = api.get(*GATES, "default", "triage")
    assert echo is not None
    assert echo["metadata"]["resourceVersion"] == written.handle["metadata"]["resourceVersion"]
    store._apply("MODIFIED", echo)  # what the watch delivers after the PUT's answer
    older = dict(echo, metadata=dict(echo["metadata"], resourceVersion="1"))
    store._apply("MODIFIED", older)
    assert slimmed == []
    (after,) = store.list_gates()
    assert after.handle is written.handle
    newer = dict(echo, metadata=dict(echo["metadata"], resourceVersion="999999"))
    store._apply("MODIFIED", newer)
    assert slimmed == ["999999"]
    assert store.list_gates()[0].handle["metadata"]["resourceVersion"] == "999999"


def test_a_spec_change_is_validated_again(api: KubeAPIServer) -> None:
    api.put(*GATES, releasegate("triage"))
    store = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    store.sync()
    (first,) = store.list_gates()
    api.put(*GATES, releasegate("triage", steps=[0.05, 0.5, 1.0]))
    store.sync()
    (second,) = store.list_gates()
    assert first.gate is not None and second.gate is not None
    assert (first.gate.spec.shares, second.gate.spec.shares) == ((0.05, 1.0), (0.05, 0.5, 1.0))
    api.put(*GATES, releasegate("triage", steps=[0.5, 0.05]))
    store.sync()
    (third,) = store.list_gates()
    assert third.gate is None
    assert third.error is not None and "steps" in third.error


def _one_gate(
    kube_api: KubeTarget,  # noqa: F811
    metadata: dict[str, Any],
) -> tuple[Resources, dict[str, Any], dict[str, Any], KubeStore]:
    """One ReleaseGate created in the test's namespace: (its API, what was sent, what the
    server answered, a synced store)."""
    kube_api.require_crd("releasegates.gatectl.io")
    gates = kube_api.resources(RELEASEGATES)
    body = releasegate(str(metadata["name"]))
    body["metadata"] = metadata
    created = gates.create(body, namespace=kube_api.namespace)
    store = KubeStore(kube_api.api_client, namespaces=[kube_api.namespace])
    store.sync()
    return gates, body, created, store


@pytest.mark.parametrize("kube_api", ["fake", "real"], indirect=True)
def test_a_status_write_from_the_slim_cache_keeps_managed_fields_and_annotations(
    kube_api: KubeTarget,  # noqa: F811
) -> None:
    """The cache drops managedFields and the last-applied copy; the server keeps both."""
    annotations = {LAST_APPLIED: '{"spec": "a copy"}', "team": "triage"}
    gates, body, created, store = _one_gate(kube_api, {"name": "slim", "annotations": annotations})
    (entry,) = store.list_gates()
    meta = entry.handle["metadata"]
    assert "managedFields" not in meta
    assert meta["annotations"] == {"team": "triage"}
    store.write_status(entry, {"phase": "Progressing", "step": 1})
    stored = gates.get("slim", namespace=kube_api.namespace)
    assert stored["status"] == {"phase": "Progressing", "step": 1}
    assert stored["metadata"]["annotations"] == body["metadata"]["annotations"]
    assert bool(stored["metadata"].get("managedFields")) == bool(
        created["metadata"].get("managedFields")
    )
    assert stored["spec"] == created["spec"]


@pytest.mark.parametrize("kube_api", ["fake", "real"], indirect=True)
def test_the_cache_keeps_a_status_history_packed_and_writes_it_as_json(
    kube_api: KubeTarget,  # noqa: F811
) -> None:
    """A history is kept compressed (decoded when read) and still reaches the server whole."""
    gates, _, _, store = _one_gate(kube_api, {"name": "packed"})
    (entry,) = store.list_gates()
    history = [
        {"time": "2026-12-02T16:14:00Z", "action": "start"},
        {
            "time": "2026-12-02T16:20:00Z",
            "action": "hold",
            "reasons": ["needs ~825 more requests"],
            "evidence": {"samples": 500.0, "criteria": [{"metric": "exception_rate"}]},
        },
    ]
    store.write_status(entry, {"phase": "Progressing", "step": 1, "history": history})
    (cached,) = store.list_gates()
    assert isinstance(cached.status["history"], PackedHistory)
    assert cached.status["history"] == history
    # The controller writes back what it read, history as kept: JSON on the wire.
    store.write_status(cached, {**cached.status, "phase": "Holding"})
    stored = gates.get("packed", namespace=kube_api.namespace)
    assert stored["status"]["history"] == history
    assert stored["status"]["phase"] == "Holding"
    # Kept cold (another replica's gate) and expanded again: the same history.
    assert store.list_acted(lambda e: e.name, lambda keys: frozenset()) == []
    (again,) = store.list_acted(lambda e: e.name, frozenset)
    assert again.status == stored["status"]


def test_the_cache_keeps_objects_compact_strings_shared_across_gates(api: KubeAPIServer) -> None:
    """Equal strings of different cached objects are one object (``compact``), values unchanged."""
    for name in ("one", "two"):
        api.put(*GATES, releasegate(name, promotion_window="2h"))
    store = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    store.sync()
    one, two = store.list_gates()
    assert one.handle["spec"]["promotion_window"] is two.handle["spec"]["promotion_window"]
    assert one.handle["kind"] is two.handle["kind"]
    body = {"phase": "Progressing", "step": 1, "message": "warming up"}
    written = [store.write_status(e, dict(body)) for e in (one, two)]
    assert written[0].status == written[1].status == body
    assert written[0].status["message"] is written[1].status["message"]
    again = store.list_gates()
    assert [e.status for e in again] == [body, body]
    assert again[0].status["message"] is again[1].status["message"]
    stored = api.list(*GATES)
    assert [o["status"] for o in stored] == [body, body]


def test_the_watch_goes_on_from_the_first_list_without_listing_the_fleet_again(
    api: KubeAPIServer,
) -> None:
    for name in ("one", "two"):
        api.put(*GATES, releasegate(name))
    store = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path), watch_timeout=1)
    store.sync()
    api.put(*GATES, releasegate("three"))
    stop = threading.Event()
    store.start(stop)
    try:
        deadline = time.monotonic() + 30
        while len(store.list_gates()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.name for e in store.list_gates()] == ["one", "three", "two"]
    finally:
        stop.set()
    lists = [r for r in list(api.requests) if r.method == "GET" and "watch" not in r.query]
    assert len(lists) == 1  # sync's; the watch started from its resourceVersion
