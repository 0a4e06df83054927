"""The ReleaseGate CRD: generated from the model, structural, committed, true to the examples."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support.required import require_module

from gatectl.core.crd import crd_manifest, crd_yaml, spec_schema
from gatectl.policy import GateSpec

P = pytest.param
REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "charts" / "gatectl" / "crds" / "releasegates.gatectl.io.yaml"


def _root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _validator() -> jsonschema.Draft4Validator:
    # Kubernetes speaks OpenAPI v3.0: boolean exclusiveMinimum, as JSON Schema draft 4 does.
    return jsonschema.Draft4Validator(_root_schema())


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")
    for branch in node.get("anyOf", []):
        yield from _nodes(branch, f"{path}|")


def _examples() -> list[Any]:
    found = []
    for file in sorted((REPO / "policies").glob("*.y*ml")):
        for index, doc in enumerate(yaml.safe_load_all(file.read_text(encoding="utf-8"))):
            if isinstance(doc, dict) and doc.get("kind") == "ReleaseGate":
                found.append(P(doc, id=f"{file.stem}-{index}"))
    return found


def test_committed_crd_matches_the_model() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == crd_yaml(), (
        "charts/gatectl/crds/releasegates.gatectl.io.yaml drifted from gatectl/policy/models.py:"
        " run `python -m gatectl.core.crd > charts/gatectl/crds/releasegates.gatectl.io.yaml`"
    )


def test_module_prints_the_committed_crd() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gatectl.core.crd"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert run.stdout == COMMITTED.read_text(encoding="utf-8")
    assert run.stderr == ""


def test_crd_identity_scope_and_subresources() -> None:
    crd = crd_manifest()
    assert (crd["apiVersion"], crd["kind"], crd["metadata"]["name"]) == (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "releasegates.gatectl.io",
    )
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("gatectl.io", "Namespaced")
    assert spec["names"] == {
        "kind": "ReleaseGate",
        "listKind": "ReleaseGateList",
        "plural": "releasegates",
        "singular": "releasegate",
        "shortNames": ["rg"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("Workflow", "string", ".spec.workflow"),
        ("Share", "number", ".status.share"),
        ("Phase", "string", ".status.phase"),
        ("Decision", "string", ".status.lastDecision.action"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def test_crd_manifest_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate = require_module(
        "kubernetes_validate", install="pip install -e '.[dev]' (kubernetes-validate)"
    )
    kubernetes_validate.validate(crd_manifest(), "1.29", strict=True)


def test_schema_is_structural() -> None:
    problems = []
    for path, node in _nodes(_root_schema(), "openAPIV3Schema"):
        if path.endswith("|"):
            continue  # int-or-string branches are checked with their parent
        keys = set(node)
        if "$ref" in keys or "$defs" in keys:
            problems.append(f"{path}: $ref/$defs")
        typed = "type" in keys
        free = node.get("x-kubernetes-preserve-unknown-fields") is True
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        if not (typed or free or int_or_string):
            problems.append(f"{path}: no type")
        if node.get("type") == "null" or "null" in str(node.get("type")):
            problems.append(f"{path}: null type")
        if "anyOf" in keys and not int_or_string:
            problems.append(f"{path}: anyOf outside int-or-string")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties: false")
        if "additionalProperties" in keys and "properties" in keys:
            problems.append(f"{path}: both properties and additionalProperties")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if key in keys and (node[key] is not True or bound not in keys):
                problems.append(f"{path}: {key} must be true next to {bound}")
        if keys & {"title", "default", "const"}:
            problems.append(f"{path}: {sorted(keys & {'title', 'default', 'const'})}")
    assert problems == []


def test_every_model_field_is_in_the_spec_schema() -> None:
    properties = spec_schema()["properties"]
    assert set(properties) == {*GateSpec.model_fields, "promotion_window_hours"}


def test_status_schema_has_every_field_the_controller_writes() -> None:
    from datetime import UTC, datetime

    from gatectl.core.status import GateStatus

    status = _root_schema()["properties"]["status"]["properties"]
    # Every field set: a real API server prunes whatever the schema does not declare.
    written = GateStatus(
        step=2,
        share=0.25,
        step_started_at=datetime(2026, 11, 20, tzinfo=UTC),
        revision="r",
        inconclusive_count=1,
        fallen_back=True,
        last_decision={"action": "hold"},
        history=({"action": "hold"},),
        observed_generation=3,
        pending={"step": 3},
        last_reset="t",
        last_approval="a",
        message="m",
        conditions=({"type": "Ready", "status": "True"},),
        rollout_started_at=datetime(2026, 11, 20, tzinfo=UTC),
        last_fallback="f",
        stopped={"by": "alice", "reason": "harm", "at": "f"},
        workflow="w",
        audit={"seq": 1, "sha256": "0" * 64},
    ).to_dict()
    # ``controller``: the writer's identity, added by the sharded store (engine.sharding).
    assert set(status) == {*written, "controller"}
    assert status["phase"]["enum"] == [
        "Progressing",
        "Holding",
        "Promoted",
        "FallenBack",
        "Invalid",
        "AwaitingApproval",
        "Paused",
    ]
    assert status["lastDecision"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["history"]["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["conditions"]["items"]["required"] == ["type", "status"]


def test_at_least_two_release_gate_examples_exist() -> None:
    assert len(_examples()) >= 2


@pytest.mark.parametrize("resource", _examples())
def test_release_gate_example_validates_against_the_crd_schema(resource: dict[str, Any]) -> None:
    errors = [e.message for e in _validator().iter_errors(resource)]
    assert errors == []


def test_bare_seed_body_validates_as_a_spec() -> None:
    seed = yaml.safe_load((REPO / "policies" / "ticket-triage.yaml").read_text(encoding="utf-8"))
    resource = {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": "ticket-triage"},
        "spec": seed["workflow_release_gate"],
    }
    assert [e.message for e in _validator().iter_errors(resource)] == []


def test_status_as_the_controller_writes_it_validates() -> None:
    resource = {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": "a"},
        "spec": {"canary_traffic": 0.1, "promotion_window": "1h", "success_criteria": {}},
        "status": {
            "phase": "AwaitingApproval",
            "step": 1,
            "share": 0.25,
            "stepStartedAt": "2026-11-20T12:00:00Z",
            "revision": "abc",
            "inconclusiveCount": 0,
            "lastDecision": {"action": "hold", "reasons": ["approval needed"], "x": {"y": 1}},
            "history": [{"action": "promote", "evidence": [1, 2]}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Evaluated"}],
            "observedGeneration": 3,
            "message": "",
        },
    }
    assert [e.message for e in _validator().iter_errors(resource)] == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        P({"canary_traffic": 1.5}, "1.5 is greater than the maximum of 1.0", id="share-above-one"),
        P({"canary_traffic": 0}, "0 is less than or equal to the minimum of 0.0", id="share-zero"),
        P({"canary_traffic": "x"}, "'x' is not of type 'number'", id="share-string"),
        P(
            {"fallback_mode": "rollback"},
            "'rollback' is not one of ['deterministic_path', 'previous_step']",
            id="fallback-mode",
        ),
        P({"min_samples": 1.5}, "1.5 is not of type 'integer'", id="min-samples-fraction"),
        P({"steps": [0.1, 2]}, "2 is greater than the maximum of 1.0", id="step-above-one"),
        P({"rollback_trigger": "x > 1"}, "'x > 1' is not of type 'array'", id="trigger-not-list"),
        P({"approval": {}}, "'required_above' is a required property", id="approval-empty"),
        P({"traffic": {"kind": "istio"}}, "'istio' is not one of", id="traffic-kind"),
    ],
)
def test_schema_rejects_what_the_api_server_must_refuse(spec: dict[str, Any], message: str) -> None:
    base = {"canary_traffic": 0.1, "promotion_window": "1h", "success_criteria": {}}
    resource = {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": "a"},
        "spec": {**base, **spec},
    }
    errors = [e.message for e in _validator().iter_errors(resource)]
    assert len(errors) == 1
    assert errors[0].startswith(message)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        P("promotion_window", "6h", id="window-string"),
        P("promotion_window", 48, id="window-hours-int"),
        P("promotion_window_hours", 0.5, id="window-hours-float"),
        P("evaluation_interval", "30s", id="interval-string"),
        P("evaluation_interval", 30, id="interval-number"),
        P("success_criteria", {"exception_rate": "<= 0.04"}, id="criterion-string"),
        P(
            "success_criteria",
            {"exception_rate": {"condition": "<= 0.04", "confidence": 0.9}},
            id="criterion-mapping",
        ),
        P("rollback_trigger", ["exception_rate > 0.06"], id="trigger-string"),
        P("rollback_trigger", [{"expression": "x > 1", "dry_run": True}], id="trigger-mapping"),
    ],
)
def test_schema_accepts_every_form_the_model_accepts(field: str, value: Any) -> None:
    spec = {"canary_traffic": 0.1, "promotion_window": "1h", "success_criteria": {}, field: value}
    resource = {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": "a"},
        "spec": spec,
    }
    assert [e.message for e in _validator().iter_errors(resource)] == []


@pytest.mark.parametrize(
    "field",
    ["name", "workflow", "steps", "owner", "escalation", "approval", "traffic"],
)
def test_optional_field_is_nullable_with_a_real_type(field: str) -> None:
    node = spec_schema()["properties"][field]
    assert node["nullable"] is True
    assert node["type"] in {"string", "number", "array", "object"}
