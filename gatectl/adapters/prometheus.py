"""Reading numbers from Prometheus: the one seam where HTTP turns into samples or a cause.

Every instant query (``GET /api/v1/query``; a form ``POST`` when the query is
longer than 4 KiB, as batched multi-workflow queries can be) carries
``time=``: an evaluation is reproducible only if it says *when*. Every failure
leaves this module as a ``gatectl.errors.QueryError`` whose message is the
cause a person reads in the evidence: connection refused, timeout, HTTP status
with Prometheus' own error text, bad JSON, an unexpected result shape. httpx
exceptions are translated here and nowhere else.

Transient failures (connection errors, timeouts, 5xx, 429) are retried with
tenacity: exponential backoff with jitter, ``Retry-After`` honoured, all inside
one overall deadline (``timeout``): each attempt gets the time that remains and
no sleep runs past the deadline. Other 4xx answers (a bad query) are final.

The module stays light on imports: it is on the ``gatectl evaluate`` path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from gatectl.core.labels import escape_label_value
from gatectl.errors import QueryError, UsageError

if TYPE_CHECKING:
    from gatectl.policy import PrometheusSettings

__all__ = [
    "ENV_URL",
    "PrometheusClient",
    "QueryOutcome",
    "Sample",
    "escape_label_value",
    "format_labels",
    "resolve_url",
    "single_value",
]

logger = logging.getLogger("gatectl.adapters.prometheus")

ENV_URL = "GATECTL_PROMETHEUS_URL"
"""Environment variable naming the Prometheus URL (after the flag, before the policy)."""

_USER_AGENT = "gatectl"

NO_URL_MESSAGE = (
    "no Prometheus URL: pass --prometheus-url, set GATECTL_PROMETHEUS_URL or prometheus.url "
    "in the policy"
)

QueryOutcome = Literal["success", "error"]

_BODY_EXCERPT = 200
_MAX_GET_QUERY = 4096
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 2.0
_BACKOFF_JITTER = 0.1
_SERIES_SHOWN = 3


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and its value (may be NaN or ±Inf)."""

    labels: Mapping[str, str]
    value: float


class _TransientError(QueryError):
    """A failure worth another attempt; ``retry_after`` when the server asked for a pause."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class _StopAtDeadline(stop_base):
    """Stop when the next pause would end at or past the deadline."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        # tenacity (>= 8.3) computes the pause before asking whether to stop.
        pause = getattr(retry_state, "upcoming_sleep", 0.0)
        return bool(self._clock() + pause >= self._deadline)


