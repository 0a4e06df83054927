"""Policies: the pydantic model and the loader that reports ``file:line: field: message``."""

from gatectl.policy.loader import (
    API_VERSION,
    BARE_KEY,
    KIND,
    LoadResult,
    gate_from_resource,
    load_gates,
    load_policies,
)
from gatectl.policy.models import (
    BUILTIN_METRICS,
    TEMPLATE_VARIABLES,
    Approval,
    CheckSettings,
    Criterion,
    Gate,
    GateSpec,
    MetricDefinition,
    PrometheusSettings,
    TrafficSettings,
    TriggerSpec,
    WebhookSettings,
)

__all__ = [
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
