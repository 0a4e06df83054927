"""``traffic.kind: patch`` against an API server: server-side apply under ``gatectl``.

Runs on the test API server and on a real kube-apiserver (whose managedFields
are the real thing): the weights move, everything else in the object stays,
the apply names ``gatectl`` as the manager of the weights, a GitOps tool's own
fields stay its own, and the same share twice sends nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubeapi.fixtures import KubeTarget, kube_api  # noqa: F401
from realkube.fixtures import real_kube  # noqa: F401

from gatectl.adapters.kube.client import ResourceKind
from gatectl.engine.actuators import ActuatorError
from gatectl.policy import Gate, GateSpec

from .kubecrds import VIRTUALSERVICE_CRD, actuators_for, install

pytestmark = pytest.mark.parametrize("kube_api", ["fake", "real"], indirect=True)

VIRTUALSERVICES = ResourceKind("networking.istio.io", "v1", "virtualservices")
ROUTE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "triage", "labels": {"app": "triage"}},
    "spec": {
        "hosts": ["triage.default.svc.cluster.local"],
        "http": [
            {
                "name": "triage",
                "timeout": "30s",
                "route": [
                    {"destination": {"host": "triage-llm"}, "weight": 0},
                    {"destination": {"host": "triage-rules"}, "weight": 100},
                ],
            }
        ],
    },
}


def _gate(namespace: str, **traffic: Any) -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "traffic": {
                "kind": "patch",
                "target": {
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "VirtualService",
                    "name": "triage",
                },
                "ai_weight": "/spec/http/0/route/0/weight",
                "deterministic_weight": "/spec/http/0/route/1/weight",
                **traffic,
            },
        }
    )
    return Gate(name="triage", namespace=namespace, spec=spec, source="test")


@pytest.fixture
def route(kube_api: KubeTarget) -> dict[str, Any]:  # noqa: F811
    install(kube_api.api_client, VIRTUALSERVICE_CRD)
    return kube_api.resources(VIRTUALSERVICES).create(
        copy.deepcopy(ROUTE), namespace=kube_api.namespace
    )


def _weights(obj: dict[str, Any]) -> list[int]:
    return [r["weight"] for r in obj["spec"]["http"][0]["route"]]


def test_sets_the_two_weights_and_keeps_the_rest(
    kube_api: KubeTarget,  # noqa: F811
    route: dict[str, Any],
) -> None:
    api = kube_api.resources(VIRTUALSERVICES)
    actuators_for(kube_api.api_client).apply(_gate(kube_api.namespace), share=0.1)
    obj = api.get("triage", namespace=kube_api.namespace)
    assert _weights(obj) == [10, 90]
    assert obj["spec"]["hosts"] == ROUTE["spec"]["hosts"]
    assert obj["spec"]["http"][0]["timeout"] == "30s"
    assert obj["metadata"]["labels"] == {"app": "triage"}
    if kube_api.real:
        managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
        assert managers["gatectl"]["operation"] == "Apply"
        owned = managers["gatectl"]["fieldsV1"]["f:spec"]
        assert set(owned) == {"f:http"}, "gatectl owns the route list it set, nothing else"


def test_the_same_share_twice_sends_no_write(
    kube_api: KubeTarget,  # noqa: F811
    route: dict[str, Any],
) -> None:
    api = kube_api.resources(VIRTUALSERVICES)
    actuators = actuators_for(kube_api.api_client)
    actuators.apply(_gate(kube_api.namespace), share=0.25)
    first = api.get("triage", namespace=kube_api.namespace)["metadata"]["resourceVersion"]
    actuators.apply(_gate(kube_api.namespace), share=0.25)
    second = api.get("triage", namespace=kube_api.namespace)["metadata"]["resourceVersion"]
    assert first == second


def test_fallback_and_finer_totals(
    kube_api: KubeTarget,  # noqa: F811
    route: dict[str, Any],
) -> None:
    api = kube_api.resources(VIRTUALSERVICES)
    actuators = actuators_for(kube_api.api_client)
    gate = _gate(kube_api.namespace, total=1000)
    actuators.apply(gate, share=0.015)
    assert _weights(api.get("triage", namespace=kube_api.namespace)) == [15, 985]
    actuators.apply(gate, share=0.0)
    assert _weights(api.get("triage", namespace=kube_api.namespace)) == [0, 1000]


def test_takes_the_weights_from_another_field_manager(
    kube_api: KubeTarget,  # noqa: F811
    route: dict[str, Any],
) -> None:
    """A GitOps tool applied 0/100; gatectl's apply (force) wins on the weights only."""
    api = kube_api.resources(VIRTUALSERVICES)
    gitops = copy.deepcopy(ROUTE)
    gitops["metadata"]["namespace"] = kube_api.namespace
    api.apply("triage", gitops, namespace=kube_api.namespace, field_manager="argocd-controller")
    actuators_for(kube_api.api_client).apply(_gate(kube_api.namespace), share=0.5)
    obj = api.get("triage", namespace=kube_api.namespace)
    assert _weights(obj) == [50, 50]
    assert obj["spec"]["hosts"] == ROUTE["spec"]["hosts"]
    if kube_api.real:
        managers = {m["manager"]: m["fieldsV1"] for m in obj["metadata"]["managedFields"]}
        assert "f:hosts" in managers["argocd-controller"]["f:spec"], "hosts stay the tool's"
        assert "f:http" in managers["gatectl"]["f:spec"]


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        pytest.param(
            "/spec/http/3/route/0/weight",
            "/spec/http/3/route/0/weight: no item '3' in a list of 1",
            id="index-out-of-range",
        ),
        pytest.param(
            "/spec/tcp/0/weight",
            "/spec/tcp/0/weight: no spec/tcp in the object",
            id="missing-path",
        ),
        pytest.param(
            "/spec/http/0/timeout",
            "/spec/http/0/timeout: holds str, not a weight (a number)",
            id="not-a-number",
        ),
        pytest.param(
            "/spec/hosts/0/weight",
            "/spec/hosts/0/weight: spec/hosts/0 is not an object or a list",
            id="through-a-string",
        ),
    ],
)
def test_a_pointer_that_is_not_a_weight_is_refused_and_nothing_written(
    kube_api: KubeTarget,  # noqa: F811
    route: dict[str, Any],
    pointer: str,
    message: str,
) -> None:
    api = kube_api.resources(VIRTUALSERVICES)
    with pytest.raises(ActuatorError) as caught:
        actuators_for(kube_api.api_client).apply(
            _gate(kube_api.namespace, ai_weight=pointer), share=0.1
        )
    assert str(caught.value) == message
    assert _weights(api.get("triage", namespace=kube_api.namespace)) == [0, 100]


def test_an_unknown_kind_says_so(kube_api: KubeTarget) -> None:  # noqa: F811
    gate = _gate(kube_api.namespace)
    gate = gate.model_copy(
        update={
            "spec": gate.spec.model_copy(
                update={
                    "traffic": gate.spec.traffic.model_copy(  # type: ignore[union-attr]
                        update={
                            "target": gate.spec.traffic.target.model_copy(  # type: ignore[union-attr]
                                update={"kind": "Router"}
                            )
                        }
                    )
                }
            )
        }
    )
    install(kube_api.api_client, VIRTUALSERVICE_CRD)
    with pytest.raises(ActuatorError) as caught:
        actuators_for(kube_api.api_client).apply(gate, share=0.1)
    assert str(caught.value) == (
        "patch triage: the API serves no kind Router in networking.istio.io/v1"
    )
