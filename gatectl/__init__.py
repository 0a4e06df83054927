"""gatectl: a canary release gate for AI-enabled workflows.

The public names below are loaded on first use, so that ``import gatectl``
(and the CLI's start-up) stays cheap. The decision function is
``gatectl.core.decide.decide`` (a name that would clash with its module here).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Action": "gatectl.core.observations",
    "CheckResult": "gatectl.core.observations",
    "Decision": "gatectl.core.observations",
    "GateState": "gatectl.core.observations",
    "Observation": "gatectl.core.observations",
    "ObservationSet": "gatectl.core.observations",
    "Gate": "gatectl.policy",
    "GateSpec": "gatectl.policy",
    "load_gates": "gatectl.policy",
    "load_policies": "gatectl.policy",
    "GatectlError": "gatectl.errors",
    "PolicyError": "gatectl.errors",
    "QueryError": "gatectl.errors",
    "ClusterError": "gatectl.errors",
    "UsageError": "gatectl.errors",
}

__all__ = [
    "Action",
    "CheckResult",
    "ClusterError",
    "Decision",
    "Gate",
    "GateSpec",
    "GateState",
    "GatectlError",
    "Observation",
    "ObservationSet",
    "PolicyError",
    "QueryError",
    "UsageError",
    "__version__",
    "load_gates",
    "load_policies",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gatectl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
