"""Webhooks: JSON POSTs on decision changes, retried on 5xx, never on 4xx."""

from __future__ import annotations

import asyncio
import json

import httpx

from gatectl.adapters.webhooks import Webhooks
from gatectl.policy import WebhookSettings


def run(statuses: list[int]) -> tuple[Webhooks, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(statuses[min(len(seen), len(statuses)) - 1])

    hooks = Webhooks(attempts=3, transport=httpx.MockTransport(handler))

    async def go() -> None:
        hooks.send(
            WebhookSettings(url="http://127.0.0.1:1/hook", headers={"X-Team": "ops"}),
            {"decision": "fallback"},
        )
        await hooks.drain()

    asyncio.run(go())
    return hooks, seen


def test_payload_and_headers_are_sent() -> None:
    hooks, seen = run([200])
    assert json.loads(seen[0].content) == {"decision": "fallback"}
    assert seen[0].headers["X-Team"] == "ops"
    assert (hooks.delivered, hooks.failed) == (1, 0)


def test_server_errors_are_retried_until_success() -> None:
    hooks, seen = run([503, 502, 200])
    assert len(seen) == 3
    assert (hooks.delivered, hooks.failed) == (1, 0)


def test_client_errors_are_not_retried() -> None:
    hooks, seen = run([400])
    assert len(seen) == 1
    assert (hooks.delivered, hooks.failed) == (0, 1)


def test_gives_up_after_its_attempts() -> None:
    hooks, seen = run([500, 500, 500, 500])
    assert len(seen) == 3
    assert (hooks.delivered, hooks.failed) == (0, 1)
