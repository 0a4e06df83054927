"""The ReleaseGate CRD as a real kube-apiserver enforces it, through kubectl and the Python client.

What a user sees when ``kubectl apply`` (the kubectl built with the server,
``ControlPlane.kubectl``) or the official Python client sends a ReleaseGate:
a valid one is stored as sent; one the schema or a CEL rule of
``gatectl.core.crd`` refuses is rejected at admission (422) with the whole
message asserted, naming the field; and every status field the controller
writes survives the server's pruning of fields the schema does not know.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from support.controlplane import ControlPlane

from gatectl.core.crd import MAX_STEPS
from gatectl.core.status import GateStatus

pytestmark = pytest.mark.slow

GROUP, VERSION, PLURAL = "gatectl.io", "v1alpha1", "releasegates"


def gate(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow": "ticket-triage",
        "canary_traffic": 0.05,
        "steps": [0.05, 0.25, 1.0],
        "promotion_window": "6h",
        "success_criteria": {"exception_rate": "<= 0.04"},
        "rollback_trigger": ["exception_rate > 0.06"],
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReleaseGate",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not DROP},
    }


DROP = object()
"""A spec override that removes the field."""

ASCENDING = (
    "spec.steps: Invalid value: must be strictly ascending (each share above the one before)"
)
LAST = "spec.steps: Invalid value: the last step must be 1.0 (all traffic on the AI path)"
CEL_SKIPPED = (
    "<nil>: Invalid value: null: some validation rules were not checked because the object"
    " was invalid; correct the existing errors to complete validation"
)
"""What the server adds when the schema refused a field: the CEL rules did not run."""

REJECTED = [
    pytest.param({"steps": [0.05, 0.5, 0.25, 1.0]}, [ASCENDING], id="cel-descending"),
    pytest.param({"steps": [0.05, 0.25, 0.25, 1.0]}, [ASCENDING], id="cel-repeated"),
    pytest.param({"steps": [0.05, 0.5]}, [LAST], id="cel-last-not-one"),
    pytest.param(
        {"steps": [0.1, 0.5, 1.0]},
        ["spec.steps: Invalid value: the first step must equal canary_traffic"],
        id="cel-first-not-canary",
    ),
    pytest.param({"steps": []}, ["spec.steps: Invalid value: must not be empty"], id="cel-empty"),
    pytest.param(
        {"steps": [round(i / 25, 2) for i in range(1, 26)], "canary_traffic": 0.04},
        [f"spec.steps: Too many: 25: must have at most {MAX_STEPS} items", CEL_SKIPPED],
        id="too-many-steps",
    ),
    pytest.param(
        {"canary_traffic": 1.5, "steps": DROP},
        [
            "spec.canary_traffic: Invalid value: 1.5: spec.canary_traffic in body should be"
            " less than or equal to 1",
        ],
        id="schema-above-one",
    ),
    pytest.param(
        {"success_criteria": DROP},
        ["spec.success_criteria: Required value", CEL_SKIPPED],
        id="schema-missing-required",
    ),
]


def server_says(name: str, causes: list[str]) -> str:
    """The Status message of a 422, as the API server words it."""
    listed = causes[0] if len(causes) == 1 else f"[{', '.join(causes)}]"
    return f'ReleaseGate.gatectl.io "{name}" is invalid: {listed}'


def kubectl_says(name: str, causes: list[str]) -> str:
    """The same refusal as kubectl prints it (one line, or one bullet per cause)."""
    if len(causes) == 1:
        return f'The ReleaseGate "{name}" is invalid: {causes[0]}\n'
    return f'The ReleaseGate "{name}" is invalid: \n' + "".join(f"* {c}\n" for c in causes)


@pytest.fixture
def namespace(admin_client: Any, releasegate_crd: dict[str, Any]) -> str:
    """A fresh namespace (left behind: no namespace controller runs to empty it)."""
    name = f"crd-{secrets.token_hex(3)}"
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": name}})
    return name


def test_a_valid_gate_with_steps_is_accepted_by_kubectl_and_the_client(
    real_kube: ControlPlane, admin_client: Any, namespace: str
) -> None:
    applied = real_kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(gate("a"))
    )
    assert (applied.returncode, applied.stdout, applied.stderr) == (
        0,
        "releasegate.gatectl.io/a created\n",
        "",
    )
    created = client.CustomObjectsApi(admin_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, gate("b", steps=None)
    )
    assert created["spec"]["canary_traffic"] == 0.05
    listed = real_kube.kubectl("get", "rg", "-n", namespace, "-o", "name")
    assert listed.stdout.split() == ["releasegate.gatectl.io/a", "releasegate.gatectl.io/b"]


@pytest.mark.parametrize(("spec", "causes"), REJECTED)
def test_the_python_client_gets_a_422_naming_the_field(
    admin_client: Any, namespace: str, spec: dict[str, Any], causes: list[str]
) -> None:
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(admin_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, gate("bad", **spec)
        )
    assert refused.value.status == 422, refused.value.body
    body = json.loads(refused.value.body)
    assert body["message"] == server_says("bad", causes)
    assert body["details"]["causes"][0]["field"] == causes[0].split(":")[0]


@pytest.mark.parametrize(("spec", "causes"), REJECTED)
def test_kubectl_apply_says_what_is_wrong_and_stores_nothing(
    real_kube: ControlPlane, namespace: str, spec: dict[str, Any], causes: list[str]
) -> None:
    applied = real_kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(gate("bad", **spec))
    )
    assert applied.returncode == 1
    assert applied.stdout == ""
    assert applied.stderr == kubectl_says("bad", causes)
    listed = real_kube.kubectl("get", "rg", "-n", namespace, "-o", "name")
    assert (listed.returncode, listed.stdout) == (0, "")


def test_an_edit_that_breaks_the_steps_is_refused_and_the_gate_kept(
    real_kube: ControlPlane, namespace: str
) -> None:
    real_kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(gate("kept")))
    patched = real_kube.kubectl(
        "patch", "rg", "kept", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"steps": [0.05, 1.0, 0.5]}}),
    )  # fmt: skip
    assert patched.returncode == 1
    assert patched.stderr == kubectl_says("kept", [ASCENDING, LAST])
    shown = real_kube.kubectl("get", "rg", "kept", "-n", namespace, "-o", "jsonpath={.spec.steps}")
    assert shown.stdout == "[0.05,0.25,1]"


SAMPLES: dict[str, Any] = {
    "step": 2,
    "share": 0.25,
    "step_started_at": datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
    "revision": "model-2",
    "phase": "FallenBack",
    "inconclusive_count": 1,
    "fallen_back": True,
    "last_decision": {"action": "fallback", "reasons": ["rollback trigger fired"]},
    "history": ({"action": "start", "time": "2026-11-22T06:00:00Z"},),
    "observed_generation": 3,
    "pending": {"step": 0, "share": 0.0, "stepStartedAt": "2026-11-22T06:00:00Z"},
    "last_reset": "2026-11-22T06:00:00Z",
    "last_approval": "2:alice:2026-11-22T06:00:00Z",
    "message": "held",
    "conditions": (
        {
            "type": "Ready",
            "status": "True",
            "reason": "Evaluated",
            "message": "evaluated",
            "lastTransitionTime": "2026-11-22T06:00:00Z",
            "observedGeneration": 3,
        },
    ),
    "rollout_started_at": datetime(2026, 11, 22, 5, 0, tzinfo=UTC),
    "last_fallback": "2026-11-22T06:00:00Z",
    "stopped": {"by": "alice", "reason": "incident 42", "at": "2026-11-22T06:00:00Z"},
    "workflow": "ticket-triage",
    "audit": {"seq": 7, "sha256": "ab" * 32},
}
"""A value for every field of ``GateStatus``; a new field needs one here."""


def test_every_status_field_the_controller_writes_survives_pruning(
    admin_client: Any, namespace: str
) -> None:
    names = [f.name for f in dataclasses.fields(GateStatus)]
    assert sorted(set(names) - set(SAMPLES)) == [], "add a sample for each new status field"
    status = GateStatus(**{name: SAMPLES[name] for name in names}).to_dict()
    assert len(status) == len(names), f"to_dict() left fields out: {sorted(status)}"
    api = client.CustomObjectsApi(admin_client)
    created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, gate("st"))
    created["status"] = status
    api.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "st", created)
    kept = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "st")["status"]
    assert sorted(set(status) - set(kept)) == [], "status fields pruned by the API server"
    assert kept == status
