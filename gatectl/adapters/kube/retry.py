"""Retry schedules for Kubernetes API calls, as plain data.

Only transient failures are retried: 429 (waiting at least as long as
Retry-After says), 5xx, and connection failures (``status is None``). A 409
never is: the object changed, so the caller must re-read and decide again.
Each retry is logged as ``#2/5``. The schedule (``RetryPolicy``) and the log
line are ``gatectl.adapters.retry``'s, shared with Prometheus and webhooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from gatectl.adapters.retry import RetryPolicy, log_retry
from gatectl.errors import ClusterError, ServerError, TooManyRequestsError

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "RetryPolicy", "call_with_retries"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
            wait = error.retry_after if isinstance(error, TooManyRequestsError) else None
            delay = policy.pause(attempt, retry_after=wait)
            log_retry(log, what, error, attempt=attempt + 1, policy=policy, delay=delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
