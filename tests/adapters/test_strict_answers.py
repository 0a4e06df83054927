"""Strict answers: Prometheus numbers only, no partial answers, counts >= 0, rates within [0, 1].

A real Prometheus never writes ``"0_0"``, a full-width digit, a warning on
demand, a negative count or a body past the cap, so these shapes come from
``httpx.MockTransport`` (``test_prometheus_real.py`` covers what a real one
does with ``partial_response`` and ``time=``). Each bad shape must end as
*no data* with its cause, never as a number a gate could promote on; so does a
Prometheus that never answers, once ``evaluate``'s one deadline has passed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gatectl.adapters.http import MiB
from gatectl.adapters.prometheus import PrometheusClient, Sample, parse_sample_value
from gatectl.core.observations import Action, GateState, ObservationSet
from gatectl.engine.evaluate import evaluate_gates_async
from gatectl.engine.observe import observe, plan_gate
from gatectl.errors import QueryError
from gatectl.policy import Gate, GateSpec, PrometheusSettings

AT = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9090"
ALLOW_HINT = "(prometheus.partial_response: allow accepts it)"


# --- the number grammar --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0.25", 0.25, id="decimal"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("-0", -0.0, id="negative-zero"),
        pytest.param("+1", 1.0, id="plus-sign"),
        pytest.param("12345678901234567890", 1.2345678901234567e19, id="long-integer"),
        pytest.param("1e-05", 1e-05, id="exponent"),
        pytest.param("1E+06", 1e06, id="capital-exponent"),
        pytest.param(".5", 0.5, id="leading-dot"),
        pytest.param("5.", 5.0, id="trailing-dot"),
        pytest.param("+Inf", math.inf, id="plus-inf"),
        pytest.param("-Inf", -math.inf, id="minus-inf"),
    ],
)
def test_prometheus_numbers_parse(text: str, expected: float) -> None:
    assert parse_sample_value(text) == expected


def test_nan_parses_as_nan() -> None:
    assert math.isnan(parse_sample_value("NaN"))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("0_0", "'0_0'", id="underscore"),
        pytest.param("\uff11", "'\uff11'", id="full-width-digit"),
        pytest.param("\u0661\u0662", "'\u0661\u0662'", id="arabic-indic-digits"),
        pytest.param(" 1", "' 1'", id="leading-space"),
        pytest.param("1\n", "'1\\n'", id="trailing-newline"),
        pytest.param("0x10", "'0x10'", id="hex"),
        pytest.param("0x1p-2", "'0x1p-2'", id="hex-float"),
        pytest.param("inf", "'inf'", id="lowercase-inf"),
        pytest.param("Infinity", "'Infinity'", id="infinity"),
        pytest.param("nan", "'nan'", id="lowercase-nan"),
        pytest.param("", "''", id="empty"),
        pytest.param("1e", "'1e'", id="bare-exponent"),
        pytest.param("1,5", "'1,5'", id="comma"),
        pytest.param("9" * 50 + "x", "'" + "9" * 40 + "…'", id="long-garbage-abridged"),
    ],
)
def test_other_float_forms_are_refused(text: str, shown: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_sample_value(text)
    assert str(caught.value) == (
        f"unexpected response: sample value {shown} is not a Prometheus number"
    )


# --- answers through the client --------------------------------------------------


def vector(value: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]},
        **extra,
    }


def query(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> tuple[list[Sample], list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async def go() -> list[Sample]:
        async with PrometheusClient(
            URL, transport=httpx.MockTransport(recording), **kwargs
        ) as client:
            return await client.query("up", at=AT)

    return asyncio.run(go()), seen


def answer(payload: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(200, json=payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            vector("1", warnings=["store 10.0.0.7:10901 unavailable"]),
            f"partial answer: Prometheus warned: store 10.0.0.7:10901 unavailable {ALLOW_HINT}",
            id="thanos-warning",
        ),
        pytest.param(
            vector("1", warnings=["a", "b", "c", "d", "e"]),
            f"partial answer: Prometheus warned: a; b; c (+2 more) {ALLOW_HINT}",
            id="many-warnings-abridged",
        ),
        pytest.param(
            vector("1", isPartial=True),
            f"partial answer: the response is marked isPartial {ALLOW_HINT}",
            id="is-partial-top-level",
        ),
        pytest.param(
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [], "isPartial": True},
            },
            f"partial answer: the response is marked isPartial {ALLOW_HINT}",
            id="is-partial-in-data",
        ),
        pytest.param(
            vector("0_0"),
            "unexpected response: sample value '0_0' is not a Prometheus number",
            id="underscore-number",
        ),
        pytest.param(
            vector("\uff11"),
            "unexpected response: sample value '\uff11' is not a Prometheus number",
            id="full-width-number",
        ),
    ],
)
def test_untrustworthy_answers_are_no_data_with_the_cause(payload: object, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        query(answer(payload))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(vector("1", warnings=["store down"]), id="warning"),
        pytest.param(vector("1", isPartial=True), id="is-partial"),
    ],
)
def test_partial_answers_are_used_when_the_policy_allows_them(payload: object) -> None:
    samples, _ = query(answer(payload), partial_response="allow")
    assert samples == [Sample({}, 1.0)]


def test_empty_warnings_and_infos_are_not_partial() -> None:
    samples, _ = query(answer(vector("1", warnings=[], infos=["metric might not be a counter"])))
    assert samples == [Sample({}, 1.0)]


@pytest.mark.parametrize(
    ("kwargs", "partial", "time"),
    [
        pytest.param({}, "false", AT, id="default"),
        pytest.param({"partial_response": "allow"}, "true", AT, id="allow"),
        pytest.param({"query_offset": 90.0}, "false", AT - timedelta(seconds=90), id="offset"),
    ],
)
def test_every_query_says_partial_response_and_its_shifted_time(
    kwargs: dict[str, Any], partial: str, time: datetime
) -> None:
    _, seen = query(answer(vector("1")), **kwargs)
    [request] = seen
    assert request.url.params["partial_response"] == partial
    assert request.url.params["time"] == f"{time.timestamp():.3f}"


def test_settings_carry_partial_response_and_query_offset() -> None:
    settings = PrometheusSettings(url=URL, partial_response="allow", query_offset="1m")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vector("1", warnings=["store down"]))

    async def go() -> list[Sample]:
        transport = httpx.MockTransport(handler)
        async with PrometheusClient.from_settings(settings, transport=transport) as client:
            return await client.query("up", at=AT)

    assert asyncio.run(go()) == [Sample({}, 1.0)]
    assert seen[0].url.params["time"] == f"{(AT - timedelta(minutes=1)).timestamp():.3f}"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param(
            httpx.Response(
                200, stream=httpx.ByteStream(json.dumps(vector("1")).encode() + b" " * MiB)
            ),
            "response body is larger than the cap of 1 MiB: not read",
            id="oversized",
        ),
        pytest.param(
            httpx.Response(
                200,
                headers={"Content-Encoding": "gzip"},
                stream=httpx.ByteStream(gzip.compress(b" " * (4 * MiB))),
            ),
            "decompressed response body is larger than the cap of 1 MiB: not read",
            id="gzip-bomb",
        ),
    ],
)
def test_answers_past_the_cap_are_no_data_and_not_retried(
    response: httpx.Response, message: str
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return response

    with pytest.raises(QueryError) as caught:
        query(handler, max_body_bytes=MiB)
    assert str(caught.value) == message
    assert len(calls) == 1


# --- counts and rates as observations -------------------------------------------


def gate() -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "rollback_trigger": ["critical_regressions > 0"],
        }
    )
    return Gate(name="triage", spec=spec)


def observed(exceptions: str, requests: str, regressions: str) -> ObservationSet:
    def handler(request: httpx.Request) -> httpx.Response:
        promql = request.url.params["query"]
        for needle, value in (
            ("exceptions", exceptions),
            ("regressions", regressions),
            ("requests", requests),
        ):
            if needle in promql:
                return httpx.Response(200, json=vector(value))
        raise AssertionError(promql)

    async def go() -> ObservationSet:
        async with PrometheusClient(URL, transport=httpx.MockTransport(handler)) as client:
            plans = [plan_gate(gate(), window_seconds=3600)]
            return (await observe(plans, client, at=AT))["default/triage"]

    return asyncio.run(go())


def test_a_negative_count_is_no_data() -> None:
    regressions = observed("1", "100", "-3").canary["critical_regressions"]
    assert (regressions.value, regressions.error) == (
        None,
        "count is negative (-3): a count cannot be below 0",
    )


def test_a_negative_sample_count_is_no_data() -> None:
    result = observed("1", "-100", "0")
    assert (result.samples.value, result.samples.error) == (
        None,
        "count is negative (-100): a count cannot be below 0",
    )
    rate = result.canary["exception_rate"]
    assert (rate.value, rate.error) == (
        None,
        "denominator is negative (-100): a count cannot be below 0",
    )


def test_a_negative_numerator_is_no_data() -> None:
    rate = observed("-4", "100", "0").canary["exception_rate"]
    assert (rate.value, rate.error) == (
        None,
        "numerator is negative (-4): a count cannot be below 0",
    )


def test_a_rate_clearly_above_one_is_no_data() -> None:
    rate = observed("120", "100", "0").canary["exception_rate"]
    assert (rate.value, rate.error) == (
        None,
        "rate is above 1 (120/100): more events than requests",
    )


@pytest.mark.parametrize(
    ("exceptions", "requests", "expected"),
    [
        pytest.param("0", "100", 0.0, id="zero"),
        pytest.param("100", "100", 1.0, id="one"),
        pytest.param("2.5", "100", 0.025, id="fractional-increase"),
        # increase() extrapolates each counter alone: every request failing can read a
        # hair above 1, which is a failure rate of 1 (a fallback), not no data (a hold).
        pytest.param("102.4", "100", 1.0, id="extrapolated-just-above-one"),
        pytest.param("105", "100", 1.0, id="at-the-slack"),
    ],
)
def test_rates_within_zero_and_one_are_kept(
    exceptions: str, requests: str, expected: float
) -> None:
    result = observed(exceptions, requests, "0")
    assert result.canary["exception_rate"].value == expected
    assert result.canary["critical_regressions"].value == 0.0


# --- one deadline for the whole evaluation --------------------------------------


def test_evaluate_ends_at_its_deadline_with_no_data_and_holds() -> None:
    """Prometheus never answers: every gate still gets a hold, each check says why."""

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    def client(settings: PrometheusSettings, url: str | None) -> PrometheusClient:
        return PrometheusClient(URL, transport=httpx.MockTransport(never))

    gates = []
    # 6 gates, 4 reads each: more than the 16 sent at once, so at least two reads that a
    # check shows (not every gate's shared request count) are still queued at the deadline.
    for name in "abcdef":
        spec = GateSpec.model_validate(
            {
                "canary_traffic": 0.1,
                "promotion_window": "1h",
                "success_criteria": {"exception_rate": "<= 0.04", "human_override_rate": "<= 1"},
                "rollback_trigger": ["critical_regressions > 0"],
            }
        )
        gates.append(
            (Gate(name=name, spec=spec), GateState(step_started_at=AT - timedelta(hours=2)))
        )

    results = asyncio.run(
        evaluate_gates_async(gates, at=AT, url=None, client_factory=client, timeout=0.2)
    )
    cut = "no answer within the 0.2s deadline of this evaluation"
    causes = set()
    for result in results:
        assert result.decision.action is Action.HOLD
        for check in (*result.decision.criteria, *result.decision.triggers):
            assert check.result == "no_data"
            error = check.error or ""
            causes.add(error.removeprefix("numerator: ").removeprefix("denominator: "))
    assert causes == {cut, f"not sent: {cut}"}
