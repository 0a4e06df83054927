"""The one HTTP seam: retry schedules, capped bodies, error mapping, header checks, no env.

Bodies are served through ``httpx.MockTransport`` with a *streamed* body
(``httpx.ByteStream``), as a network response arrives, or by a tiny HTTP
server on 127.0.0.1 where the real socket path matters (proxies from the
environment). Time is a recording ``sleep``; nothing here is timed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from gatectl.adapters.http import (
    MiB,
    RetryPolicy,
    TransientError,
    async_client,
    check_headers,
    read_body,
    retry_async,
    transport_error,
)
from gatectl.errors import QueryError

# --- the retry schedule --------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "retry_after", "expected"),
    [
        pytest.param(1, None, 0.2, id="first-delay"),
        pytest.param(4, None, 2.0, id="last-delay"),
        pytest.param(1, 3.0, 3.0, id="retry-after-longer-wins"),
        pytest.param(2, 0.1, 0.5, id="retry-after-shorter-keeps-delay"),
        pytest.param(1, 600.0, 30.0, id="retry-after-capped"),
    ],
)
def test_pause_follows_delays_and_retry_after(
    failed: int, retry_after: float | None, expected: float
) -> None:
    assert RetryPolicy().pause(failed, retry_after=retry_after) == expected


class Attempts:
    """An attempt function failing with ``errors`` in turn, then returning ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retry(attempt: Attempts, **kwargs: Any) -> tuple[str, list[float]]:
    slept: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    kwargs.setdefault("policy", RetryPolicy(delays=(0.5, 1.0)))
    result = asyncio.run(
        retry_async(
            attempt,
            what="thing",
            logger=logging.getLogger("test.retry"),
            sleep=sleep,
            clock=lambda: now[0],
            **kwargs,
        )
    )
    return result, slept


def test_transient_failures_are_retried_and_logged_as_attempt_of_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = Attempts(TransientError("HTTP 503"), TransientError("HTTP 502"))
    with caplog.at_level(logging.WARNING, logger="test.retry"):
        assert retry(attempt) == ("ok", [0.5, 1.0])
    assert caplog.messages == [
        "thing failed (HTTP 503); retry #2/3 in 0.5s",
        "thing failed (HTTP 502); retry #3/3 in 1s",
    ]


def test_final_failures_are_not_retried() -> None:
    attempt = Attempts(QueryError("HTTP 400"))
    with pytest.raises(QueryError) as caught:
        retry(attempt)
    assert str(caught.value) == "HTTP 400"
    assert attempt.calls == 1


def test_giving_up_says_how_many_attempts() -> None:
    attempt = Attempts(*(TransientError(f"HTTP 50{i}") for i in range(3)))
    with pytest.raises(QueryError) as caught:
        retry(attempt)
    assert str(caught.value) == "HTTP 502 (gave up after 3 attempts)"


def test_a_pause_reaching_the_deadline_is_not_slept() -> None:
    attempt = Attempts(TransientError("HTTP 429", retry_after=4.0), TransientError("again"))
    with pytest.raises(QueryError) as caught:
        retry(attempt, deadline=3.0, deadline_seconds=3.0)
    assert str(caught.value) == "HTTP 429 (gave up after 1 attempt, 3s deadline)"
    assert attempt.calls == 1


# --- capped bodies -------------------------------------------------------------


def streamed(body: bytes, **headers: str) -> httpx.Response:
    """A response whose body is read from a stream, as one from the network is."""
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))


def read(response: httpx.Response, *, limit: int) -> bytes:
    async def go() -> bytes:
        transport = httpx.MockTransport(lambda _: response)
        async with (
            async_client(transport=transport) as client,
            client.stream("GET", "http://127.0.0.1:9/") as answer,
        ):
            return await read_body(answer, limit=limit)

    return asyncio.run(go())


