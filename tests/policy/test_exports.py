"""gatectl.policy's public names: exactly these, each the real object."""

from __future__ import annotations

import gatectl.policy
from gatectl.policy import loader, models


def test_policy_package_exports_exactly_its_public_api() -> None:
    assert sorted(gatectl.policy.__all__) == sorted(
        [
            "API_VERSION",
            "BARE_KEY",
            "BUILTIN_METRICS",
            "KIND",
            "TEMPLATE_VARIABLES",
            "Approval",
            "CheckSettings",
            "Criterion",
            "Gate",
            "GateSpec",
            "LoadResult",
            "MetricDefinition",
            "PrometheusSettings",
            "TrafficSettings",
            "TriggerSpec",
            "WebhookSettings",
            "gate_from_resource",
            "load_gates",
            "load_policies",
        ]
    )


def test_every_exported_name_is_the_defining_modules_object() -> None:
    for name in gatectl.policy.__all__:
        home = loader if hasattr(loader, name) and name in loader.__all__ else models
        assert getattr(gatectl.policy, name) is getattr(home, name), name


def test_builtin_metric_names_are_those_of_the_product_contract() -> None:
    assert models.BUILTIN_METRICS == {
        "exception_rate": "rate",
        "human_override_rate": "rate",
        "critical_regressions": "count",
        "reviewer_queue_sla_breach": "boolean",
    }
