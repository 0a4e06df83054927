"""Retry schedules for Kubernetes API calls, as plain data.

Only transient failures are retried: 429 (waiting at least as long as
Retry-After says), 5xx, and connection failures (``status is None``). A 409
never is: the object changed, so the caller must re-read and decide again.
Each retry is logged as ``#2/5``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gatectl.errors import ClusterError, ServerError, TooManyRequestsError

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "RetryPolicy", "call_with_retries"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Waits between attempts; ``len(delays) + 1`` attempts in all."""

    delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
    max_retry_after: float = 30.0

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(delays=())


def _transient(error: ClusterError) -> bool:
    return isinstance(error, TooManyRequestsError | ServerError) or error.status is None


def call_with_retries(
    call: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``, retrying transient ``ClusterError``s; logs each retry as ``#2/5``."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except ClusterError as error:
            if not _transient(error) or attempt == policy.attempts:
                raise
            delay = policy.delays[attempt - 1]
            if isinstance(error, TooManyRequestsError) and error.retry_after is not None:
                delay = min(max(delay, error.retry_after), policy.max_retry_after)
            log.warning(
                "%s failed (%s); retry #%d/%d in %.1fs",
                what,
                error,
                attempt + 1,
                policy.attempts,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
