"""Reading numbers from Prometheus: the one seam where HTTP turns into samples or a cause.

Every instant query (``GET /api/v1/query``; a form ``POST`` when the query is
longer than 4 KiB, as batched multi-workflow queries can be) carries
``time=`` (an evaluation is reproducible only if it says *when*; with
``prometheus.query_offset`` it is ``at - offset``) and ``partial_response``
(``false`` unless the policy allows partial answers). Every failure leaves this
module as a ``gatectl.errors.QueryError`` whose message is the cause a person
reads in the evidence: connection refused, timeout, HTTP status with
Prometheus' own error text, bad JSON, an answer larger than the cap, a partial
answer, a value that is not a Prometheus number. The HTTP rules (client,
capped body, error mapping, retry schedule) are ``gatectl.adapters.http``'s;
messages name the URL with its user info redacted.

Transient failures (connection errors, timeouts, 5xx, 429) are retried on a
``RetryPolicy`` schedule, ``Retry-After`` honoured, all inside one deadline per
query (``timeout``): each attempt gets the time that remains and no pause runs
past the deadline. Other 4xx answers (a bad query) are final.

The module stays light on imports: it is on the ``gatectl evaluate`` path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import httpx

from gatectl.adapters.http import (
    MiB,
    RetryPolicy,
    TransientError,
    async_client,
    check_headers,
    read_body,
    retry_after,
    retry_async,
    tls_verify,
    transport_error,
)
from gatectl.core.labels import escape_label_value
from gatectl.core.redact import redact_url
from gatectl.errors import QueryError, UsageError

if TYPE_CHECKING:
    from gatectl.policy import PrometheusSettings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_RETRY",
    "ENV_URL",
    "PrometheusClient",
    "QueryOutcome",
    "Sample",
    "escape_label_value",
    "form_encode",
    "format_labels",
    "parse_sample_value",
    "resolve_url",
    "single_value",
    "value_or_error",
]

logger = logging.getLogger("gatectl.adapters.prometheus")

ENV_URL = "GATECTL_PROMETHEUS_URL"
"""Environment variable naming the Prometheus URL (after the flag, before the policy)."""

NO_URL_MESSAGE = (
    "no Prometheus URL: pass --prometheus-url, set GATECTL_PROMETHEUS_URL or prometheus.url "
    "in the policy"
)

DEFAULT_RETRY = RetryPolicy(delays=(0.1, 0.2, 0.4))
"""Four attempts, 0.1 s, 0.2 s and 0.4 s apart (longer when the server says Retry-After)."""

DEFAULT_MAX_BODY_BYTES = 16 * MiB
"""The largest answer read (received and decompressed): a batch over 10,000 workflows is ~2 MiB."""

QueryOutcome = Literal["success", "error"]

_BODY_EXCERPT = 200
_VALUE_EXCERPT = 40
_MAX_GET_QUERY = 4096
_FORM = "application/x-www-form-urlencoded"
_FORM_TABLE = {
    byte: chr(byte)
    if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) in "_.-~")
    else ("+" if byte == 0x20 else f"%{byte:02X}")
    for byte in range(256)
}


def form_encode(params: Mapping[str, str]) -> bytes:
    """``params`` as an ``application/x-www-form-urlencoded`` body, as ``urlencode`` writes it.

    In C (``str.translate`` over the UTF-8 bytes): a fleet's batched query is
    ~100 KB of workflow names, and ``urlencode`` quotes it a byte at a time
    in Python (~40 ms a query).
    """
    return "&".join(f"{_percent(name)}={_percent(value)}" for name, value in params.items()).encode(
        "ascii"
    )


def _percent(text: str) -> str:
    return text.encode().decode("latin-1").translate(_FORM_TABLE)


_SERIES_SHOWN = 3
_ALLOW_HINT = "prometheus.partial_response: allow accepts it"

# The forms of Go's strconv.FormatFloat that Prometheus writes (and ParseFloat reads):
# ASCII decimal digits with an optional fraction and exponent, or NaN, +Inf, -Inf.
# Not Python's float() grammar: no "0_0", no non-ASCII digits, no spaces, no hex.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_VALUES = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and its value (may be NaN or ±Inf)."""

    labels: Mapping[str, str]
    value: float


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


