"""``traffic.kind: openfeature`` on Kubernetes: a ConfigMap holding a flag file, a FeatureFlag.

On the test API server and a real kube-apiserver: only the flag's two weights
change, the write carries the object's resourceVersion (a concurrent edit is
never overwritten), the same share twice writes nothing, and what cannot be
set is refused with the object's name.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubeapi.fixtures import KubeTarget, kube_api  # noqa: F401
from realkube.fixtures import real_kube  # noqa: F401

from gatectl.adapters.kube.client import CONFIGMAPS, FEATUREFLAGS
from gatectl.engine.actuators import ActuatorError
from gatectl.policy import Gate, GateSpec

from .kubecrds import FEATUREFLAG_CRD, actuators_for, install

pytestmark = pytest.mark.parametrize("kube_api", ["fake", "real"], indirect=True)

FLAG: dict[str, Any] = {
    "state": "ENABLED",
    "variants": {"llm": "llm", "rules": "rules"},
    "defaultVariant": "rules",
    "targeting": {
        "if": [
            {"ends_with": [{"var": "email"}, "@staff.example.com"]},
            "llm",
            {"fractional": [["llm", 0], ["rules", 100]]},
        ]
    },
}
OTHER: dict[str, Any] = {
    "state": "DISABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
}


def _gate(namespace: str, **traffic: Any) -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "traffic": {
                "kind": "openfeature",
                "name": "flags",
                "flag": "triage-path",
                "ai_variant": "llm",
                "deterministic_variant": "rules",
                **traffic,
            },
        }
    )
    return Gate(name="triage", namespace=namespace, spec=spec, source="test")


def _split(flag: dict[str, Any]) -> Any:
    return flag["targeting"]["if"][2]["fractional"]


@pytest.fixture
def configmap(kube_api: KubeTarget) -> dict[str, Any]:  # noqa: F811
    document = {"flags": {"triage-path": FLAG, "other": OTHER}}
    return kube_api.resources(CONFIGMAPS).create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "flags"},
            "data": {"flags.flagd.json": json.dumps(document), "README": "flags for triage"},
        },
        namespace=kube_api.namespace,
    )


@pytest.fixture
def featureflag(kube_api: KubeTarget) -> dict[str, Any]:  # noqa: F811
    install(kube_api.api_client, FEATUREFLAG_CRD)
    return kube_api.resources(FEATUREFLAGS).create(
        {
            "apiVersion": "core.openfeature.dev/v1beta1",
            "kind": "FeatureFlag",
            "metadata": {"name": "flags"},
            "spec": {
                "flagSpec": {
                    "flags": {"triage-path": copy.deepcopy(FLAG), "other": copy.deepcopy(OTHER)}
                }
            },
        },
        namespace=kube_api.namespace,
    )


def test_configmap_flag_file_gets_the_split(
    kube_api: KubeTarget,  # noqa: F811
    configmap: dict[str, Any],
) -> None:
    api = kube_api.resources(CONFIGMAPS)
    actuators = actuators_for(kube_api.api_client)
    actuators.apply(_gate(kube_api.namespace), share=0.25)
    obj = api.get("flags", namespace=kube_api.namespace)
    document = json.loads(obj["data"]["flags.flagd.json"])
    assert _split(document["flags"]["triage-path"]) == [["llm", 25], ["rules", 75]]
    assert document["flags"]["other"] == OTHER
    assert obj["data"]["README"] == "flags for triage"
    version = obj["metadata"]["resourceVersion"]
    actuators.apply(_gate(kube_api.namespace), share=0.25)
    assert api.get("flags", namespace=kube_api.namespace)["metadata"]["resourceVersion"] == version
    actuators.apply(_gate(kube_api.namespace), share=0.0)
    document = json.loads(
        api.get("flags", namespace=kube_api.namespace)["data"]["flags.flagd.json"]
    )
    assert _split(document["flags"]["triage-path"]) == [["llm", 0], ["rules", 100]]


def test_featureflag_resource_gets_the_split(
    kube_api: KubeTarget,  # noqa: F811
    featureflag: dict[str, Any],
) -> None:
    api = kube_api.resources(FEATUREFLAGS)
    actuators = actuators_for(kube_api.api_client)
    gate = _gate(kube_api.namespace, source="featureflag", total=1000)
    actuators.apply(gate, share=0.05)
    obj = api.get("flags", namespace=kube_api.namespace)
    flags = obj["spec"]["flagSpec"]["flags"]
    assert _split(flags["triage-path"]) == [["llm", 50], ["rules", 950]]
    assert flags["triage-path"]["targeting"]["if"][:2] == FLAG["targeting"]["if"][:2]
    assert flags["other"] == OTHER
    version = obj["metadata"]["resourceVersion"]
    actuators.apply(gate, share=0.05)
    assert api.get("flags", namespace=kube_api.namespace)["metadata"]["resourceVersion"] == version


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        pytest.param(
            {"data_key": "flags.json"},
            "configmap {ns}/flags key flags.json: no such key",
            id="configmap-key-missing",
        ),
        pytest.param(
            {"flag": "checkout"},
            "configmap {ns}/flags key flags.flagd.json: no flag 'checkout' (flags: other,"
            " triage-path)",
            id="configmap-flag-missing",
        ),
        pytest.param(
            {"name": "absent"},
            'openfeature absent: GET configmaps get absent: 404 NotFound: configmaps "absent" not found',
            id="configmap-missing",
        ),
    ],
)
def test_configmap_refusals_name_the_object(
    kube_api: KubeTarget,  # noqa: F811
    configmap: dict[str, Any],
    traffic: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(ActuatorError) as caught:
        actuators_for(kube_api.api_client).apply(_gate(kube_api.namespace, **traffic), share=0.1)
    assert str(caught.value) == message.format(ns=kube_api.namespace)
    obj = kube_api.resources(CONFIGMAPS).get("flags", namespace=kube_api.namespace)
    assert obj["metadata"]["resourceVersion"] == configmap["metadata"]["resourceVersion"]


def test_a_featureflag_without_the_variant_is_refused(
    kube_api: KubeTarget,  # noqa: F811
    featureflag: dict[str, Any],
) -> None:
    gate = _gate(kube_api.namespace, source="featureflag", ai_variant="gpt")
    with pytest.raises(ActuatorError) as caught:
        actuators_for(kube_api.api_client).apply(gate, share=0.1)
    assert str(caught.value) == (
        f"featureflag {kube_api.namespace}/flags: flag 'triage-path' has no variant 'gpt'"
    )
