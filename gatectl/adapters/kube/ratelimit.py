"""A client-side rate limit on Kubernetes API requests, like client-go's QPS and burst.

A controller that writes the status of 10,000 gates must not flood the API
server it shares with everyone else. ``TokenBucket`` holds up to ``burst``
tokens and gains ``qps`` a second; each request takes one, waiting for it
when none is left (``reserve`` says how long, so waiters queue in order, as
``golang.org/x/time/rate`` does for client-go). One bucket is shared by
every ``Resources`` built on the same ApiClient (``set_rate_limit``), so the
limit holds for the process's requests together: status writes, Events,
traffic patches, lists, watches and Leases. ``qps <= 0`` means no limit.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_BURST", "DEFAULT_QPS", "TokenBucket", "rate_limit_of", "set_rate_limit"]

log = logging.getLogger(__name__)

DEFAULT_QPS = 50.0
DEFAULT_BURST = 100


class TokenBucket:
    """``burst`` tokens at most, ``qps`` more a second; thread-safe."""

    def __init__(
        self,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        """False when ``qps <= 0``: every request goes at once."""
        return self.qps > 0

    def reserve(self) -> float:
        """Take a token now; the seconds to wait before using it (0.0 when one was there).

        The token may be one not yet earned: the bucket goes below zero, and the
        next caller waits for it too, so reservations are served in order.
        """
        if not self.limited:
            return 0.0
        with self._lock:
            now = self.clock()
            earned = max(now - self._last, 0.0) * self.qps
            self._tokens = min(float(self.burst), self._tokens + earned)
            self._last = max(now, self._last)
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def wait(self) -> float:
        """Take a token, sleeping until it is due; returns the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            if delay >= 1.0:
                log.info("waited %.1fs for the client-side rate limit (qps %g)", delay, self.qps)
            self.sleep(delay)
        return delay


_BUCKETS: weakref.WeakKeyDictionary[Any, TokenBucket] = weakref.WeakKeyDictionary()


def set_rate_limit(api_client: Any, bucket: TokenBucket | None) -> None:
    """Every request made through ``api_client`` takes a token from ``bucket`` (None: none)."""
    if bucket is None:
        _BUCKETS.pop(api_client, None)
    else:
        _BUCKETS[api_client] = bucket


def rate_limit_of(api_client: Any) -> TokenBucket | None:
    """The bucket set for ``api_client``, if any."""
    try:
        return _BUCKETS.get(api_client)
    except TypeError:  # an object that cannot be weakly referenced has none
        return None
