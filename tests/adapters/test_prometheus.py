"""The Prometheus reader against fault shapes a real server cannot produce on demand.

Network and time are both swapped: ``httpx.MockTransport`` answers, a fake
clock and a recording ``sleep`` stand in for time, so retries, ``Retry-After``
and the deadline are checked by what was slept, never by a stopwatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import socket
import ssl
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.required import missing

from gatectl.adapters.http import RetryPolicy
from gatectl.adapters.prometheus import (
    ENV_URL,
    PrometheusClient,
    Sample,
    escape_label_value,
    form_encode,
    single_value,
)
from gatectl.errors import QueryError, UsageError
from gatectl.policy import PrometheusSettings

AT = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
AT_PARAM = f"{AT.timestamp():.3f}"
URL = "http://prometheus.test:9090"


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [AT.timestamp(), v]} for m, v in series],
        },
    }


ONE = vector(({"workflow": "triage"}, "0.25"))


class FakeTime:
    """A clock that only moves when ``sleep`` is awaited, and the record of those sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A MockTransport handler answering from a list (the last answer repeats)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(payload: object) -> httpx.Response:
    return httpx.Response(200, json=payload)


def run_query(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    fake: FakeTime | None = None,
    promql: str = "up",
    **kwargs: Any,
) -> list[Sample]:
    fake = fake or FakeTime()

    async def go() -> list[Sample]:
        async with PrometheusClient(
            kwargs.pop("url", URL),
            transport=httpx.MockTransport(handler),
            sleep=fake.sleep,
            clock=fake.clock,
            **kwargs,
        ) as client:
            return await client.query(promql, at=AT)

    return asyncio.run(go())


# --- successful shapes ------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(ONE, [Sample({"workflow": "triage"}, 0.25)], id="vector-one-series"),
        pytest.param(vector(), [], id="vector-empty"),
        pytest.param(
            vector(({"a": "1"}, "1"), ({"a": "2"}, "NaN")),
            [Sample({"a": "1"}, 1.0), Sample({"a": "2"}, math.nan)],
            id="vector-two-series-nan-kept",
        ),
        pytest.param(
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "+Inf"]}},
            [Sample({}, math.inf)],
            id="scalar-becomes-unlabelled-sample",
        ),
    ],
)
def test_result_shapes_become_samples(payload: object, expected: list[Sample]) -> None:
    samples = run_query(Script(ok(payload)))
    assert [s.labels for s in samples] == [e.labels for e in expected]
    for got, want in zip(samples, expected, strict=True):
        assert got.value == want.value or (math.isnan(got.value) and math.isnan(want.value))


def test_every_request_carries_query_and_time_even_on_retries() -> None:
    script = Script(httpx.Response(503), httpx.Response(502), ok(ONE))
    run_query(script, promql='sum(rate(x{a="b"}[5m]))')
    assert len(script.requests) == 3
    for request in script.requests:
        assert request.method == "GET"
        assert request.url.path == "/api/v1/query"
        assert request.url.params["query"] == 'sum(rate(x{a="b"}[5m]))'
        assert request.url.params["time"] == AT_PARAM


def test_long_query_is_posted_as_a_form_with_time() -> None:
    script = Script(ok(ONE))
    promql = 'sum by (workflow) (x{workflow=~"' + "|".join(f"wf-{i}" for i in range(900)) + '"})'
    run_query(script, promql=promql)
    [request] = script.requests
    assert request.method == "POST"
    form = httpx.QueryParams(request.content.decode())
    assert form["query"] == promql
    assert form["time"] == AT_PARAM
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=4))
def test_a_form_is_encoded_byte_for_byte_as_urlencode_writes_it(params: dict[str, str]) -> None:
    assert form_encode(params) == urllib.parse.urlencode(params).encode("ascii")


def test_a_form_keeps_regex_and_promql_text_exactly() -> None:
    params = {"query": 'x{w=~"^(a\\.b|c d|é)$"} or 1+2', "time": "1.5"}
    assert form_encode(params) == urllib.parse.urlencode(params).encode("ascii")
    assert httpx.QueryParams(form_encode(params).decode())["query"] == params["query"]


def test_user_agent_names_gatectl() -> None:
    script = Script(ok(ONE))
    run_query(script)
    assert script.requests[0].headers["User-Agent"].startswith("gatectl")


def test_url_path_prefix_is_kept() -> None:
    script = Script(ok(ONE))
    run_query(script, url="http://prom.test/tenant-a/")
    assert script.requests[0].url.path == "/tenant-a/api/v1/query"