def gzip_bomb(inflated: int) -> bytes:
    """``inflated`` zero bytes, gzipped (~1000x smaller), without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    parts = [packer.compress(zeros) for _ in range(inflated // MiB)]
    return b"".join([*parts, packer.flush()])


@pytest.mark.parametrize(
    ("response", "limit", "expected"),
    [
        pytest.param(streamed(b"x" * 100), 100, b"x" * 100, id="exactly-the-cap"),
        pytest.param(
            streamed(gzip.compress(b"y" * 1000), **{"Content-Encoding": "gzip"}),
            1000,
            b"y" * 1000,
            id="gzip-inflated",
        ),
        pytest.param(
            streamed(zlib.compress(b"z" * 100), **{"Content-Encoding": "deflate"}),
            100,
            b"z" * 100,
            id="deflate-inflated",
        ),
        pytest.param(httpx.Response(200, content=b"in memory"), 9, b"in memory", id="pre-read"),
    ],
)
def test_bodies_within_the_cap_are_read(
    response: httpx.Response, limit: int, expected: bytes
) -> None:
    assert read(response, limit=limit) == expected


@pytest.mark.parametrize(
    ("response", "limit", "message"),
    [
        pytest.param(
            streamed(b"x" * 101),
            100,
            "response body is larger than the cap of 100 bytes: not read",
            id="one-byte-over",
        ),
        pytest.param(
            streamed(b"x" * 10, **{"Content-Length": str(32 * MiB)}),
            16 * MiB,
            "response body is larger than the cap of 16 MiB: not read",
            id="declared-length-over",
        ),
        pytest.param(
            streamed(gzip_bomb(8 * MiB), **{"Content-Encoding": "gzip"}),
            MiB,
            "decompressed response body is larger than the cap of 1 MiB: not read",
            id="gzip-bomb",
        ),
        pytest.param(
            streamed(b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"}),
            100,
            "undecodable compressed response body: Error -3 while decompressing data:"
            " unknown compression method",
            id="corrupt-gzip",
        ),
        pytest.param(
            streamed(b"x", **{"Content-Encoding": "br"}),
            100,
            "unsupported Content-Encoding 'br': only gzip or deflate is read",
            id="unasked-encoding",
        ),
        pytest.param(
            httpx.Response(200, content=b"x" * 11),
            10,
            "response body is larger than the cap of 10 bytes: not read",
            id="pre-read-over",
        ),
    ],
)
def test_bodies_over_the_cap_are_refused_with_the_cause(
    response: httpx.Response, limit: int, message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        read(response, limit=limit)
    assert str(caught.value) == message


def test_a_gzip_bomb_stops_at_the_cap_instead_of_filling_memory() -> None:
    bomb = gzip_bomb(256 * MiB)  # ~250 KiB on the wire
    assert len(bomb) < MiB
    tracemalloc.start()
    try:
        with pytest.raises(QueryError, match="decompressed response body is larger"):
            read(streamed(bomb, **{"Content-Encoding": "gzip"}), limit=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"reading a 1 MiB-capped body took {peak / MiB:.0f} MiB"


def test_requests_ask_for_gzip_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def go() -> None:
        async with async_client(transport=httpx.MockTransport(handler)) as client:
            await client.get("http://127.0.0.1:9/")

    asyncio.run(go())
    assert seen[0].headers["Accept-Encoding"] == "gzip"
    assert seen[0].headers["User-Agent"] == "gatectl"


# --- error mapping -------------------------------------------------------------

SECRET_URL = "http://alice:hunter2@127.0.0.1:9090"


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        pytest.param(
            httpx.ConnectError("refused by http://alice:hunter2@127.0.0.1:9090 (hunter2)"),
            TransientError,
            "cannot connect to http://***@127.0.0.1:9090: ConnectError: refused by"
            " http://***@127.0.0.1:9090 (hunter2)",
            id="connect-error-quoting-the-url",
        ),
        pytest.param(
            httpx.ReadTimeout("timed out"),
            TransientError,
            "timed out waiting for http://***@127.0.0.1:9090: ReadTimeout",
            id="read-timeout",
        ),
        pytest.param(
            TimeoutError(),
            TransientError,
            "timed out waiting for http://***@127.0.0.1:9090",
            id="deadline",
        ),
        pytest.param(
            httpx.LocalProtocolError("Illegal header value b'Bearer hunter2\\n'"),
            QueryError,
            "request to http://***@127.0.0.1:9090 refused by the HTTP library: a header name"
            " or value is not allowed (printable ASCII only, no line breaks)",
            id="header-refused-without-its-value",
        ),
        pytest.param(
            httpx.RemoteProtocolError("peer closed"),
            TransientError,
            "connection to http://***@127.0.0.1:9090 failed: RemoteProtocolError: peer closed",
            id="dropped",
        ),
        pytest.param(
            httpx.TooManyRedirects("too many"),
            QueryError,
            "request to http://***@127.0.0.1:9090 failed: TooManyRedirects: too many",
            id="other",
        ),
    ],
)
def test_transport_errors_map_to_query_errors_without_user_info(
    error: Exception, kind: type[QueryError], message: str
) -> None:
    mapped = transport_error(error, url=SECRET_URL)  # type: ignore[arg-type]
    assert type(mapped) is kind
    assert str(mapped) == message
    assert "alice:hunter2" not in str(mapped)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param(
            {"X-Token": "caf\u00e9-s3cret"},
            "header 'X-Token': the value must be printable ASCII (no line breaks, control or"
            " non-ASCII characters)",
            id="non-ascii-value",
        ),
        pytest.param(
            {"X-Token": "s3cret\r\nX-Evil: 1"},
            "header 'X-Token': the value must be printable ASCII (no line breaks, control or"
            " non-ASCII characters)",
            id="header-injection",
        ),
        pytest.param(
            {"X Token": "v"},
            "header name 'X Token' is not a valid HTTP header name",
            id="space-in-name",
        ),
        pytest.param(
            {"X-\u00c9": "v"}, "header name 'X-\u00c9' is not a valid HTTP header name", id="name"
        ),
    ],
)
def test_headers_the_http_library_refuses_are_named_never_shown(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        check_headers(headers)
    assert str(caught.value) == message
    with pytest.raises(QueryError) as again:
        async_client(headers=headers)
    assert str(again.value) == message


def test_printable_headers_pass() -> None:
    check_headers({"X-Scope-OrgID": "tenant 7", "Authorization": "Bearer a.b-c_d~e+f/g="})


# --- nothing from the environment ------------------------------------------------


@pytest.fixture
def local_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_proxies_from_the_environment_are_not_used(
    local_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy nothing listens on: a client that used it could not reach the server.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:1")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def go() -> Any:
        async with async_client() as client:
            response = await client.get(local_server + "/direct")
            return response.json()

    assert asyncio.run(go()) == {"path": "/direct"}
