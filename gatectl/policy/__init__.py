"""Policies: the pydantic model and the loader that reports ``file:line: field: message``."""

from gatectl.policy.models import (
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
    "Approval",
    "CheckSettings",
    "Criterion",
    "Gate",
    "GateSpec",
    "MetricDefinition",
    "PrometheusSettings",
    "TrafficSettings",
    "TriggerSpec",
    "WebhookSettings",
]
