"""Every rendered manifest is valid Kubernetes, strictly, for every version from 1.29 to the newest.

kubernetes-validate knows the built-in kinds. It has no schema for the
Prometheus Operator's ServiceMonitor and PrometheusRule: those are checked
against the structure the operator documents (the fields this chart uses,
with unknown fields refused), and the rules themselves by promtool
(test_chart_alerts.py).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from chartlib import SCENARIOS, Manifest, clean, render
from kubernetes_validate.utils import all_versions
from packaging.version import Version

VERSIONS = sorted({v for v in all_versions() if Version(v) >= Version("1.29")}, key=Version)
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
ADMISSION_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
"""Rendered only for Kubernetes >= 1.30 (helm-python-sdk renders for its own, newer version)."""


def test_validator_covers_1_29_to_at_least_1_33() -> None:
    assert VERSIONS[0] == "1.29.0"
    assert Version(VERSIONS[-1]) >= Version("1.33")


def _name(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_builtin_manifest_validates_strictly(chart: Any, scenario: str, version: str) -> None:
    failures = []
    checked = 0
    for manifest in render(chart, SCENARIOS[scenario]):
        if manifest["kind"] in OPERATOR_KINDS:
            continue
        if manifest["kind"] in ADMISSION_KINDS and Version(version) < Version("1.30"):
            continue
        try:
            kubernetes_validate.validate(clean(manifest), version, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{_name(manifest)}: {path}: {exc.message}")
    assert failures == []
    assert checked >= 6


def test_strict_validation_catches_a_misspelt_field(chart: Any) -> None:
    """The validator is not a rubber stamp: a typo in a pod spec fails."""
    deployment = next(m for m in render(chart) if m["kind"] == "Deployment")
    broken = clean(deployment)
    broken["spec"]["template"]["spec"]["serviceAcountName"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {
    "type": "string",
    "pattern": (
        r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
        r"(([0-9]+)ms)?)$"
    ),
}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _LABELS,
        "annotations": _LABELS,
    },
}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _LABELS, "matchExpressions": {"type": "array"}},
}

SERVICE_MONITOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "record": {"type": "string"},
        "expr": {"type": "string", "minLength": 1},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": _LABELS,
        "annotations": _LABELS,
    },
}
PROMETHEUS_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {"type": "array", "minItems": 1, "items": _RULE},
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        pytest.param("ServiceMonitor", SERVICE_MONITOR, id="servicemonitor"),
        pytest.param("PrometheusRule", PROMETHEUS_RULE, id="prometheusrule"),
    ],
)
@pytest.mark.parametrize("scenario", ["cluster-everything-on", "namespaced-two-namespaces"])
def test_operator_objects_have_the_operators_structure(
    chart: Any, scenario: str, kind: str, schema: dict[str, Any]
) -> None:
    (manifest,) = [m for m in render(chart, SCENARIOS[scenario]) if m["kind"] == kind]
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(clean(manifest), VERSIONS[-1], strict=True)
    jsonschema.validate(clean(manifest), schema)


def test_every_rendered_object_is_namespaced_in_the_release_or_a_watched_namespace(
    chart: Any,
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", *ADMISSION_KINDS}
    for values in SCENARIOS.values():
        allowed = {"gatectl-system", *values.get("watchNamespaces", [])}
        for manifest in render(chart, values):
            if manifest["kind"] in cluster_scoped:
                assert "namespace" not in manifest["metadata"]
            else:
                assert manifest["metadata"]["namespace"] in allowed, _name(manifest)
