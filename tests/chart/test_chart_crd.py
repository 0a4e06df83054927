"""The chart ships the generated ReleaseGate CRD; it is valid and the example gates fit it.

The CRD file itself is generated from the policy model by
``python -m gatectl.core.crd`` (its own test catches drift); here it is
checked as the chart delivers it.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chartlib import CHART_DIR, REPO
from test_chart_manifests import VERSIONS

CRD_FILE = CHART_DIR / "crds" / "releasegates.gatectl.io.yaml"


def test_the_chart_ships_the_crd_file() -> None:
    assert CRD_FILE.is_file(), f"{CRD_FILE} is missing: run python -m gatectl.core.crd"


@pytest.fixture(scope="module")
def crd(chart: Any) -> dict[str, Any]:
    (entry,) = chart.crds
    loaded: dict[str, Any] = yaml.safe_load(entry["data"])
    return loaded


def openapi_to_jsonschema(node: Any) -> Any:
    """Kubernetes' OpenAPI v3 dialect to JSON Schema (draft 4): ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-")}
    if converted.pop("nullable", False) and "type" in converted:
        converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    if node.get("x-kubernetes-int-or-string"):
        converted["type"] = ["integer", "string"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        # kubectl's default (strict) field validation refuses fields the schema does not know.
        converted["additionalProperties"] = False
    return converted


def validate(gate: dict[str, Any], crd: dict[str, Any]) -> None:
    """Validate as the API server would; its OpenAPI dialect is JSON Schema draft 4."""
    jsonschema.Draft4Validator(schema_of(crd)).validate(gate)


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return openapi_to_jsonschema(version["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]


def example_gates() -> list[pytest.ParameterSet]:
    params = []
    for path in sorted((REPO / "policies").glob("*.y*ml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(document, dict) and document.get("kind") == "ReleaseGate":
                params.append(pytest.param(document, id=f"{path.name}#{index}"))
    return params


def test_chart_ships_exactly_the_generated_crd(chart: Any) -> None:
    (entry,) = chart.crds
    assert yaml.safe_load(entry["data"]) == yaml.safe_load(CRD_FILE.read_text())


def test_crd_is_namespaced_with_status_and_the_printer_columns(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "releasegates.gatectl.io"
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"].lower() for c in version["additionalPrinterColumns"]]
    assert columns == ["workflow", "share", "phase", "decision", "age"]


@pytest.mark.parametrize("version", VERSIONS)
def test_crd_validates_strictly(crd: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(copy.deepcopy(crd), version, strict=True)


def test_crd_matches_the_rbac_group_and_resource(crd: dict[str, Any]) -> None:
    rbac = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    assert f'apiGroups: ["{crd["spec"]["group"]}"]' in rbac
    assert f'resources: ["{crd["spec"]["names"]["plural"]}"]' in rbac
    assert f'resources: ["{crd["spec"]["names"]["plural"]}/status"]' in rbac


@pytest.mark.parametrize("gate", example_gates())
def test_example_release_gates_validate_against_the_crd_schema(
    crd: dict[str, Any], gate: dict[str, Any]
) -> None:
    validate(gate, crd)


def test_there_are_example_release_gates_to_check() -> None:
    assert len(example_gates()) >= 1


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        pytest.param(
            lambda s: s.update(canary_traffic="lots"), "canary_traffic", id="share-as-text"
        ),
        pytest.param(lambda s: s.update(surprise=True), "surprise", id="unknown-field"),
        pytest.param(lambda s: s.pop("success_criteria"), "success_criteria", id="no-criteria"),
    ],
)
def test_a_broken_gate_fails_the_crd_schema(crd: dict[str, Any], mutate: Any, where: str) -> None:
    (first, *_) = example_gates()
    gate = copy.deepcopy(first.values[0])
    mutate(gate["spec"])
    with pytest.raises(jsonschema.ValidationError, match=where):
        validate(gate, crd)
