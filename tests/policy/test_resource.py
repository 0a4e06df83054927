"""ReleaseGate objects read from the Kubernetes API: the same model, errors without lines."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gatectl.errors import PolicyError
from gatectl.policy import gate_from_resource

P = pytest.param

OBJECT: dict[str, Any] = {
    "apiVersion": "gatectl.io/v1alpha1",
    "kind": "ReleaseGate",
    "metadata": {"name": "triage", "namespace": "support", "generation": 7, "uid": "u-1"},
    "spec": {
        "canary_traffic": 0.05,
        "steps": [0.05, 0.5, 1.0],
        "promotion_window": "6h",
        "success_criteria": {"exception_rate": "<= 0.04"},
        "rollback_trigger": ["exception_rate > 0.06"],
    },
    "status": {"phase": "Holding", "step": 1},
}


def obj(**changes: Any) -> dict[str, Any]:
    """OBJECT with ``spec`` keys replaced (``None`` deletes)."""
    result = copy.deepcopy(OBJECT)
    for key, value in changes.items():
        if value is None:
            result["spec"].pop(key, None)
        else:
            result["spec"][key] = value
    return result


def test_resource_becomes_a_gate_with_generation_and_source() -> None:
    gate = gate_from_resource(OBJECT, source="support/triage")
    assert (gate.key, gate.workflow, gate.generation, gate.source) == (
        "support/triage",
        "triage",
        7,
        "support/triage",
    )
    assert gate.spec.shares == (0.05, 0.5, 1.0)


def test_resource_without_namespace_or_generation_uses_defaults() -> None:
    resource = obj()
    resource["metadata"] = {"name": "x"}
    gate = gate_from_resource(resource, source="x")
    assert (gate.key, gate.generation) == ("default/x", None)


def test_revision_is_what_the_spec_declares_and_nothing_else() -> None:
    assert gate_from_resource(obj(), source="a").revision is None
    assert gate_from_resource(obj(revision="model-2026-11"), source="b").revision == "model-2026-11"
    edited = gate_from_resource(obj(revision="model-2026-11", owner="x", steps=None), source="c")
    assert edited.revision == "model-2026-11"


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        P(
            obj(canary_traffic=1.5),
            "ns/x: spec.canary_traffic: must be > 0 and <= 1, got 1.5",
            id="bounds",
        ),
        P(
            obj(promotion_window=None, promotion_windw="1h"),
            "ns/x: spec.promotion_window: required field missing (promotion_window, or"
            " promotion_window_hours) (and 1 more problem)",
            id="typo-and-missing",
        ),
        P(
            obj(success_criteria={"exeption_rate": "< 1"}),
            "ns/x: spec.success_criteria.exeption_rate: unknown metric 'exeption_rate' (did you mean"
            " 'exception_rate'?): define it under metrics, or use a built-in one"
            " (critical_regressions, exception_rate, human_override_rate, reviewer_queue_sla_breach)",
            id="unknown-metric",
        ),
        P(
            obj(rollback_trigger=["a > 1", "b > 1", "c > 1"]),
            "ns/x: spec.rollback_trigger.0: unknown metric 'a': define it under metrics, or use a"
            " built-in one (critical_regressions, exception_rate, human_override_rate,"
            " reviewer_queue_sla_breach) (and 2 more problems)",
            id="several-unknown-metrics",
        ),
        P(
            obj(rollback_trigger=[{"expression": "exception_rate >> 1"}]),
            "ns/x: spec.rollback_trigger.0.expression: cannot parse trigger 'exception_rate >> 1':"
            " expected METRIC OP VALUE, e.g. 'exception_rate > 0.06'",
            id="trigger-mapping-form",
        ),
        P(
            {**OBJECT, "spec": None},
            "ns/x: spec: required field missing",
            id="spec-missing",
        ),
        P({**OBJECT, "spec": [1]}, "ns/x: spec: must be a mapping", id="spec-list"),
        P({**OBJECT, "metadata": {}}, "ns/x: metadata.name: required field missing", id="no-name"),
        P(
            {"spec": OBJECT["spec"]},
            "ns/x: metadata.name: required field missing",
            id="no-metadata",
        ),
    ],
)
def test_invalid_resource_raises_with_field_path_and_no_line(
    resource: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        gate_from_resource(resource, source="ns/x")
    assert str(caught.value) == message
    assert caught.value.line is None
    assert caught.value.file == "ns/x"