def test_naive_datetime_is_refused_as_a_bug() -> None:
    async def go() -> None:
        async with PrometheusClient(URL, transport=httpx.MockTransport(Script(ok(ONE)))) as c:
            await c.query("up", at=datetime(2026, 1, 1))

    with pytest.raises(ValueError, match="timezone-aware"):
        asyncio.run(go())


# --- final failures: no retry -----------------------------------------------


@pytest.mark.parametrize(
    ("response", "cause"),
    [
        pytest.param(
            httpx.Response(200, text='{"status":"success","data":{"resultType":"vec'),
            'invalid JSON from Prometheus (HTTP 200): {"status":"success","data":{"resultType":"vec',
            id="truncated-json",
        ),
        pytest.param(
            httpx.Response(200, text="<html>login</html>"),
            "invalid JSON from Prometheus (HTTP 200): <html>login</html>",
            id="html-instead-of-json",
        ),
        pytest.param(
            httpx.Response(200, text=""),
            "invalid JSON from Prometheus (HTTP 200): empty body",
            id="empty-body",
        ),
        pytest.param(
            httpx.Response(
                400,
                json={
                    "status": "error",
                    "errorType": "bad_data",
                    "error": 'invalid parameter "query": 1:5: parse error',
                },
            ),
            'HTTP 400 Bad Request from Prometheus: bad_data: invalid parameter "query": 1:5:'
            " parse error",
            id="prometheus-error-json-400",
        ),
        pytest.param(
            httpx.Response(422, json={"status": "error", "errorType": "execution", "error": "x"}),
            "HTTP 422 Unprocessable Entity from Prometheus: execution: x",
            id="prometheus-error-json-422",
        ),
        pytest.param(
            httpx.Response(401, text="Unauthorized\n"),
            "HTTP 401 Unauthorized from Prometheus: Unauthorized",
            id="plain-text-401",
        ),
        pytest.param(
            httpx.Response(302, headers={"Location": "https://sso.example/login"}),
            "HTTP 302 Found from Prometheus: redirected to https://sso.example/login",
            id="redirect-not-followed",
        ),
        pytest.param(
            ok({"status": "error", "errorType": "timeout", "error": "query timed out"}),
            "Prometheus status 'error': timeout: query timed out",
            id="status-error-in-200",
        ),
        pytest.param(
            ok({"status": "success", "data": {"resultType": "matrix", "result": []}}),
            "expected an instant vector or scalar, got a matrix result",
            id="matrix-result",
        ),
        pytest.param(
            ok({"status": "success", "data": {"resultType": "string", "result": [1, "a"]}}),
            "expected an instant vector or scalar, got a string result",
            id="string-result",
        ),
        pytest.param(
            ok({"status": "success"}),
            "unexpected response: 'data' is missing or not an object",
            id="no-data-field",
        ),
        pytest.param(
            ok([1, 2]), "unexpected response: expected a JSON object, got [1, 2]", id="json-array"
        ),
        pytest.param(
            ok({"status": "success", "data": {"resultType": "vector", "result": {}}}),
            "unexpected response: vector result is not a list",
            id="vector-not-a-list",
        ),
        pytest.param(
            ok(vector(({}, "zero"))),
            "unexpected response: sample value 'zero' is not a Prometheus number",
            id="value-not-a-number",
        ),
        pytest.param(
            ok(
                {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": 3}]},
                }
            ),
            'unexpected response: sample value 3 is not [time, "value"]',
            id="value-not-a-pair",
        ),
        pytest.param(
            ok(
                {
                    "status": "success",
                    "data": {
                        "resultType": "vector",
                        "result": [{"metric": {"a": 1}, "value": [1, "1"]}],
                    },
                }
            ),
            "unexpected response: series labels are not a string map",
            id="labels-not-strings",
        ),
        pytest.param(
            ok({"status": "success", "data": {"resultType": "histogram", "result": []}}),
            "unexpected response: unknown resultType 'histogram'",
            id="unknown-result-type",
        ),
    ],
)
def test_bad_answers_are_final_query_errors_with_their_cause(
    response: httpx.Response, cause: str
) -> None:
    script = Script(response)
    fake = FakeTime()
    with pytest.raises(QueryError) as caught:
        run_query(script, fake=fake)
    assert str(caught.value) == cause
    assert len(script.requests) == 1, "a non-transient failure must not be retried"
    assert fake.sleeps == []


