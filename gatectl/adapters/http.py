"""The one HTTP seam: how gatectl builds clients, reads answers, maps failures and retries.

Prometheus queries and webhooks both go through here, so they share one set
of rules:

- **Clients** (:func:`async_client`): a timeout, TLS verified against the
  bundled CA list or a CA file (``insecure_skip_verify`` turns it off, never
  an environment variable), redirects never followed, and ``trust_env=False``:
  ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY``,
  ``SSL_CERT_FILE``/``SSL_CERT_DIR`` and ``~/.netrc`` are *not* used, so what
  a request carries and where it goes is what the policy and flags say.
  Header names and values are checked first (:func:`check_headers`); a bad one
  is an error naming the header, never showing its value.
- **Bodies** (:func:`read_body`): read while streaming, with a cap on the
  bytes received *and* on the bytes after decompression (gzip/deflate are
  inflated here, a bounded piece at a time), so an oversized answer or a
  gzip bomb stops at the cap instead of filling memory.
- **Failures** (:func:`transport_error`): every httpx exception becomes a
  ``QueryError`` (``raise ... from exc``) in this one function; messages name
  the URL with its user info redacted and never quote a header.
- **Retries** (:class:`RetryPolicy`, :func:`retry_async`, :func:`log_retry`,
  from ``gatectl.adapters.retry`` and re-exported here): schedules are plain
  data, only transient failures are retried, ``Retry-After`` is honoured up to
  a cap, and each retry is logged as ``#2/5``. The Kubernetes adapter uses the
  same dataclass and log line.
"""

from __future__ import annotations

import ssl
import time
import zlib
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from gatectl.adapters.retry import RetryPolicy, TransientError, log_retry, retry_async
from gatectl.core.redact import redact_url
from gatectl.errors import QueryError
from gatectl.policy.models import PrometheusSettings

__all__ = [
    "MiB",
    "RetryPolicy",
    "TransientError",
    "async_client",
    "check_headers",
    "describe",
    "log_retry",
    "read_body",
    "retry_after",
    "retry_async",
    "tls_verify",
    "transport_error",
]

MiB = 1024 * 1024

USER_AGENT = "gatectl"


# --- retries -------------------------------------------------------------------


def retry_after(response: httpx.Response) -> float | None:
    """The server's ``Retry-After`` in seconds (a number or an HTTP date), if it gave one."""
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


# --- clients -----------------------------------------------------------------------


def check_headers(headers: Mapping[str, str]) -> None:
    """``QueryError`` naming the first header the HTTP library would refuse (never its value)."""
    for name, value in headers.items():
        problem = PrometheusSettings.header_problem(name, value)
        if problem is not None:
            raise QueryError(problem)


def tls_verify(
    url: httpx.URL,
    *,
    ca_file: str | None = None,
    ca_data: str | None = None,
    insecure_skip_verify: bool = False,
) -> ssl.SSLContext | bool:
    """What to verify TLS with; ``QueryError`` when the CA file or PEM cannot be loaded."""
    if insecure_skip_verify:
        return False
    if ca_data is not None:
        try:
            return ssl.create_default_context(cadata=ca_data)
        except (ValueError, ssl.SSLError) as exc:
            raise QueryError(f"cannot load the CA bundle from the gate's reference: {exc}") from exc
    if ca_file is not None:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise QueryError(f"cannot load CA file {ca_file}: {exc}") from exc
    # Plain HTTP (redirects are not followed) never does TLS: skip loading the
    # CA bundle, which costs ~30 ms of every `gatectl evaluate`.
    return url.scheme != "http"


def async_client(
    *,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
    timeout: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An httpx client with gatectl's rules (see the module docstring); checks ``headers``."""
    extra = dict(headers or {})
    check_headers(extra)
    return httpx.AsyncClient(
        # Bodies are inflated by read_body (with a cap), which knows these two.
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **extra},
        verify=verify,
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        trust_env=False,
    )


# --- bodies ----------------------------------------------------------------------


class _TooLarge(Exception):
    pass


def _size(limit: int) -> str:
    if limit >= MiB and limit % MiB == 0:
        return f"{limit // MiB} MiB"
    return f"{limit} bytes"


def _too_large(limit: int, *, decompressed: bool = False) -> QueryError:
    what = "decompressed response body" if decompressed else "response body"
    return QueryError(f"{what} is larger than the cap of {_size(limit)}: not read")


def _inflater(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    shown = encoding if len(encoding) <= 20 else encoding[:20] + "…"
    raise QueryError(f"unsupported Content-Encoding {shown!r}: only gzip or deflate is read")


async def read_body(response: httpx.Response, *, limit: int) -> bytes:
    """The body of a streamed ``response``, inflated, refusing more than ``limit`` bytes.

    Both the bytes received and the bytes they inflate to are capped; the
    inflating runs ``limit + 1`` bytes at most at a time, so a small gzip
    bomb never takes more than about twice ``limit`` of memory.
    """
    if response.is_stream_consumed:
        # The transport handed over a body already in memory (httpx decoded it).
        if len(response.content) > limit:
            raise _too_large(limit)
        return response.content
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    inflater = _inflater(response.headers.get("Content-Encoding", ""))
    received = 0
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            if inflater is None:
                body += chunk
                continue
            data = chunk
            while data:
                body += inflater.decompress(data, limit + 1 - len(body))
                if len(body) > limit:
                    raise _too_large(limit, decompressed=True)
                data = inflater.unconsumed_tail
        if inflater is not None:
            body += inflater.flush()
            if len(body) > limit:
                raise _too_large(limit, decompressed=True)
    except zlib.error as exc:
        raise QueryError(f"undecodable compressed response body: {exc}") from exc
    return bytes(body)


# --- failures ----------------------------------------------------------------------


def describe(exc: BaseException) -> str:
    """``Type: text`` of an exception (just ``Type`` when it has no text)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scrub(text: str, url: str) -> str:
    """``text`` with ``url`` (and its user info, wherever it appears) redacted."""
    safe = redact_url(url)
    if safe == url:
        return text
    text = text.replace(url, safe)
    start = url.find("://") + 3 if "://" in url else 0
    userinfo = url[start : url.rfind("@")]
    return text.replace(userinfo, "***") if userinfo else text


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def transport_error(exc: httpx.HTTPError | TimeoutError, *, url: str) -> QueryError:
    """The ``QueryError`` for a request to ``url`` that failed with ``exc``.

    A ``TransientError`` (worth retrying) for timeouts, refused or dropped
    connections; a final ``QueryError`` for a bad certificate, a header the
    HTTP library refuses, or anything else. Raise it ``from exc``.
    """
    target = redact_url(url)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        kind = f": {type(exc).__name__}" if isinstance(exc, httpx.TimeoutException) else ""
        return TransientError(f"timed out waiting for {target}{kind}")
    detail = _scrub(describe(exc), url)
    if isinstance(exc, httpx.ConnectError):
        if _is_certificate_error(exc):
            return QueryError(f"TLS verification failed for {target}: {detail}")
        return TransientError(f"cannot connect to {target}: {detail}")
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 quotes the offending header whole: say which kind of thing, not what.
        return QueryError(
            f"request to {target} refused by the HTTP library: a header name or value is"
            " not allowed (printable ASCII only, no line breaks)"
        )
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return TransientError(f"connection to {target} failed: {detail}")
    return QueryError(f"request to {target} failed: {detail}")
