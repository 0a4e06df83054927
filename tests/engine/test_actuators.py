"""Traffic actuators: each kind writes the share, idempotently, and fails clearly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gatectl.engine.actuators import (
    ActuatorError,
    Actuators,
    mode_of,
    split_replicas,
    split_weights,
)
from gatectl.errors import NotFoundError

from .fakes import gate


class FakeResources:
    """Objects by name in one namespace; counts writes."""

    def __init__(self, objects: dict[str, dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.writes: list[tuple[str, str, Any]] = []

    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        if name not in self.objects:
            raise NotFoundError(f"{name} not found", status=404)
        return copy.deepcopy(self.objects[name])

    def create(self, body: Any, *, namespace: str | None = None) -> dict[str, Any]:
        self.writes.append(("create", body["metadata"]["name"], body))
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)
        return body

    def replace(self, body: Any, *, namespace: str | None = None) -> dict[str, Any]:
        self.writes.append(("replace", body["metadata"]["name"], body))
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)
        return body

    def patch(self, name: str, patch: Any, *, namespace: str | None = None) -> dict[str, Any]:
        self.writes.append(("patch", name, patch))
        obj = self.objects[name]
        for key, value in patch.items():
            if isinstance(value, dict):
                obj.setdefault(key, {}).update(value)
            else:
                obj[key] = value
        return obj


@pytest.mark.parametrize(
    ("share", "mode", "weights", "replicas"),
    [
        pytest.param(0.0, "deterministic", (0, 100), (0, 10), id="fallback"),
        pytest.param(0.05, "canary", (5, 95), (1, 9), id="small-share-gets-a-replica"),
        pytest.param(0.25, "canary", (25, 75), (2, 8), id="quarter"),
        pytest.param(0.99, "canary", (99, 1), (9, 1), id="stable-keeps-a-replica"),
        pytest.param(1.0, "ai", (100, 0), (10, 0), id="complete"),
    ],
)
def test_splits(
    share: float, mode: str, weights: tuple[int, int], replicas: tuple[int, int]
) -> None:
    assert mode_of(share) == mode
    assert split_weights(share) == weights
    assert split_replicas(share, 10) == replicas


def test_file_actuator_writes_json_once(tmp_path: Path) -> None:
    path = tmp_path / "route" / "share.json"
    g = gate("triage", traffic={"kind": "file", "path": str(path)})
    Actuators().apply(g, share=0.25)
    body = json.loads(path.read_text())
    assert body == {
        "gate": "triage",
        "namespace": "default",
        "workflow": "triage",
        "share": 0.25,
        "mode": "canary",
    }
    stamp = path.stat().st_mtime_ns
    Actuators().apply(g, share=0.25)
    assert path.stat().st_mtime_ns == stamp


def test_configmap_created_then_patched_only_on_change() -> None:
    maps = FakeResources()
    actuators = Actuators(resources=lambda kind: maps, kubernetes=True)
    g = gate("triage", traffic={"kind": "configmap", "name": "triage-router"})
    actuators.apply(g, share=0.05)
    actuators.apply(g, share=0.05)
    actuators.apply(g, share=0.0)
    assert [w[0] for w in maps.writes] == ["create", "patch"]
    assert maps.objects["triage-router"]["data"]["share"] == "0"
    assert maps.objects["triage-router"]["data"]["share_mode"] == "deterministic"


def test_default_traffic_on_kubernetes_is_a_configmap_named_after_the_gate() -> None:
    maps = FakeResources()
    Actuators(resources=lambda kind: maps, kubernetes=True).apply(gate("triage"), share=0.05)
    assert "gatectl-triage" in maps.objects


def route() -> dict[str, Any]:
    return {
        "metadata": {"name": "triage", "resourceVersion": "7"},
        "spec": {
            "rules": [
                {"backendRefs": [{"name": "ai", "weight": 0}, {"name": "rules", "weight": 100}]}
            ]
        },
    }


def test_httproute_weights_follow_the_share() -> None:
    routes = FakeResources({"triage": route()})
    g = gate(
        "triage",
        traffic={
            "kind": "httproute",
            "name": "triage",
            "ai_backend": "ai",
            "deterministic_backend": "rules",
        },
    )
    actuators = Actuators(resources=lambda kind: routes, kubernetes=True)
    actuators.apply(g, share=0.25)
    refs = routes.objects["triage"]["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("ai", 25), ("rules", 75)]
    assert routes.writes[-1][2]["metadata"]["resourceVersion"] == "7"  # replace is guarded
    actuators.apply(g, share=0.25)
    assert len(routes.writes) == 1


def test_httproute_without_the_named_backend_is_an_actuator_error() -> None:
    routes = FakeResources({"triage": route()})
    g = gate(
        "triage",
        traffic={
            "kind": "httproute",
            "name": "triage",
            "ai_backend": "llm",
            "deterministic_backend": "rules",
        },
    )
    with pytest.raises(ActuatorError, match="has no backendRef named llm"):
        Actuators(resources=lambda kind: routes, kubernetes=True).apply(g, share=0.25)


def test_deployment_replicas_split() -> None:
    deployments = FakeResources(
        {"ai": {"spec": {"replicas": 0}}, "rules": {"spec": {"replicas": 10}}}
    )
    g = gate(
        "triage",
        traffic={
            "kind": "deployment",
            "name": "ai",
            "stable_deployment": "rules",
            "total_replicas": 10,
        },
    )
    Actuators(resources=lambda kind: deployments, kubernetes=True).apply(g, share=0.25)
    assert deployments.objects["ai"]["spec"]["replicas"] == 2
    assert deployments.objects["rules"]["spec"]["replicas"] == 8


def test_kubernetes_kind_in_file_mode_is_a_clear_error() -> None:
    g = gate("triage", traffic={"kind": "configmap", "name": "x"})
    with pytest.raises(ActuatorError, match="needs Kubernetes"):
        Actuators().apply(g, share=0.1)


def test_missing_object_is_an_actuator_error_naming_it() -> None:
    g = gate(
        "triage",
        traffic={
            "kind": "httproute",
            "name": "gone",
            "ai_backend": "a",
            "deterministic_backend": "b",
        },
    )
    with pytest.raises(ActuatorError, match="httproute gone: gone not found"):
        Actuators(resources=lambda kind: FakeResources(), kubernetes=True).apply(g, share=0.1)
