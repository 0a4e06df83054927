"""Chart test helpers: render the chart offline with Helm's own Go engine (helm-python-sdk)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "gatectl"
RELEASE = "gatectl"
NAMESPACE = "gatectl-system"

Manifest = dict[str, Any]

# Values for every mode the chart supports; the default values come first.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "cluster-everything-on": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "additionalAlertLabels": {"team": "platform"}},
        "watchNamespaces": ["support", "billing"],
        "prometheus": {
            "url": "https://mimir.example:8443/prometheus",
            "headers": {"X-Scope-OrgID": "tenant-a"},
            "bearerToken": {"existingSecret": "prom-token", "key": "token"},
            "ca": {"existingSecret": "prom-ca", "key": "ca.crt"},
        },
        "podAnnotations": {"example.com/team": "platform"},
        "image": {"digest": "sha256:" + "a" * 64},
    },
    "namespaced-release-namespace": {"rbac": {"scope": "namespaced"}},
    "namespaced-two-namespaces": {
        "rbac": {"scope": "namespaced", "httpRoutes": False, "deployments": False},
        "watchNamespaces": ["support", "billing"],
        "prometheus": {"bearerToken": {"value": "s3cr3t"}, "ca": {"existingConfigMap": "ca"}},
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "podDisruptionBudget": {"enabled": False},
        "leaderElection": {"enabled": False},
        "replicaCount": 1,
    },
    "sharded": {
        "sharding": {"enabled": True},
        "replicaCount": 3,
        "prometheusRule": {"enabled": True},
    },
}


def render(chart: Any, values: Mapping[str, Any] | None = None) -> list[Manifest]:
    """Every manifest the chart renders for ``values`` (NOTES.txt left out)."""
    rendered = chart.render(dict(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=True)
    manifests: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("__template__", path)
                manifests.append(document)
    return manifests


def clean(manifest: Manifest) -> Manifest:
    """The manifest without the test's bookkeeping key."""
    return {k: v for k, v in manifest.items() if k != "__template__"}


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def rule_groups(chart: Any, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The PrometheusRule's groups, as a Prometheus rule file holds them."""
    merged = {"prometheusRule": {"enabled": True}, **dict(values or {})}
    rule = one(render(chart, merged), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def dashboard(chart: Any) -> dict[str, Any]:
    config_map = one(render(chart), "ConfigMap")
    (body,) = config_map["data"].values()
    loaded: dict[str, Any] = json.loads(body)
    return loaded
