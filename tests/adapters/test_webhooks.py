"""Webhooks: JSON POSTs on decision changes, retried on 5xx, never on 4xx, never redirected.

Requests are captured by ``httpx.MockTransport``; pauses by a recording
``sleep``. Log lines are asserted whole: they name the receiver by its origin
only, never a path token, a password or a header value.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatectl.adapters.http import RetryPolicy
from gatectl.adapters.webhooks import DEFAULT_RETRY, Webhooks, signature
from gatectl.policy import WebhookSettings

HOOK = "http://127.0.0.1:1/services/T000/B000/s3cret-path-token"


def run(
    answers: list[httpx.Response],
    *,
    url: str = HOOK,
    headers: dict[str, str] | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> tuple[Webhooks, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    hooks = Webhooks(retry=retry, transport=httpx.MockTransport(handler), sleep=sleep)

    async def go() -> None:
        hooks.send(
            WebhookSettings(url=url, headers=headers or {"X-Team": "ops"}),
            {"decision": "fallback"},
        )
        await hooks.drain()

    asyncio.run(go())
    return hooks, seen, slept


def test_payload_and_headers_are_sent() -> None:
    hooks, seen, _ = run([httpx.Response(200)])
    assert json.loads(seen[0].content) == {"decision": "fallback"}
    assert seen[0].headers["X-Team"] == "ops"
    assert seen[0].url == HOOK
    assert (hooks.delivered, hooks.failed) == (1, 0)


def test_server_errors_are_retried_on_the_schedule_until_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gatectl.webhook"):
        hooks, seen, slept = run([httpx.Response(503), httpx.Response(502), httpx.Response(200)])
    assert len(seen) == 3
    assert slept == [0.5, 1.0]
    assert (hooks.delivered, hooks.failed) == (1, 0)
    assert caplog.messages == [
        "webhook to http://127.0.0.1:1 failed (HTTP 503); retry #2/3 in 0.5s",
        "webhook to http://127.0.0.1:1 failed (HTTP 502); retry #3/3 in 1s",
    ]


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    _, _, slept = run(
        [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200)],
        retry=RetryPolicy(delays=(0.5,), max_retry_after=2.0),
    )
    assert slept == [2.0]


def test_client_errors_are_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gatectl.webhook"):
        hooks, seen, slept = run([httpx.Response(400)])
    assert (len(seen), slept) == (1, [])
    assert (hooks.delivered, hooks.failed) == (0, 1)
    assert caplog.messages == ["webhook to http://127.0.0.1:1: HTTP 400, not retried"]


def test_a_redirect_is_not_followed_and_not_delivered(caplog: pytest.LogCaptureFixture) -> None:
    moved = httpx.Response(307, headers={"Location": "http://127.0.0.1:2/elsewhere"})
    with caplog.at_level(logging.WARNING, logger="gatectl.webhook"):
        hooks, seen, _ = run([moved, httpx.Response(200)])
    assert [str(r.url) for r in seen] == [HOOK]
    assert (hooks.delivered, hooks.failed) == (0, 1)
    assert caplog.messages == ["webhook to http://127.0.0.1:1: HTTP 307, not retried"]


def test_gives_up_after_its_attempts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gatectl.webhook"):
        hooks, seen, _ = run([httpx.Response(500)])
    assert len(seen) == 3
    assert (hooks.delivered, hooks.failed) == (0, 1)
    assert caplog.messages[-1] == (
        "webhook to http://127.0.0.1:1: HTTP 500 (gave up after 3 attempts)"
    )


def test_a_header_that_cannot_be_sent_is_named_not_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = WebhookSettings.model_construct(
        url=HOOK, headers={"Authorization": "Bearer s3cret\n"}, timeout=5.0
    )
    hooks = Webhooks(transport=httpx.MockTransport(lambda _: httpx.Response(200)))

    async def go() -> None:
        hooks.send(settings, {"decision": "hold"})
        await hooks.drain()

    with caplog.at_level(logging.WARNING, logger="gatectl.webhook"):
        asyncio.run(go())
    assert (hooks.delivered, hooks.failed) == (0, 1)
    assert caplog.messages == [
        "webhook to http://127.0.0.1:1: header 'Authorization': the value must be printable"
        " ASCII (no line breaks, control or non-ASCII characters)"
    ]


def test_logs_never_show_user_info_or_the_path(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gatectl.webhook"):
        run([httpx.Response(500)], url="https://bot:hunter2@127.0.0.1:8443/hook/s3cret")
    text = "\n".join(caplog.messages)
    assert "webhook to https://127.0.0.1:8443" in text
    assert "hunter2" not in text and "s3cret" not in text and "bot" not in text


# --- signatures -----------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operator.md"


def documented_verify() -> Callable[[bytes, str, bytes], bool]:
    """The receiver's ``verify`` exactly as docs/operator.md shows it."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("<!-- webhook-verify -->")
    block = text[start:].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(block, str(DOCS), "exec"), scope)
    verify: Callable[[bytes, str, bytes], bool] = scope["verify"]
    return verify


def test_a_keyed_webhook_is_signed_and_the_documented_check_accepts_it() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    hooks = Webhooks(transport=httpx.MockTransport(handler))

    async def go() -> None:
        hooks.send(WebhookSettings(url=HOOK), {"decision": "promote", "gate": "é"}, key=b"k3y")
        await hooks.drain()

    asyncio.run(go())
    (request,) = seen
    body = request.content
    assert request.headers["X-Gatectl-Signature"] == signature(body, b"k3y")
    assert request.headers["X-Gatectl-Signature"] == (
        "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    )
    verify = documented_verify()
    assert verify(body, request.headers["X-Gatectl-Signature"], b"k3y")
    assert not verify(body, request.headers["X-Gatectl-Signature"], b"another key")
    assert not verify(
        body.replace(b"promote", b"fallback"), request.headers["X-Gatectl-Signature"], b"k3y"
    )
    assert json.loads(body) == {"decision": "promote", "gate": "é"}


def test_an_unkeyed_webhook_carries_no_signature() -> None:
    _, seen, _ = run([httpx.Response(200)])
    assert "X-Gatectl-Signature" not in seen[0].headers
