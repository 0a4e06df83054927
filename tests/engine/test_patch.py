"""The apply configuration ``traffic.kind: patch`` sends: the weights, and only what leads there."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gatectl.engine.patch import PatchError, apply_body, weights_at

P = pytest.param
META = {"apiVersion": "x.example/v1", "kind": "Split", "metadata": {"name": "s", "uid": "u-1"}}


def _obj(spec: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(META), "spec": spec}


def _body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "x.example/v1",
        "kind": "Split",
        "metadata": {"name": "s", "namespace": "team-a"},
        "spec": spec,
    }


TRAFFICSPLIT = {  # SMI TrafficSplit v1alpha4
    "service": "triage",
    "backends": [
        {"service": "triage-llm", "weight": 0},
        {"service": "triage-rules", "weight": 100},
    ],
}
KSERVE = {  # KServe LLMInferenceService routing weights through an HTTPRoute spec
    "model": {"uri": "hf://org/model"},
    "router": {
        "route": {
            "http": {
                "spec": {
                    "rules": [
                        {
                            "backendRefs": [
                                {"name": "llm", "weight": 5},
                                {"name": "rules", "weight": 95},
                            ]
                        }
                    ]
                }
            }
        }
    },
}


@pytest.mark.parametrize(
    ("spec", "wanted", "expected"),
    [
        P(
            {"canary": {"weight": 0}, "stable": {"weight": 100}, "replicas": 3},
            {"/spec/canary/weight": 10, "/spec/stable/weight": 90},
            {"canary": {"weight": 10}, "stable": {"weight": 90}},
            id="objects-only-carry-the-path",
        ),
        P(
            TRAFFICSPLIT,
            {"/spec/backends/0/weight": 25, "/spec/backends/1/weight": 75},
            {
                "backends": [
                    {"service": "triage-llm", "weight": 25},
                    {"service": "triage-rules", "weight": 75},
                ]
            },
            id="a-list-on-the-way-is-sent-whole",
        ),
        P(
            KSERVE,
            {
                "/spec/router/route/http/spec/rules/0/backendRefs/0/weight": 50,
                "/spec/router/route/http/spec/rules/0/backendRefs/1/weight": 50,
            },
            {
                "router": {
                    "route": {
                        "http": {
                            "spec": {
                                "rules": [
                                    {
                                        "backendRefs": [
                                            {"name": "llm", "weight": 50},
                                            {"name": "rules", "weight": 50},
                                        ]
                                    }
                                ]
                            }
                        }
                    }
                }
            },
            id="deep-path-through-nested-lists",
        ),
        P(
            {"canary": {}, "stable": {"weight": 100}},
            {"/spec/canary/weight": 1, "/spec/stable/weight": 99},
            {"canary": {"weight": 1}, "stable": {"weight": 99}},
            id="a-missing-weight-is-added",
        ),
        P(
            {"a/b": {"w~x": 0}, "c": {"w": 100}},
            {"/spec/a~1b/w~0x": 40, "/spec/c/w": 60},
            {"a/b": {"w~x": 40}, "c": {"w": 60}},
            id="escaped-pointer",
        ),
    ],
)
def test_apply_body(spec: dict[str, Any], wanted: dict[str, int], expected: Any) -> None:
    current = _obj(spec)
    before = copy.deepcopy(current)
    assert apply_body(current, wanted, namespace="team-a") == _body(expected)
    assert current == before


@pytest.mark.parametrize(
    ("spec", "pointer", "value"),
    [
        P({"w": 7}, "/spec/w", 7.0, id="int"),
        P({"w": 7.5}, "/spec/w", 7.5, id="float"),
        P({}, "/spec/w", None, id="missing-leaf"),
        P({"l": [{"w": 3}]}, "/spec/l/0/w", 3.0, id="in-list"),
    ],
)
def test_weights_at(spec: dict[str, Any], pointer: str, value: float | None) -> None:
    assert weights_at(_obj(spec), pointer) == value


@pytest.mark.parametrize(
    ("spec", "pointer", "message"),
    [
        P({"w": True}, "/spec/w", "/spec/w: holds bool, not a weight (a number)", id="bool"),
        P({"w": "10"}, "/spec/w", "/spec/w: holds str, not a weight (a number)", id="string"),
        P({"w": {"x": 1}}, "/spec/w", "/spec/w: holds dict, not a weight (a number)", id="object"),
        P({}, "/spec/a/w", "/spec/a/w: no spec/a in the object", id="missing-parent"),
        P({"l": []}, "/spec/l/0", "/spec/l/0: no item '0' in a list of 0", id="empty-list"),
        P({"l": [1]}, "/spec/l/-", "/spec/l/-: no item '-' in a list of 1", id="append-marker"),
        P({"s": "x"}, "/spec/s/w", "/spec/s/w: spec/s is not an object or a list", id="scalar"),
    ],
)
def test_not_a_weight(spec: dict[str, Any], pointer: str, message: str) -> None:
    with pytest.raises(PatchError) as caught:
        weights_at(_obj(spec), pointer)
    assert str(caught.value) == message
