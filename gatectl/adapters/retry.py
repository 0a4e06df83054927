"""Retry schedules as plain data, and the one retry loop and log line every adapter shares.

Prometheus queries, webhooks (``gatectl.adapters.http``) and Kubernetes API
calls (``gatectl.adapters.kube.retry``) all wait on a ``RetryPolicy``'s
``delays``, honour a server's ``Retry-After`` up to ``max_retry_after``, retry
only transient failures, and log each retry the same way: ``#2/5``. This
module depends on nothing of gatectl's but ``gatectl.errors`` (the Kubernetes
layer may import it and nothing else of the adapters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from gatectl.errors import QueryError

__all__ = ["RetryPolicy", "TransientError", "log_retry", "retry_async"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Waits between attempts; ``len(delays) + 1`` attempts in all.

    A server's ``Retry-After`` lengthens a wait, up to ``max_retry_after``.
    """

    delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
    max_retry_after: float = 30.0

    @property
    def attempts(self) -> int:
        """How many times a call is tried at most."""
        return len(self.delays) + 1

    def pause(self, failed: int, *, retry_after: float | None = None) -> float:
        """The wait after the ``failed``-th failed attempt (1-based)."""
        delay = self.delays[failed - 1]
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.max_retry_after)
        return delay


def log_retry(
    logger: logging.Logger,
    what: str,
    error: object,
    *,
    attempt: int,
    policy: RetryPolicy,
    delay: float,
) -> None:
    """The one retry log line: ``<what> failed (<error>); retry #2/5 in 0.2s``."""
    logger.warning(
        "%s failed (%s); retry #%d/%d in %gs", what, error, attempt, policy.attempts, delay
    )


class TransientError(QueryError):
    """A failure worth another attempt; ``retry_after`` when the server asked for a pause."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: RetryPolicy,
    logger: logging.Logger,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float] = time.monotonic,
    deadline: float | None = None,
    deadline_seconds: float | None = None,
) -> T:
    """Await ``attempt()``, retrying ``TransientError`` on ``policy``'s schedule.

    No wait runs to or past ``deadline`` (a ``clock()`` value). When the
    attempts run out the last cause is raised as a ``QueryError`` ending in
    ``(gave up after 3 attempts)``, plus ``, 10s deadline`` when the deadline,
    not the schedule, stopped it.
    """
    for number in range(1, policy.attempts + 1):
        try:
            return await attempt()
        except TransientError as error:
            stopped_by_deadline = False
            if number < policy.attempts:
                delay = policy.pause(number, retry_after=error.retry_after)
                if deadline is None or clock() + delay < deadline:
                    log_retry(logger, what, error, attempt=number + 1, policy=policy, delay=delay)
                    await sleep(delay)
                    continue
                stopped_by_deadline = True
            tries = "1 attempt" if number == 1 else f"{number} attempts"
            why = f", {deadline_seconds:g}s deadline" if stopped_by_deadline else ""
            raise QueryError(f"{error} (gave up after {tries}{why})") from error
    raise AssertionError("unreachable: no attempts in the policy")  # pragma: no cover
