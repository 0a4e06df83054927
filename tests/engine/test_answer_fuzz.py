"""Fuzz: no Prometheus answer, however broken, makes ``evaluate`` promote, crash or hang.

Each query of one evaluation gets an answer drawn at random: well formed and
healthy, or one of the shapes a real server, a proxy or a broken exporter
produces (non-numbers, grammar a Go parser rejects, negative or inflated
counts, stale or partial data, wrong shapes, HTTP errors, truncated JSON).
The properties: nothing raises; the decision is one of the three; and a gate
promotes only when every answer was well formed and fresh. The all-healthy
draw must promote, so the property cannot pass by never promoting.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatectl.adapters.prometheus import PrometheusClient
from gatectl.core.catalog import freshness_steps
from gatectl.core.observations import Action, GateState
from gatectl.engine.evaluate import evaluate_gates_async
from gatectl.policy.models import Gate, GateSpec

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9"
SPEC = GateSpec.model_validate(
    {
        "canary_traffic": 0.1,
        "promotion_window": "1h",
        "min_samples": 100,
        "success_criteria": {
            "exception_rate": "<= 0.04",
            "human_override_rate": "<= 0.15",
            "critical_regressions": "== 0",
        },
        "rollback_trigger": [
            "exception_rate > 0.06",
            "reviewer_queue_sla_breach == true",
            "critical_regressions > 0",
        ],
    }
)
GATE = Gate(name="triage", spec=SPEC)
STATE = GateState(step_started_at=AT - timedelta(hours=2))

HEALTHY = {
    "workflow_exceptions": "100",
    "workflow_human_overrides": "500",
    "workflow_critical_regressions": "0",
    "workflow_reviewer_queue_sla_breached": "0",
    "workflow_requests": "10000",
}


def _series(promql: str) -> str:
    for name in HEALTHY:
        if name in promql:
            return name
    raise AssertionError(f"a query this test does not know: {promql}")


def _vector(samples: list[tuple[dict[str, str], str]], *, at: float) -> dict[str, Any]:
    result = [{"metric": labels, "value": [at, value]} for labels, value in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def good(promql: str, at: float) -> httpx.Response:
    if "gatectl_read" in promql:
        steps = freshness_steps(3600, at=at)
        return httpx.Response(
            200,
            json=_vector(
                [
                    ({"workflow": "triage", "gatectl_read": "newest"}, str(at - 5)),
                    ({"workflow": "triage", "gatectl_read": "coverage"}, str(steps)),
                ],
                at=at,
            ),
        )
    if 'track="baseline"' in promql and _series(promql) == "workflow_requests":
        # The exposure check: the baseline carries the other 90 % of the requests.
        return httpx.Response(200, json=_vector([({}, "90000")], at=at))
    return httpx.Response(200, json=_vector([({}, HEALTHY[_series(promql)])], at=at))


BAD_VALUES = [
    "NaN",
    "+Inf",
    "-Inf",
    "0_0",
    "１",
    " 1",
    "0x10",
    "1e",
    "",
    "-3",
    "1e400",
    "null",
    "true",
]


def bad(kind: str, promql: str, at: float) -> httpx.Response:
    """One broken answer of the given ``kind`` for ``promql``."""
    if kind.startswith("value:"):
        value = kind.split(":", 1)[1]
        if "gatectl_read" in promql:
            labels = {"workflow": "triage", "gatectl_read": "newest"}
            return httpx.Response(200, json=_vector([(labels, value)], at=at))
        return httpx.Response(200, json=_vector([({}, value)], at=at))
    if kind == "stale":
        if "gatectl_read" in promql:
            return httpx.Response(
                200,
                json=_vector(
                    [
                        ({"workflow": "triage", "gatectl_read": "newest"}, str(at - 45 * 3600)),
                        ({"workflow": "triage", "gatectl_read": "coverage"}, "3"),
                    ],
                    at=at,
                ),
            )
        return httpx.Response(200, json=_vector([], at=at))
    if kind == "empty":
        return httpx.Response(200, json=_vector([], at=at))
    if kind == "two-series":
        return httpx.Response(200, json=_vector([({"pod": "a"}, "1"), ({"pod": "b"}, "2")], at=at))
    if kind == "warnings":
        body = json.loads(good(promql, at).content)
        body["warnings"] = ["store gateway unavailable: partial result"]
        return httpx.Response(200, json=body)
    if kind == "partial":
        body = json.loads(good(promql, at).content)
        body["isPartial"] = True
        return httpx.Response(200, json=body)
    if kind == "inflated":  # more exceptions than requests, far beyond extrapolation
        return httpx.Response(200, json=_vector([({}, "1e9")], at=at))
    if kind == "matrix":
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": []}}
        )
    if kind == "error-status":
        return httpx.Response(200, json={"status": "error", "error": "bad_data"})
    if kind == "truncated":
        return httpx.Response(200, content=good(promql, at).content[:17])
    if kind.startswith("http:"):
        return httpx.Response(int(kind.split(":")[1]), text="no")
    raise AssertionError(kind)


BAD_KINDS = [
    *(f"value:{v}" for v in BAD_VALUES),
    "stale",
    "empty",
    "two-series",
    "warnings",
    "partial",
    "matrix",
    "error-status",
    "truncated",
    "http:400",
    "http:404",
    "http:500",
]
# Kinds that are bad for some series only: an inflated count is a fine request count.
SERIES_BAD = {"inflated": ("workflow_exceptions", "workflow_human_overrides")}

QUERIES = ["freshness", *HEALTHY]


def _query_key(promql: str) -> str:
    return "freshness" if "gatectl_read" in promql else _series(promql)


def evaluate(plan: dict[str, str | None]) -> tuple[Action, bool]:
    """Evaluate with answers per query key (``None`` healthy); also whether any was bad."""
    broken = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal broken
        promql = request.url.params["query"]
        at = float(request.url.params["time"])
        kind = plan[_query_key(promql)]
        if kind is None:
            return good(promql, at)
        if kind in SERIES_BAD and _query_key(promql) not in SERIES_BAD[kind]:
            return good(promql, at)
        broken = True
        return bad(kind, promql, at)

    def factory(settings_: Any, url: str | None) -> PrometheusClient:
        return PrometheusClient(URL, transport=httpx.MockTransport(handler))

    async def go() -> Any:
        return await evaluate_gates_async(
            [(GATE, STATE)], at=AT, url=URL, client_factory=factory, timeout=30
        )

    (evaluation,) = asyncio.run(go())
    return evaluation.decision.action, broken


def test_all_healthy_answers_promote() -> None:
    action, broken = evaluate(dict.fromkeys(QUERIES))
    assert (action, broken) == (Action.PROMOTE, False)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    st.fixed_dictionaries(
        {
            query: st.one_of(st.none(), st.sampled_from([*BAD_KINDS, *SERIES_BAD]))
            for query in QUERIES
        }
    )
)
def test_no_broken_answer_ever_promotes_or_raises(plan: dict[str, str | None]) -> None:
    action, broken = evaluate(plan)

    assert action in (Action.PROMOTE, Action.HOLD, Action.FALLBACK)
    if broken:
        assert action is not Action.PROMOTE, plan