def _base_url(url: str) -> httpx.URL:
    shown = redact_url(url)
    try:
        base = httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx's reason may quote a piece of the user info: only show it when there is none.
        why = f": {exc}" if shown == url else ""
        raise UsageError(f"invalid Prometheus URL {shown!r}{why}") from exc
    if base.scheme not in ("http", "https") or not base.host:
        raise UsageError(f"invalid Prometheus URL {shown!r}: expected http://host[:port][/path]")
    return base


class PrometheusClient:
    """An async Prometheus HTTP API client for instant queries.

    Use as ``async with PrometheusClient(url) as prom: await prom.query(q, at=t)``.
    ``url`` (the attribute) is the base URL with its user info redacted, for
    messages. ``transport`` swaps the network for tests (``httpx.MockTransport``);
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
        bearer_token: str | None = None,
        ca_data: str | None = None,
        insecure_skip_verify: bool = False,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        partial_response: Literal["deny", "allow"] = "deny",
        query_offset: float = 0.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_query: Callable[[str, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise UsageError(f"Prometheus timeout must be > 0, got {timeout}")
        if query_offset < 0:
            raise UsageError(f"query_offset must be >= 0, got {query_offset}")
        base = _base_url(url)
        self.url = redact_url(str(base).rstrip("/"))
        # Credentials in the URL go as basic auth, and out of the URL every request
        # (and every httpx log line or exception about it) carries.
        self._auth: httpx.BasicAuth | None = None
        if base.userinfo:
            self._auth = httpx.BasicAuth(base.username, base.password)
            base = base.copy_with(userinfo=b"")
        self._query_url = str(base).rstrip("/") + "/api/v1/query"
        self._bearer_token_file = bearer_token_file
        self._bearer_token = bearer_token
        self._timeout = timeout
        self._retry = retry
        self._max_body = max_body_bytes
        self.partial_response = partial_response
        self.query_offset = query_offset
        self._on_query = on_query
        self._sleep = sleep
        self._clock = clock
        # A header that cannot be sent or a CA file that cannot be loaded makes every
        # query fail with that cause (no data for the gates that use it), rather than
        # stopping the caller.
        self._config_error: str | None = None
        extra = dict(headers or {})
        verify: Any = False
        try:
            check_headers(extra)
            verify = tls_verify(
                base,
                ca_file=ca_file,
                ca_data=ca_data,
                insecure_skip_verify=insecure_skip_verify,
            )
        except QueryError as exc:
            self._config_error = str(exc)
            extra = {}
        self._client = async_client(headers=extra, verify=verify, transport=transport)

    @classmethod
    def from_settings(
        cls,
        settings: PrometheusSettings,
        *,
        url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_query: Callable[[str, float], None] | None = None,
        bearer_token: str | None = None,
        ca_data: str | None = None,
    ) -> PrometheusClient:
        """A client for a policy's ``prometheus`` settings; ``url`` (the flag) overrides theirs.

        The URL is ``url``, else ``$GATECTL_PROMETHEUS_URL``, else ``settings.url``.
        ``bearer_token`` and ``ca_data`` are what the controller read from the Secret
        or ConfigMap that ``settings.auth`` / ``settings.ca`` name; a reference that
        was not read (outside Kubernetes) fails every query with that cause.
        """
        client = cls(
            resolve_url(settings, url=url, environ=os.environ),
            headers=settings.headers,
            bearer_token_file=settings.bearer_token_file,
            ca_file=settings.ca_file,
            bearer_token=bearer_token,
            ca_data=ca_data,
            insecure_skip_verify=settings.insecure_skip_verify,
            timeout=settings.timeout,
            partial_response=settings.partial_response,
            query_offset=settings.query_offset,
            transport=transport,
            on_query=on_query,
        )
        unread = [
            field
            for field, ref, value in (
                ("auth", settings.auth, bearer_token),
                ("ca", settings.ca, ca_data),
            )
            if ref is not None and value is None
        ]
        if unread:
            client._config_error = (
                f"prometheus.{' and prometheus.'.join(unread)} name a Secret or ConfigMap,"
                " which only `gatectl run --kubernetes` reads; elsewhere use bearer_token_file"
                " and ca_file"
            )
        return client

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

        The query's ``time=`` is ``at - query_offset``. Raises ``QueryError`` with
        the cause when no usable answer came back within the deadline.
        """
        if at.tzinfo is None:
            raise ValueError("at must be a timezone-aware datetime")
        when = at - timedelta(seconds=self.query_offset)
        params = {
            "query": promql,
            "time": f"{when.timestamp():.3f}",
            "partial_response": "true" if self.partial_response == "allow" else "false",
        }
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
        return await retry_async(
            lambda: self._attempt(params, deadline=deadline),
            what="Prometheus query",
            policy=self._retry,
            logger=logger,
            sleep=self._sleep,
            clock=self._clock,
            deadline=deadline,
            deadline_seconds=self._timeout,
        )

    async def _attempt(self, params: dict[str, str], *, deadline: float) -> list[Sample]:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise QueryError(f"timed out: no time left of the {self._timeout:g}s deadline")
        headers = self._auth_headers()
        long = len(params["query"]) > _MAX_GET_QUERY
        try:
            async with asyncio.timeout(remaining):
                # Long queries (many workflows at once) go as a form, past URL limits.
                async with self._client.stream(
                    "POST" if long else "GET",
                    self._query_url,
                    params=None if long else params,
                    content=form_encode(params) if long else None,
                    headers={**headers, "Content-Type": _FORM} if long else headers,
                    auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                    timeout=remaining,
                ) as response:
                    body = await read_body(response, limit=self._max_body)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise transport_error(exc, url=self.url) from exc
        return self._parse(response, body)

    def _auth_headers(self) -> dict[str, str]:
        if self._bearer_token is not None:
            header = {"Authorization": f"Bearer {self._bearer_token.strip()}"}
            try:
                check_headers(header)
            except QueryError as exc:
                raise QueryError(
                    "the bearer token from the gate's Secret must be printable ASCII on one line"
                ) from exc
            return header
        if self._bearer_token_file is None:
            return {}
        try:
            with open(self._bearer_token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(
                f"cannot read bearer token file {self._bearer_token_file}: {exc}"
            ) from exc
        if not token:
            raise QueryError(f"bearer token file {self._bearer_token_file} is empty")
        header = {"Authorization": f"Bearer {token}"}
        try:
            check_headers(header)
        except QueryError as exc:
            raise QueryError(
                f"bearer token file {self._bearer_token_file}: the token must be printable"
                " ASCII on one line"
            ) from exc
        return header

    def _parse(self, response: httpx.Response, body: bytes) -> list[Sample]:
        payload = _payload(response, body)
        if self.partial_response == "deny":
            _refuse_partial(payload)
        return _samples(payload)


def _excerpt(text: str, limit: int = _BODY_EXCERPT) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def _error_text(payload: object) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        kind = payload.get("errorType")
        text = f"{kind}: {payload['error']}" if isinstance(kind, str) else payload["error"]
        return _excerpt(text)
    return None


def _payload(response: httpx.Response, raw: bytes) -> Any:
    """The JSON of a 2xx answer; ``QueryError`` (transient for 5xx/429) with the cause otherwise."""
    status = response.status_code
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
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
            detail = f"redirected to {redact_url(_excerpt(response.headers['Location']))}"
        message = f"{reason} from Prometheus" + (f": {detail}" if detail else "")
        if status == 429 or status >= 500:
            raise TransientError(message, retry_after=retry_after(response))
        raise QueryError(message)
    if not parsed:
        shown = _excerpt(body) if body.strip() else "empty body"
        raise QueryError(f"invalid JSON from Prometheus (HTTP {status}): {shown}")
    return payload


def _refuse_partial(payload: Any) -> None:
    """``QueryError`` for an answer that says it may be incomplete (warnings, ``isPartial``)."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        return
    warnings = payload.get("warnings")
    if isinstance(warnings, list) and warnings:
        shown = "; ".join(_excerpt(str(w), 100) for w in warnings[:_SERIES_SHOWN])
        more = f" (+{len(warnings) - _SERIES_SHOWN} more)" if len(warnings) > _SERIES_SHOWN else ""
        raise QueryError(f"partial answer: Prometheus warned: {shown}{more} ({_ALLOW_HINT})")
    data = payload.get("data")
    if payload.get("isPartial") is True or (
        isinstance(data, dict) and data.get("isPartial") is True
    ):
        raise QueryError(f"partial answer: the response is marked isPartial ({_ALLOW_HINT})")


def _samples(payload: Any) -> list[Sample]:
    if not isinstance(payload, dict):
        raise QueryError(
            f"unexpected response: expected a JSON object, got {_excerpt(str(payload))}"
        )
    if payload.get("status") != "success":
        detail = _error_text(payload) or "no error text"
        status = _excerpt(str(payload.get("status")), _VALUE_EXCERPT)
        raise QueryError(f"Prometheus status {status!r}: {detail}")
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
    shown = _excerpt(str(kind), _VALUE_EXCERPT)
    raise QueryError(f"unexpected response: unknown resultType {shown!r}")


def _vector_sample(item: object) -> Sample:
    if not isinstance(item, dict):
        raise QueryError("unexpected response: vector element is not an object")
    labels = item.get("metric", {})
    if not isinstance(labels, dict):
        raise QueryError("unexpected response: series labels are not a string map")
    for value in labels.values():  # a JSON object's keys are strings already
        if not isinstance(value, str):
            raise QueryError("unexpected response: series labels are not a string map")
    return Sample(labels=labels, value=_value(item.get("value")))


def _value(pair: object) -> float:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        shown = _excerpt(repr(pair), _VALUE_EXCERPT)
        raise QueryError(f'unexpected response: sample value {shown} is not [time, "value"]')
    return parse_sample_value(pair[1])


def parse_sample_value(text: str) -> float:
    """A sample value as Prometheus writes it: ``"0.25"``, ``"1e-05"``, ``"NaN"``, ``"+Inf"``.

    Only the forms Go's ``strconv.ParseFloat`` reads and Prometheus emits: ASCII
    digits with an optional sign, fraction and exponent, or exactly ``NaN``,
    ``+Inf`` and ``-Inf``. Python's wider ``float()`` grammar (``"0_0"``,
    ``"１"``, ``" 1"``, ``"infinity"``) is refused with a ``QueryError``.
    """
    special = _SPECIAL_VALUES.get(text)
    if special is not None:
        return special
    if _NUMBER.fullmatch(text):
        return float(text)
    shown = text if len(text) <= _VALUE_EXCERPT else text[:_VALUE_EXCERPT] + "…"
    raise QueryError(f"unexpected response: sample value {shown!r} is not a Prometheus number")


def format_labels(labels: Mapping[str, str]) -> str:
    """``{a="x", b="y"}`` with names sorted and values escaped, as Prometheus prints them."""
    inner = ", ".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def single_value(samples: Sequence[Sample], *, promql: str = "") -> float:
    """The one finite value of a one-series result; ``QueryError`` for anything else.

    Empty vectors, several series, NaN and ±Inf are *no data*, with the reason.
    """
    value = value_or_error(samples, promql=promql)
    if isinstance(value, QueryError):
        raise value
    return value


def value_or_error(samples: Sequence[Sample], *, promql: str = "") -> float | QueryError:
    """:func:`single_value`, with the ``QueryError`` returned instead of raised.

    For a batched read, where every workflow without a series (a track with
    no baseline, say) is one such error a pass: an exception object that is
    never raised carries no traceback, so it keeps no frame (and the batch's
    samples) alive and costs a fraction of a raise.
    """
    suffix = f" (query: {promql})" if promql else ""
    if not samples:
        return QueryError(f"empty result: no series matched{suffix}")
    if len(samples) > 1:
        shown = ", ".join(format_labels(s.labels) for s in samples[:_SERIES_SHOWN])
        more = ", …" if len(samples) > _SERIES_SHOWN else ""
        return QueryError(f"expected one series, got {len(samples)}: {shown}{more}{suffix}")
    value = samples[0].value
    if math.isnan(value):
        return QueryError(f"value is NaN{suffix}")
    if math.isinf(value):
        return QueryError(f"value is {'+Inf' if value > 0 else '-Inf'}{suffix}")
    return value
