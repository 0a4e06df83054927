"""The observe step: rates keep their counts, failures become no data, batches split by workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from gatectl.adapters.prometheus import Sample
from gatectl.core.catalog import (
    freshness_batch_query,
    freshness_query,
    freshness_steps,
    newest_query,
)
from gatectl.core.observations import Freshness, ObservationSet
from gatectl.engine.observe import observe, plan_gate
from gatectl.errors import QueryError
from gatectl.policy import Gate, GateSpec

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def gate(name: str, **extra: object) -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "rollback_trigger": ["critical_regressions > 0"],
            **extra,
        }
    )
    return Gate(name=name, spec=spec)


class Answers:
    """Answers by substring; records every query."""

    def __init__(self, answers: dict[str, list[Sample] | QueryError]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        assert at == AT
        self.queries.append(promql)
        for needle, answer in self.answers.items():
            if needle in promql:
                if isinstance(answer, QueryError):
                    raise answer
                return answer
        return []


def one(value: float, workflow: str = "") -> list[Sample]:
    return [Sample(labels={"workflow": workflow} if workflow else {}, value=value)]


def run(gates: list[Gate], client: Answers, *, batch: bool = False) -> dict[str, object]:
    plans = [plan_gate(g, window_seconds=3600) for g in gates]
    return dict(asyncio.run(observe(plans, client, at=AT, batch=batch)))


def test_rate_keeps_numerator_and_denominator() -> None:
    client = Answers({"exceptions": one(12), "requests": one(400), "regressions": one(0)})
    observed = run([gate("a")], client)["default/a"]
    rate = observed.canary["exception_rate"]  # type: ignore[attr-defined]
    assert (rate.value, rate.numerator, rate.denominator) == (0.03, 12, 400)
    assert rate.query["numerator"].startswith("sum(increase(workflow_exceptions_total")
    assert observed.samples.value == 400  # type: ignore[attr-defined]


def test_zero_requests_is_no_data_with_its_cause() -> None:
    client = Answers({"exceptions": one(0), "requests": one(0), "regressions": one(0)})
    rate = run([gate("a")], client)["default/a"].canary["exception_rate"]  # type: ignore[attr-defined]
    assert rate.value is None
    assert rate.error == "no canary requests in the window (denominator is 0)"


def test_query_error_and_empty_result_become_no_data() -> None:
    client = Answers({"exceptions": QueryError("HTTP 503: overloaded"), "requests": one(5)})
    observed = run([gate("a")], client)["default/a"]
    assert observed.canary["exception_rate"].error == "numerator: HTTP 503: overloaded"  # type: ignore[attr-defined]
    regressions = observed.canary["critical_regressions"]  # type: ignore[attr-defined]
    assert regressions.value is None
    assert "empty result" in regressions.error


def test_metric_without_definition_is_no_data_that_names_it() -> None:
    g = gate("a", success_criteria={"latency_p99": "<= 2"}, metrics={})
    client = Answers({"requests": one(5), "regressions": one(0)})
    observed = run([g], client)["default/a"]
    assert observed.canary["latency_p99"].error == (  # type: ignore[attr-defined]
        "no definition for metric 'latency_p99': add it under metrics: in the policy"
    )


def test_batched_reads_split_by_workflow_and_missing_workflow_is_no_data() -> None:
    client = Answers(
        {
            "exceptions": one(1, "a") + one(2, "b"),
            "requests": one(100, "a") + one(100, "b"),
            "regressions": one(0, "a"),
        }
    )
    observed = run([gate("a"), gate("b"), gate("c")], client, batch=True)
    # exceptions, requests, regressions, the dispersion of exception_rate, its
    # baseline's 6 h history (pooled into the canary's dispersion), the freshness of
    # all three workflows, and the exposure check's two (the baseline's requests, the
    # canary's requests over the grace)
    assert len(client.queries) == 8
    assert all("by (workflow)" in q for q in client.queries)
    assert observed["default/a"].canary["exception_rate"].value == 0.01  # type: ignore[attr-defined]
    assert observed["default/b"].canary["exception_rate"].value == 0.02  # type: ignore[attr-defined]
    assert observed["default/b"].canary["critical_regressions"].value is None  # type: ignore[attr-defined]
    assert observed["default/c"].samples.value is None  # type: ignore[attr-defined]


def test_baseline_is_read_only_for_relative_conditions_and_on_its_own_track() -> None:
    g = gate("a", success_criteria={"exception_rate": "<= baseline * 1.2"})
    client = Answers({"exceptions": one(1), "requests": one(100), "regressions": one(0)})
    observed = run([g], client)["default/a"]
    baseline_queries = [q for q in client.queries if 'track="baseline"' in q]
    # numerator, denominator, dispersion over the window and over the pooled 6 h
    assert len(baseline_queries) == 4
    assert set(observed.baseline) == {"exception_rate"}  # type: ignore[attr-defined]
    plain = Answers({"exceptions": one(1), "requests": one(100), "regressions": one(0)})
    run([gate("b")], plain)
    # the exposure check (on by default) reads the baseline's requests; the only other
    # baseline read is the rate's dispersion over the last 6 h (pooled into the canary's)
    history = [q for q in plain.queries if "baseline" in q and "[21600s:60s]" in q]
    assert len(history) == 1 and "gatectl_dispersion" in history[0]
    assert [q for q in plain.queries if "baseline" in q and q not in history] == [
        'sum(increase(workflow_requests_total{workflow="b",track="baseline"}[3600s]))'
    ]
    off = Answers({"exceptions": one(1), "requests": one(100), "regressions": one(0)})
    run([gate("c", exposure={"enabled": False})], off)
    assert [q for q in off.queries if "baseline" in q and "[21600s:60s]" not in q] == []


def read(workflow: str, kind: str, value: float) -> Sample:
    return Sample(labels={"workflow": workflow, "gatectl_read": kind}, value=value)


def test_freshness_is_one_query_per_window_for_every_workflow_in_it() -> None:
    steps = freshness_steps(3600, at=AT.timestamp())
    client = Answers(
        {
            "[3600s:36s]": [
                read("a", "newest", AT.timestamp() - 10),
                read("a", "coverage", steps / 2),
                read("b", "newest", AT.timestamp() - 7200),
                read("b", "coverage", steps + 5),
            ],
            "[600s:6s]": [read("c", "newest", AT.timestamp()), read("c", "coverage", 101)],
        }
    )
    plans = [
        plan_gate(gate("a"), window_seconds=3600),
        plan_gate(gate("b"), window_seconds=3600.7),
        plan_gate(gate("c"), window_seconds=600),
        plan_gate(gate("d"), window_seconds=600),
    ]
    observed = asyncio.run(observe(plans, client, at=AT, batch=True))
    assert len([q for q in client.queries if "gatectl_read" in q]) == 2
    assert {k: v.freshness for k, v in observed.items()} == {
        "default/a": Freshness(10.0, 0.5, freshness_query(["a"], window_seconds=3600)),
        "default/b": Freshness(7200.0, 1.0, freshness_query(["b"], window_seconds=3600)),
        "default/c": Freshness(0.0, 1.0, freshness_query(["c"], window_seconds=600)),
        # No canary request series at all: no newest sample, nothing covered.
        "default/d": Freshness(None, 0.0, freshness_query(["d"], window_seconds=600)),
    }


class ByQuery(Answers):
    """Answers the first query matching ``needle`` with the first answer, the next with the next."""

    def __init__(self, needle: str, answers: list[list[Sample] | QueryError]) -> None:
        super().__init__({})
        self.needle, self.left = needle, list(answers)

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        if self.needle not in promql:
            return await super().query(promql, at=at)
        self.queries.append(promql)
        answer = self.left.pop(0)
        if isinstance(answer, QueryError):
            raise answer
        return answer


def test_a_fleet_reads_the_newest_subquery_only_for_workflows_without_a_recent_sample() -> None:
    steps = freshness_steps(3600, at=AT.timestamp())
    client = ByQuery(
        "gatectl_read",
        [
            [
                read("fresh", "newest", AT.timestamp() - 10),
                read("fresh", "coverage", steps),
                read("older", "coverage", steps / 4),  # no sample within the lookback delta
                read("gone", "coverage", steps / 2),
            ],
            [read("older", "newest", AT.timestamp() - 1800)],  # "gone": not even in the window
        ],
    )
    plans = [plan_gate(gate(w), window_seconds=3600) for w in ("fresh", "older", "gone", "none")]
    observed = asyncio.run(observe(plans, client, at=AT, batch=True))
    first, second = [q for q in client.queries if "gatectl_read" in q]
    assert first == freshness_batch_query(["fresh", "gone", "none", "older"], window_seconds=3600)
    assert second == newest_query(["gone", "older"], window_seconds=3600)
    assert {k: (v.newest_age_seconds, v.coverage) for k, v in fresh_of(observed).items()} == {
        "default/fresh": (10.0, 1.0),
        "default/older": (1800.0, 0.25),
        "default/gone": (None, 0.5),
        "default/none": (None, 0.0),
    }
    assert fresh_of(observed)["default/older"].query == freshness_query(
        ["older"], window_seconds=3600
    )


def test_no_newest_subquery_when_every_covered_workflow_has_a_recent_sample() -> None:
    steps = freshness_steps(3600, at=AT.timestamp())
    answer = [read("a", "newest", AT.timestamp() - 10), read("a", "coverage", steps)]
    client = ByQuery("gatectl_read", [answer])
    asyncio.run(observe([plan_gate(gate("a"), window_seconds=3600)], client, at=AT, batch=True))
    assert client.queries.count(freshness_batch_query(["a"], window_seconds=3600)) == 1
    assert len([q for q in client.queries if "gatectl_read" in q]) == 1


def test_a_failed_newest_read_is_an_error_only_for_the_workflows_it_was_for() -> None:
    steps = freshness_steps(3600, at=AT.timestamp())
    client = ByQuery(
        "gatectl_read",
        [
            [
                read("a", "newest", AT.timestamp() - 10),
                read("a", "coverage", steps),
                read("b", "coverage", steps),
            ],
            QueryError("HTTP 503: overloaded"),
        ],
    )
    plans = [plan_gate(gate(w), window_seconds=3600) for w in ("a", "b")]
    found = fresh_of(asyncio.run(observe(plans, client, at=AT, batch=True)))
    assert (found["default/a"].error, found["default/a"].newest_age_seconds) == (None, 10.0)
    assert (found["default/b"].error, found["default/b"].coverage) == ("HTTP 503: overloaded", None)


def fresh_of(observed: Mapping[str, ObservationSet]) -> dict[str, Freshness]:
    found = {}
    for key, observation in observed.items():
        assert observation.freshness is not None
        found[key] = observation.freshness
    return found


def test_freshness_ages_count_from_the_instant_read_after_a_query_offset() -> None:
    class Offset(Answers):
        query_offset = 60.0  # the client reads as of AT - 60 s

    read_at = AT.timestamp() - 60
    client = Offset(
        {
            "[3600s:36s]": [
                read("a", "newest", read_at - 10),
                read("a", "coverage", freshness_steps(3600, at=read_at)),
            ]
        }
    )
    observed = asyncio.run(
        observe([plan_gate(gate("a"), window_seconds=3600)], client, at=AT, batch=True)
    )
    freshness = observed["default/a"].freshness
    assert freshness is not None
    assert (freshness.newest_age_seconds, freshness.coverage) == (10.0, 1.0)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(QueryError("HTTP 503: overloaded"), "HTTP 503: overloaded", id="failed"),
        pytest.param(
            [Sample(labels={"workflow": "a"}, value=1.0)],
            'unexpected series {workflow="a"}',
            id="series-without-its-read-label",
        ),
        pytest.param(
            [read("a", "newest", float("nan"))], "newest of 'a' is nan", id="not-a-number"
        ),
    ],
)
def test_a_freshness_answer_that_cannot_be_read_is_an_error_for_every_gate_in_it(
    answer: list[Sample] | QueryError, error: str
) -> None:
    client = Answers({"gatectl_read": answer})
    observed = run([gate("a"), gate("b")], client)
    for key in ("default/a", "default/b"):
        freshness = observed[key].freshness  # type: ignore[attr-defined]
        assert (freshness.error, freshness.newest_age_seconds) == (error, None)


def test_rate_triggers_are_read_over_the_three_recent_windows() -> None:
    g = gate("a", rollback_trigger=["exception_rate > 0.06"])
    client = Answers({"exceptions": one(30), "requests": one(1000), "regressions": one(0)})
    plans = [plan_gate(g, window_seconds=48 * 3600)]
    observed = asyncio.run(observe(plans, client, at=AT))["default/a"]
    # 12:00 UTC: the 1 h and 3 h windows start an hour / three hours back; the 9 h one at
    # the multiple of 9 h since the epoch before the last (21,600 s past one at 12:00)
    assert set(observed.recent) == {
        "exception_rate",
        "exception_rate@10800",
        "exception_rate@32400",
    }
    assert observed.recent_seconds == 3600.0
    for span in (3600, 10800, 32400 + 21600):
        assert any(f"[{span}s]" in q for q in client.queries), span
