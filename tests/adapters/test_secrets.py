"""No secret in any output: a URL's password, a header value, a token.

The last tests run the installed ``gatectl`` console script, as a pipeline
does, against a Prometheus URL carrying ``alice:hunter2@`` — once unreachable,
once answering 500 — and read everything it prints (stdout in each output
format, and stderr with its logs): the password never appears, the redacted
URL does. A bad header is refused when the policy loads, by name and line.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatectl.adapters.prometheus import PrometheusClient
from gatectl.errors import QueryError, UsageError

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

SEED = """\
workflow_release_gate:
  canary_traffic: 0.10
  promotion_window_hours: 48
  success_criteria:
    exception_rate: "<= 0.04"
    critical_regressions: "== 0"
  rollback_trigger:
    - reviewer_queue_sla_breach == true
  fallback_mode: deterministic_path
"""


def gatectl(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).with_name("gatectl")
    script = str(beside) if beside.exists() else shutil.which("gatectl")
    assert script is not None, "the gatectl console script is not installed"
    return subprocess.run(
        [script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env or {"PATH": "/usr/bin:/bin"},
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def failing_prometheus() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 answering every query with HTTP 500; the Authorization headers seen."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = b'{"status":"error","errorType":"internal","error":"storage is on fire"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("output", ["json", "yaml", "table"])
@pytest.mark.parametrize("failure", ["unreachable", "http-500"])
def test_a_url_password_never_appears_in_evaluate_output(
    tmp_path: Path,
    failing_prometheus: tuple[str, list[str]],
    output: str,
    failure: str,
) -> None:
    where, seen = failing_prometheus
    if failure == "unreachable":
        where = f"127.0.0.1:{closed_port()}"
    # The flag for one failure, the policy's prometheus.url for the other: both paths.
    url = f"http://alice:hunter2@{where}"
    policy = tmp_path / "triage.yaml"
    flags: list[str] = []
    if failure == "unreachable":
        policy.write_text(SEED)
        flags = ["--prometheus-url", url]
    else:
        policy.write_text(SEED + f"  prometheus:\n    url: {url}\n")
    done = gatectl("evaluate", policy, "--started-at", "-1h", "-o", output, *flags)
    assert done.returncode == 10, done.stderr  # hold: no data is never a promotion
    everything = done.stdout + done.stderr
    assert "hunter2" not in everything
    assert "alice" not in everything
    shown = " ".join(done.stdout.split())  # YAML folds long strings at spaces
    if failure == "unreachable":
        assert f"cannot connect to http://***@{where}" in shown
    else:
        assert "HTTP 500 Internal Server Error from Prometheus: internal: storage is on fire" in (
            shown
        )
        # The credentials are used (basic auth), only never shown.
        assert seen and set(seen) == {"Basic YWxpY2U6aHVudGVyMg=="}


def test_a_bad_header_in_a_policy_is_a_policy_error_at_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "triage.yaml"
    policy.write_text(
        SEED
        + "  prometheus:\n    url: http://127.0.0.1:9\n    headers:\n"
        + '      X-Scope-OrgID: "t1"\n      X-Token: "caf\u00e9-s3cret"\n'
    )
    done = gatectl("evaluate", policy, "--started-at", "-1h")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"gatectl: {policy}:12: workflow_release_gate.prometheus.headers: header 'X-Token':"
        " the value must be printable ASCII (no line breaks, control or non-ASCII characters)\n"
    )


# --- in-process: the client never renders the raw URL -----------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        pytest.param("http://alice:hunter2@prom:9090", "http://***@prom:9090", id="user-password"),
        pytest.param("https://tok@prom/x", "https://***@prom/x", id="token-as-user"),
    ],
)
def test_the_client_url_attribute_is_redacted(url: str, redacted: str) -> None:
    client = PrometheusClient(url)
    asyncio.run(client.aclose())
    assert client.url == redacted


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "ftp://alice:hunter2@prom",
            "invalid Prometheus URL 'ftp://***@prom': expected http://host[:port][/path]",
            id="wrong-scheme",
        ),
        pytest.param(
            "http://alice:hun?ter2@prom",
            "invalid Prometheus URL 'http://***@prom'",
            id="unparseable-user-info",
        ),
    ],
)
def test_an_invalid_url_is_refused_without_its_password(url: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        PrometheusClient(url)
    assert str(caught.value) == message


def test_a_header_from_flags_that_cannot_be_sent_fails_queries_by_name() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async def go() -> None:
        async with PrometheusClient(
            "http://127.0.0.1:9",
            headers={"X-Token": "s3cret\nX-Evil: 1"},
            transport=httpx.MockTransport(handler),
        ) as client:
            await client.query("up", at=NOW)

    with pytest.raises(QueryError) as caught:
        asyncio.run(go())
    assert str(caught.value) == (
        "header 'X-Token': the value must be printable ASCII (no line breaks, control or"
        " non-ASCII characters)"
    )
    assert sent == []


def test_a_token_file_with_a_line_break_is_refused_without_the_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\ninjected\n")

    async def go() -> None:
        async with PrometheusClient(
            "http://127.0.0.1:9",
            bearer_token_file=str(token),
            transport=httpx.MockTransport(lambda _: httpx.Response(200)),
        ) as client:
            await client.query("up", at=NOW)

    with pytest.raises(QueryError) as caught:
        asyncio.run(go())
    assert str(caught.value) == (
        f"bearer token file {token}: the token must be printable ASCII on one line"
    )


def test_url_credentials_go_as_basic_auth_and_out_of_the_request_url() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    async def go() -> None:
        async with PrometheusClient(
            "http://alice:hunter2@127.0.0.1:9/prefix", transport=httpx.MockTransport(handler)
        ) as client:
            await client.query("up", at=NOW)

    asyncio.run(go())
    [request] = sent
    assert (request.url.userinfo, request.url.path) == (b"", "/prefix/api/v1/query")
    assert request.headers["Authorization"] == "Basic YWxpY2U6aHVudGVyMg=="