# --- retries ----------------------------------------------------------------


def test_503_then_success_retries_once_and_logs_attempt_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(httpx.Response(503, text="overloaded"), ok(ONE))
    fake = FakeTime()
    with caplog.at_level(logging.WARNING, logger="gatectl.adapters.prometheus"):
        samples = run_query(script, fake=fake)
    assert samples == [Sample({"workflow": "triage"}, 0.25)]
    assert len(script.requests) == 2
    assert fake.sleeps == [0.1]
    assert caplog.messages == [
        "Prometheus query failed (HTTP 503 Service Unavailable from Prometheus: overloaded);"
        " retry #2/4 in 0.1s"
    ]


def test_429_honours_retry_after_seconds() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}), ok(ONE))
    fake = FakeTime()
    assert run_query(script, fake=fake) == [Sample({"workflow": "triage"}, 0.25)]
    assert fake.sleeps == [3.0]


def test_persistent_5xx_gives_up_after_max_attempts_with_last_cause() -> None:
    script = Script(
        httpx.Response(500, json={"status": "error", "errorType": "internal", "error": "boom"})
    )
    fake = FakeTime()
    with pytest.raises(QueryError) as caught:
        run_query(script, fake=fake, timeout=60)
    assert str(caught.value) == (
        "HTTP 500 Internal Server Error from Prometheus: internal: boom (gave up after 4 attempts)"
    )
    assert len(script.requests) == 4
    assert fake.sleeps == [0.1, 0.2, 0.4]


def test_pauses_follow_the_retry_policy_given() -> None:
    fake = FakeTime()
    retry = RetryPolicy(delays=(1.0, 3.0, 0.5))
    with pytest.raises(QueryError, match=r"gave up after 4 attempts\)$"):
        run_query(Script(httpx.Response(503)), fake=fake, timeout=600, retry=retry)
    assert fake.sleeps == [1.0, 3.0, 0.5]


def test_deadline_stops_attempts_before_max_attempts() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "2"}))
    fake = FakeTime()
    with pytest.raises(QueryError, match=r"gave up after 3 attempts, 5s deadline"):
        run_query(script, fake=fake, timeout=5, retry=RetryPolicy(delays=(0.1,) * 9))
    assert len(script.requests) == 3
    assert fake.sleeps == [2.0, 2.0]
    assert sum(fake.sleeps) < 5


def test_retry_after_beyond_the_deadline_is_not_slept() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "60"}))
    fake = FakeTime()
    with pytest.raises(QueryError, match=r"HTTP 429 .*gave up after 1 attempt, 10s deadline"):
        run_query(script, fake=fake, timeout=10)
    assert fake.sleeps == []


def test_each_attempt_gets_only_the_remaining_time() -> None:
    seen: list[float] = []
    fake = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"]["read"])
        fake.now += 3  # every attempt takes 3 s
        return httpx.Response(503)

    with pytest.raises(QueryError):
        run_query(handler, fake=fake, timeout=10, retry=RetryPolicy(delays=(0.1,) * 9))
    assert seen[0] == pytest.approx(10)
    assert all(later < earlier for earlier, later in itertools.pairwise(seen))
    assert fake.now - 1000.0 < 10 + 3, "no attempt may start after the deadline"


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        pytest.param(
            httpx.ReadTimeout("read timed out"),
            f"timed out waiting for {URL}: ReadTimeout",
            id="read-timeout",
        ),
        pytest.param(
            httpx.ConnectTimeout("connect timed out"),
            f"timed out waiting for {URL}: ConnectTimeout",
            id="connect-timeout",
        ),
        pytest.param(
            httpx.ConnectError("[Errno 111] Connection refused"),
            f"cannot connect to {URL}: ConnectError: [Errno 111] Connection refused",
            id="connect",
        ),
        pytest.param(
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            f"connection to {URL} failed: RemoteProtocolError: Server disconnected without"
            " sending a response.",
            id="server-disconnected",
        ),
        pytest.param(
            httpx.ReadError("reset by peer"),
            f"connection to {URL} failed: ReadError: reset by peer",
            id="read-error",
        ),
    ],
)
def test_transport_failures_are_retried_then_reported(error: Exception, cause: str) -> None:
    script = Script(error)
    with pytest.raises(QueryError) as caught:
        run_query(script, timeout=60)
    assert str(caught.value) == f"{cause} (gave up after 4 attempts)"
    assert len(script.requests) == 4


