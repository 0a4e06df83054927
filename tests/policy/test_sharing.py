"""Gates made from one template share their equal sub-models (issue 12: memory per gate).

A fleet of 10,000 gates is a few templates with a workflow name each: their
criteria, triggers and settings are one instance each, not 10,000 copies.
Sharing must never change a value: a gate's dump is what it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from gatectl.policy.models import Gate, GateSpec, shared


def spec(workflow: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow": workflow,
        "canary_traffic": 0.05,
        "steps": [0.05, 0.25, 1.0],
        "promotion_window": "1h",
        "success_criteria": {"exception_rate": "<= 0.04", "critical_regressions": "== 0"},
        "rollback_trigger": ["exception_rate > 0.06", {"expression": "critical_regressions > 0"}],
        "prometheus": {"scrape_interval": "1m", "timeout": "60s"},
        "traffic": {"kind": "none"},
        "metrics": {"exception_rate": {"numerator": "a{w='{{workflow}}'}", "denominator": "b"}},
    }
    body.update(changes)
    return body


def parts(value: GateSpec) -> list[object]:
    return [
        value.success_criteria["exception_rate"],
        value.success_criteria["critical_regressions"],
        value.rollback_trigger[0],
        value.rollback_trigger[1],
        value.metrics["exception_rate"],
        value.prometheus,
        value.exposure,
        value.traffic,
        value.model_fields_set,
    ]


def test_two_gates_of_one_template_share_every_equal_part() -> None:
    one = GateSpec.model_validate(spec("wf-1"))
    two = GateSpec(**spec("wf-2"))  # built directly, not through model_validate
    assert [a is b for a, b in zip(parts(one), parts(two), strict=True)] == [True] * 9
    assert (one.workflow, two.workflow) == ("wf-1", "wf-2")


@pytest.mark.parametrize(
    ("changes", "index"),
    [
        pytest.param(
            {"success_criteria": {"exception_rate": "<= 0.05", "critical_regressions": "== 0"}},
            0,
            id="criterion",
        ),
        pytest.param({"rollback_trigger": ["exception_rate > 0.07", "x > 0"]}, 2, id="trigger"),
        pytest.param({"prometheus": {"scrape_interval": "30s"}}, 5, id="prometheus"),
        pytest.param({"traffic": {"kind": "file", "path": "/tmp/share"}}, 7, id="traffic"),
    ],
)
def test_a_part_that_differs_is_its_own(changes: dict[str, Any], index: int) -> None:
    one = GateSpec.model_validate(spec("wf-1"))
    other = GateSpec.model_validate(spec("wf-2", **changes))
    assert parts(one)[index] is not parts(other)[index]
    assert parts(one)[index] != parts(other)[index]


def test_given_fields_count_a_default_given_explicitly_is_not_the_same_part() -> None:
    implicit = GateSpec.model_validate(spec("a", success_criteria={"x": {"condition": "< 1"}}))
    explicit = GateSpec.model_validate(
        spec("b", success_criteria={"x": {"condition": "< 1", "dry_run": False}})
    )
    first, second = implicit.success_criteria["x"], explicit.success_criteria["x"]
    assert first == second
    assert first is not second
    assert (first.model_fields_set, second.model_fields_set) == (
        {"condition"},
        {"condition", "dry_run"},
    )


def test_sharing_changes_no_value() -> None:
    body = spec("wf-1")
    one = GateSpec.model_validate(body)
    GateSpec.model_validate(spec("wf-2"))
    dumped = one.model_dump(mode="json", by_alias=True)
    alone = GateSpec.model_validate(body)
    assert one == alone and one.model_dump(mode="json", by_alias=True) == dumped
    assert dumped["success_criteria"] == {
        "exception_rate": {
            "confidence": None,
            "dry_run": False,
            "on_no_data": None,
            "condition": "<= 0.04",
        },
        "critical_regressions": {
            "confidence": None,
            "dry_run": False,
            "on_no_data": None,
            "condition": "== 0",
        },
    }
    assert [t["expression"] for t in dumped["rollback_trigger"]] == [
        "exception_rate > 0.06",
        "critical_regressions > 0",
    ]
    copied = one.model_copy(update={"workflow": "wf-3"})
    assert copied.model_fields_set is not one.model_fields_set  # a copy never mutates the shared
    assert one.model_fields_set == set(body)


def test_gates_share_their_given_fields_and_shared_returns_the_first_equal_instance() -> None:
    a = Gate(name="a", spec=GateSpec.model_validate(spec("a")))
    b = Gate(name="b", spec=GateSpec.model_validate(spec("b")))
    assert a.model_fields_set is b.model_fields_set
    assert shared(a.spec.prometheus.model_copy()) is a.spec.prometheus