def resolve_url(
    settings: PrometheusSettings | None,
    *,
    url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The Prometheus URL: ``url`` (the flag), else ``$GATECTL_PROMETHEUS_URL``, else the policy.

    Raises ``UsageError`` when none of them gives one.
    """
    if url:
        return url
    if environ and environ.get(ENV_URL):
        return environ[ENV_URL]
    if settings is not None and settings.url:
        return settings.url
    raise UsageError(NO_URL_MESSAGE)


class PrometheusClient:
    """An async Prometheus HTTP API client for instant queries.

    Use as ``async with PrometheusClient(url) as prom: await prom.query(q, at=t)``.
    ``transport`` swaps the network for tests (``httpx.MockTransport``);
    ``sleep`` and ``clock`` swap time (the retry pauses and the deadline).
    ``on_query(outcome, seconds)`` is called once per query, for metrics.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        bearer_token_file: str | None = None,
        ca_file: str | None = None,
        insecure_skip_verify: bool = False,
        timeout: float = 10.0,
        max_attempts: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        on_query: Callable[[str, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise UsageError(f"Prometheus timeout must be > 0, got {timeout}")
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, got {max_attempts}")
        try:
            base = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UsageError(f"invalid Prometheus URL {url!r}: {exc}") from exc
        if base.scheme not in ("http", "https") or not base.host:
            raise UsageError(f"invalid Prometheus URL {url!r}: expected http://host[:port][/path]")
        self.url = str(base).rstrip("/")
        self._query_url = self.url + "/api/v1/query"
        self._headers = dict(headers or {})
        self._bearer_token_file = bearer_token_file
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._on_query = on_query
        self._sleep = sleep
        self._clock = clock
        # A CA file that cannot be loaded makes every query fail with that cause
        # (no data for the gates that use it), rather than stopping the caller.
        self._config_error: str | None = None
        verify: ssl.SSLContext | bool = True
        if insecure_skip_verify:
            verify = False
        elif ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                self._config_error = f"cannot load CA file {ca_file}: {exc}"
        elif base.scheme == "http":
            # Plain HTTP (redirects are not followed) never does TLS: skip loading the
            # CA bundle, which costs ~30 ms of every `gatectl evaluate`.
            verify = False
        self._client = httpx.AsyncClient(
            headers={"User-Agent": _USER_AGENT, **self._headers},
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(
        cls,
        settings: PrometheusSettings,
        *,
        url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_query: Callable[[str, float], None] | None = None,
    ) -> PrometheusClient:
        """A client for a policy's ``prometheus`` settings; ``url`` (the flag) overrides theirs.

        The URL is ``url``, else ``$GATECTL_PROMETHEUS_URL``, else ``settings.url``.
        """
        return cls(
            resolve_url(settings, url=url, environ=os.environ),
            headers=settings.headers,
            bearer_token_file=settings.bearer_token_file,
            ca_file=settings.ca_file,
            insecure_skip_verify=settings.insecure_skip_verify,
            timeout=settings.timeout,
            transport=transport,
            on_query=on_query,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        """The instant vector (or scalar, as one unlabelled sample) of ``promql`` at ``at``.

        Raises ``QueryError`` with the cause when no usable answer came back
        within the deadline.
        """
        if at.tzinfo is None:
            raise ValueError("at must be a timezone-aware datetime")
        params = {"query": promql, "time": f"{at.timestamp():.3f}"}
        started = self._clock()
        deadline = started + self._timeout
        try:
            samples = await self._query_with_retries(params, deadline=deadline)
        except QueryError:
            self._report("error", started)
            raise
        self._report("success", started)
        return samples

    def _report(self, outcome: QueryOutcome, started: float) -> None:
        if self._on_query is not None:
            self._on_query(outcome, max(0.0, self._clock() - started))

    async def _query_with_retries(self, params: dict[str, str], *, deadline: float) -> list[Sample]:
        if self._config_error is not None:
            raise QueryError(self._config_error)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _TransientError) and exc.retry_after is not None:
                return exc.retry_after
            return _backoff(state.attempt_number)

        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(self._max_attempts), _StopAtDeadline(deadline, self._clock)
            ),
            wait=wait,
            retry=retry_if_exception_type(_TransientError),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    return await self._attempt(params, deadline=deadline)
        except _TransientError as exc:
            tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
            why = "" if attempts >= self._max_attempts else f", {self._timeout:g}s deadline"
            raise QueryError(f"{exc} (gave up after {tries}{why})") from exc
        raise AssertionError("unreachable: tenacity neither returned nor raised")

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "Prometheus query retry #%d/%d in %.2fs: %s",
            state.attempt_number + 1,
            self._max_attempts,
            getattr(state, "upcoming_sleep", 0.0),
            exc,
        )

    async def _attempt(self, params: dict[str, str], *, deadline: float) -> list[Sample]:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise QueryError(f"timed out: no time left of the {self._timeout:g}s deadline")
        headers = self._auth_headers()
        try:
            async with asyncio.timeout(remaining):
                if len(params["query"]) <= _MAX_GET_QUERY:
                    response = await self._client.get(
                        self._query_url, params=params, headers=headers, timeout=remaining
                    )
                else:  # long queries (many workflows at once) as a form, past URL limits
                    response = await self._client.post(
                        self._query_url, data=params, headers=headers, timeout=remaining
                    )
        except (TimeoutError, httpx.TimeoutException) as exc:
            kind = f": {type(exc).__name__}" if isinstance(exc, httpx.TimeoutException) else ""
            raise _TransientError(f"timed out querying {self.url}{kind}") from exc
        except httpx.ConnectError as exc:
            if _is_certificate_error(exc):
                raise QueryError(f"TLS verification failed for {self.url}: {exc}") from exc
            raise _TransientError(f"cannot connect to {self.url}: {_describe(exc)}") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _TransientError(f"connection to {self.url} failed: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:
            raise QueryError(f"request to {self.url} failed: {_describe(exc)}") from exc
        return _parse_response(response)

    def _auth_headers(self) -> dict[str, str]:
        if self._bearer_token_file is None:
            return {}
        try:
            with open(self._bearer_token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise QueryError(
                f"cannot read bearer token file {self._bearer_token_file}: {exc}"
            ) from exc
        if not token:
            raise QueryError(f"bearer token file {self._bearer_token_file} is empty")
        return {"Authorization": f"Bearer {token}"}


def _backoff(failed_attempts: int) -> float:
    """Exponential pause after ``failed_attempts`` failures (0.1 s, 0.2 s, 0.4 s … 2 s) + jitter."""
    base = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** (failed_attempts - 1))
    return base + random.uniform(0, _BACKOFF_JITTER)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _excerpt(text: str) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "…"


def _error_text(payload: object) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        kind = payload.get("errorType")
        return f"{kind}: {payload['error']}" if isinstance(kind, str) else payload["error"]
    return None


def _parse_response(response: httpx.Response) -> list[Sample]:
    status = response.status_code
    try:
        body = response.text
    except (httpx.DecodingError, UnicodeDecodeError) as exc:
        raise QueryError(f"undecodable response body (HTTP {status}): {exc}") from exc
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
        parsed = False
    else:
        parsed = True
    if not 200 <= status < 300:
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        detail = _error_text(payload) if parsed else None
        if detail is None and body.strip():
            detail = _excerpt(body)
        if detail is None and "Location" in response.headers:
            detail = f"redirected to {response.headers['Location']}"
        message = f"{reason} from Prometheus" + (f": {detail}" if detail else "")
        if status == 429 or status >= 500:
            raise _TransientError(message, retry_after=_retry_after(response))
        raise QueryError(message)
    if not parsed:
        shown = _excerpt(body) if body.strip() else "empty body"
        raise QueryError(f"invalid JSON from Prometheus (HTTP {status}): {shown}")
    return _samples(payload)


def _samples(payload: Any) -> list[Sample]:
    if not isinstance(payload, dict):
        raise QueryError(
            f"unexpected response: expected a JSON object, got {_excerpt(str(payload))}"
        )
    if payload.get("status") != "success":
        detail = _error_text(payload) or "no error text"
        raise QueryError(f"Prometheus status {payload.get('status')!r}: {detail}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise QueryError("unexpected response: 'data' is missing or not an object")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "vector":
        if not isinstance(result, list):
            raise QueryError("unexpected response: vector result is not a list")
        return [_vector_sample(item) for item in result]
    if kind == "scalar":
        return [Sample(labels={}, value=_value(result))]
    if kind in ("matrix", "string"):
        raise QueryError(f"expected an instant vector or scalar, got a {kind} result")
    raise QueryError(f"unexpected response: unknown resultType {kind!r}")


def _vector_sample(item: object) -> Sample:
    if not isinstance(item, dict):
        raise QueryError("unexpected response: vector element is not an object")
    labels = item.get("metric", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise QueryError("unexpected response: series labels are not a string map")
    return Sample(labels=labels, value=_value(item.get("value")))


def _value(pair: object) -> float:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise QueryError(f'unexpected response: sample value {pair!r} is not [time, "value"]')
    try:
        return float(pair[1])
    except ValueError as exc:
        raise QueryError(f"unexpected response: sample value {pair[1]!r} is not a number") from exc


def format_labels(labels: Mapping[str, str]) -> str:
    """``{a="x", b="y"}`` with names sorted and values escaped, as Prometheus prints them."""
    inner = ", ".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def single_value(samples: Sequence[Sample], *, promql: str = "") -> float:
    """The one finite value of a one-series result; ``QueryError`` for anything else.

    Empty vectors, several series, NaN and ±Inf are *no data*, with the reason.
    """
    suffix = f" (query: {promql})" if promql else ""
    if not samples:
        raise QueryError(f"empty result: no series matched{suffix}")
    if len(samples) > 1:
        shown = ", ".join(format_labels(s.labels) for s in samples[:_SERIES_SHOWN])
        more = ", …" if len(samples) > _SERIES_SHOWN else ""
        raise QueryError(f"expected one series, got {len(samples)}: {shown}{more}{suffix}")
    value = samples[0].value
    if math.isnan(value):
        raise QueryError(f"value is NaN{suffix}")
    if math.isinf(value):
        raise QueryError(f"value is {'+Inf' if value > 0 else '-Inf'}{suffix}")
    return value