def test_transient_failure_then_success_after_timeout() -> None:
    script = Script(httpx.ReadTimeout("slow"), ok(ONE))
    assert run_query(script) == [Sample({"workflow": "triage"}, 0.25)]


def test_slow_server_is_cut_at_the_deadline() -> None:
    """A real event-loop timeout: the handler would answer after 30 s, the deadline is 0.2 s."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return ok(ONE)

    async def go() -> None:
        async with PrometheusClient(
            URL, timeout=0.2, transport=httpx.MockTransport(slow)
        ) as client:
            await client.query("up", at=AT)

    with pytest.raises(QueryError, match=f"^timed out waiting for {URL}"):
        asyncio.run(go())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_by_a_real_closed_port() -> None:
    port = closed_port()
    fake = FakeTime()

    async def go() -> None:
        async with PrometheusClient(
            f"http://127.0.0.1:{port}", sleep=fake.sleep, clock=fake.clock
        ) as client:
            await client.query("up", at=AT)

    with pytest.raises(QueryError) as caught:
        asyncio.run(go())
    message = str(caught.value)
    assert f"cannot connect to http://127.0.0.1:{port}" in message
    assert "gave up after 4 attempts" in message
    assert len(fake.sleeps) == 3


# --- outcome callback ---------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        pytest.param((ok(ONE),), "success", id="success"),
        pytest.param((httpx.Response(503), ok(ONE)), "success", id="success-after-retry"),
        pytest.param((httpx.Response(400),), "error", id="error"),
        pytest.param((httpx.Response(503),), "error", id="error-after-retries"),
    ],
)
def test_on_query_reports_one_outcome_per_query(
    answers: tuple[httpx.Response, ...], outcome: str
) -> None:
    calls: list[tuple[str, float]] = []
    fake = FakeTime()
    with contextlib.suppress(QueryError):
        run_query(Script(*answers), fake=fake, on_query=lambda o, s: calls.append((o, s)))
    [(reported, seconds)] = calls
    assert reported == outcome
    assert seconds == pytest.approx(sum(fake.sleeps))


# --- headers, token, TLS ----------------------------------------------------


def test_custom_headers_and_bearer_token_are_sent(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  s3cret\n")
    script = Script(ok(ONE))
    run_query(script, headers={"X-Scope-OrgID": "tenant-7"}, bearer_token_file=str(token))
    request = script.requests[0]
    assert request.headers["X-Scope-OrgID"] == "tenant-7"
    assert request.headers["Authorization"] == "Bearer s3cret"


def test_bearer_token_is_reread_at_each_query(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    script = Script(ok(ONE))

    async def go() -> None:
        async with PrometheusClient(
            URL, bearer_token_file=str(token), transport=httpx.MockTransport(script)
        ) as client:
            await client.query("up", at=AT)
            token.write_text("rotated\n")
            await client.query("up", at=AT)

    asyncio.run(go())
    assert [r.headers["Authorization"] for r in script.requests] == [
        "Bearer first",
        "Bearer rotated",
    ]


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        pytest.param(None, "cannot read bearer token file", id="missing"),
        pytest.param(" \n", "is empty", id="empty"),
    ],
)
def test_unusable_token_file_fails_the_query_without_sending(
    tmp_path: Path, content: str | None, cause: str
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    script = Script(ok(ONE))
    with pytest.raises(QueryError, match=cause):
        run_query(script, bearer_token_file=str(token))
    assert script.requests == []


def test_unloadable_ca_file_fails_each_query_with_the_cause(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    script = Script(ok(ONE))
    with pytest.raises(QueryError, match="cannot load CA file"):
        run_query(script, ca_file=str(bad))
    assert script.requests == []


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A tiny HTTPS server on 127.0.0.1 with a self-signed certificate, answering ONE."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        missing(f"openssl cannot make a test certificate: {exc}")  # a failure under CI=true

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(ONE).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def query_real(url: str, **kwargs: Any) -> list[Sample]:
    async def go() -> list[Sample]:
        async with PrometheusClient(url, **kwargs) as client:
            return await client.query("up", at=AT)

    return asyncio.run(go())


def test_tls_verification_is_on_by_default(tls_prometheus: tuple[str, Path]) -> None:
    url, _ = tls_prometheus
    fake = FakeTime()
    with pytest.raises(QueryError, match="TLS verification failed") as caught:
        query_real(url, sleep=fake.sleep, clock=fake.clock)
    assert "gave up" not in str(caught.value), "a bad certificate must not be retried"


@pytest.mark.parametrize(
    "trust",
    [pytest.param("ca_file", id="ca-file"), pytest.param("insecure", id="insecure-skip-verify")],
)
def test_tls_succeeds_with_ca_file_or_explicit_skip(
    tls_prometheus: tuple[str, Path], trust: str
) -> None:
    url, cert = tls_prometheus
    kwargs: dict[str, Any] = (
        {"ca_file": str(cert)} if trust == "ca_file" else {"insecure_skip_verify": True}
    )
    assert query_real(url, **kwargs) == [Sample({"workflow": "triage"}, 0.25)]


# --- construction -----------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "policy", "expected"),
    [
        pytest.param(
            "http://flag:1", "http://env:2", "http://policy:3", "http://flag:1", id="flag"
        ),
        pytest.param(None, "http://env:2", "http://policy:3", "http://env:2", id="env"),
        pytest.param(None, None, "http://policy:3", "http://policy:3", id="policy"),
    ],
)
def test_from_settings_url_precedence(
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    env: str | None,
    policy: str | None,
    expected: str,
) -> None:
    if env is None:
        monkeypatch.delenv(ENV_URL, raising=False)
    else:
        monkeypatch.setenv(ENV_URL, env)
    client = PrometheusClient.from_settings(PrometheusSettings(url=policy), url=flag)
    asyncio.run(client.aclose())
    assert client.url == expected


def test_from_settings_without_any_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    with pytest.raises(UsageError, match="no Prometheus URL: pass --prometheus-url"):
        PrometheusClient.from_settings(PrometheusSettings())


def test_from_settings_passes_headers_and_timeout() -> None:
    settings = PrometheusSettings(
        url="http://p:9090", headers={"X-Scope-OrgID": "t1"}, timeout="2s"
    )
    script = Script(ok(ONE))

    async def go() -> None:
        transport = httpx.MockTransport(script)
        async with PrometheusClient.from_settings(settings, transport=transport) as client:
            await client.query("up", at=AT)

    asyncio.run(go())
    [request] = script.requests
    assert request.headers["X-Scope-OrgID"] == "t1"
    assert request.extensions["timeout"]["read"] == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("prometheus:9090", id="no-scheme"),
        pytest.param("ftp://prometheus", id="wrong-scheme"),
        pytest.param("http://", id="no-host"),
    ],
)
def test_invalid_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="invalid Prometheus URL"):
        PrometheusClient(url)


# --- single_value and escaping ----------------------------------------------


@pytest.mark.parametrize(
    ("samples", "cause"),
    [
        pytest.param([], "empty result: no series matched", id="empty-vector"),
        pytest.param(
            [Sample({"pod": "a"}, 1.0), Sample({"pod": "b"}, 2.0)],
            'expected one series, got 2: {pod="a"}, {pod="b"}',
            id="two-series",
        ),
        pytest.param(
            [Sample({"pod": str(i)}, 1.0) for i in range(5)],
            'expected one series, got 5: {pod="0"}, {pod="1"}, {pod="2"}, …',
            id="many-series-abridged",
        ),
        pytest.param([Sample({}, math.nan)], "value is NaN", id="nan"),
        pytest.param([Sample({}, math.inf)], "value is +Inf", id="plus-inf"),
        pytest.param([Sample({}, -math.inf)], "value is -Inf", id="minus-inf"),
    ],
)
def test_single_value_refuses_what_is_not_one_finite_number(
    samples: list[Sample], cause: str
) -> None:
    with pytest.raises(QueryError) as caught:
        single_value(samples, promql="sum(x)")
    assert str(caught.value).startswith(cause)
    assert "sum(x)" in str(caught.value)


@pytest.mark.parametrize("value", [pytest.param(0.0, id="zero"), pytest.param(-2.5, id="negative")])
def test_single_value_returns_the_one_finite_value(value: float) -> None:
    assert single_value([Sample({"a": "b"}, value)]) == value


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        pytest.param("ticket-triage", "ticket-triage", id="plain"),
        pytest.param('a"b', 'a\\"b', id="quote"),
        pytest.param("a\\b", "a\\\\b", id="backslash"),
        pytest.param("a\nb", "a\\nb", id="newline"),
        pytest.param('x\\"}', 'x\\\\\\"}', id="backslash-before-quote"),
        pytest.param('"} or vector(1) or {a="', '\\"} or vector(1) or {a=\\"', id="injection"),
    ],
)
def test_escape_label_value(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped
