"""Webhooks: a JSON POST on every change of decision, retried, never blocking the loop.

Each call is scheduled as a background task on the running event loop; a
failure after its retries is logged and dropped (the decision itself is
already in status, metrics and events).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from gatectl.policy.models import WebhookSettings

__all__ = ["Webhooks"]

log = logging.getLogger("gatectl.webhook")


class _Retryable(Exception):
    """A failure worth another attempt (connection error, 5xx, 429)."""


class Webhooks:
    """Sends decision payloads to webhooks in the background."""

    def __init__(
        self, *, attempts: int = 3, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.attempts = attempts
        self.transport = transport
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def send(self, webhook: WebhookSettings, payload: dict[str, Any]) -> None:
        """Schedule one POST (needs a running event loop)."""
        task = asyncio.get_running_loop().create_task(self._post(webhook, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every scheduled POST (for shutdown and tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _post(self, webhook: WebhookSettings, payload: dict[str, Any]) -> None:
        try:
            async with httpx.AsyncClient(
                timeout=webhook.timeout, transport=self.transport
            ) as client:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.attempts),
                    wait=wait_exponential(multiplier=0.5, max=5),
                    retry=retry_if_exception_type(_Retryable),
                    reraise=True,
                ):
                    with attempt:
                        number = attempt.retry_state.attempt_number
                        try:
                            response = await client.post(
                                webhook.url, json=payload, headers=webhook.headers
                            )
                        except httpx.HTTPError as exc:
                            log.warning(
                                "webhook %s #%d/%d: %s", webhook.url, number, self.attempts, exc
                            )
                            raise _Retryable(str(exc)) from exc
                        if response.status_code >= 500 or response.status_code == 429:
                            log.warning(
                                "webhook %s #%d/%d: HTTP %d",
                                webhook.url,
                                number,
                                self.attempts,
                                response.status_code,
                            )
                            raise _Retryable(f"HTTP {response.status_code}")
                        if response.status_code >= 400:
                            log.warning(
                                "webhook %s: HTTP %d, not retried",
                                webhook.url,
                                response.status_code,
                            )
                            self.failed += 1
                            return
            self.delivered += 1
        except _Retryable as exc:
            self.failed += 1
            log.warning(
                "webhook %s: gave up after %d attempts: %s", webhook.url, self.attempts, exc
            )
