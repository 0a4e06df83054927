"""Small object builders shared by the Kubernetes layer's tests."""

from __future__ import annotations

from typing import Any


def configmap(name: str, *, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": dict(data),
    }


def releasegate(
    name: str, *, share: float = 0.1, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "workflow": name,
            "canary_traffic": share,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        },
    }
