"""Webhooks: a JSON POST on every change of decision, retried, never blocking the loop.

Each call is scheduled as a background task on the running event loop; a
failure after its retries is logged and dropped (the decision itself is
already in status, metrics and events). Requests go through the one HTTP seam
(``gatectl.adapters.http``): no redirect is followed, no proxy or credentials
come from the environment, a header that cannot be sent is refused by name.
Log lines name a webhook by its origin (``https://host:port``) only: the path
of a chat webhook is often its secret, and user info is never shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from gatectl.adapters.http import (
    RetryPolicy,
    TransientError,
    async_client,
    retry_after,
    retry_async,
    transport_error,
)
from gatectl.errors import QueryError
from gatectl.policy.models import WebhookSettings

__all__ = ["DEFAULT_RETRY", "SIGNATURE_HEADER", "Webhooks", "signature"]

SIGNATURE_HEADER = "X-Gatectl-Signature"
"""``sha256=<hex HMAC-SHA256 of the exact body bytes>``, when the webhook has a key."""


def signature(body: bytes, key: bytes) -> str:
    """The ``X-Gatectl-Signature`` value for ``body`` signed with ``key``."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


log = logging.getLogger("gatectl.webhook")

DEFAULT_RETRY = RetryPolicy(delays=(0.5, 1.0), max_retry_after=5.0)
"""Three attempts, 0.5 s and 1 s apart (up to 5 s when the receiver says Retry-After)."""


def _origin(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "an invalid URL"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


class Webhooks:
    """Sends decision payloads to webhooks in the background."""

    def __init__(
        self,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retry = retry
        self.transport = transport
        self._sleep = sleep
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def send(
        self, webhook: WebhookSettings, payload: dict[str, Any], *, key: bytes | None = None
    ) -> None:
        """Schedule one POST (needs a running event loop); signed when ``key`` is given."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers[SIGNATURE_HEADER] = signature(body, key)
        task = asyncio.get_running_loop().create_task(self._post(webhook, body, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every scheduled POST (for shutdown and tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _post(self, webhook: WebhookSettings, body: bytes, signed: dict[str, str]) -> None:
        what = f"webhook to {_origin(webhook.url)}"
        try:
            async with async_client(
                headers=webhook.headers, timeout=webhook.timeout, transport=self.transport
            ) as client:

                async def attempt() -> None:
                    try:
                        response = await client.post(webhook.url, content=body, headers=signed)
                    except httpx.HTTPError as exc:
                        raise transport_error(exc, url=_origin(webhook.url)) from exc
                    except httpx.InvalidURL as exc:
                        raise QueryError("the URL is not valid") from exc
                    status = response.status_code
                    if status >= 500 or status == 429:
                        raise TransientError(f"HTTP {status}", retry_after=retry_after(response))
                    if status >= 300:
                        raise QueryError(f"HTTP {status}, not retried")

                await retry_async(
                    attempt, what=what, policy=self.retry, logger=log, sleep=self._sleep
                )
        except QueryError as exc:
            self.failed += 1
            log.warning("%s: %s", what, exc)
            return
        self.delivered += 1
