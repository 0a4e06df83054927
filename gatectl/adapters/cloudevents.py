"""The audit log's HTTP sink: each record POSTed as a CloudEvent (1.0, structured mode).

One request per record, ``Content-Type: application/cloudevents+json``; the
event's ``data`` is the record exactly as the chain hashed it. The ``id`` is
``<seq>-<sha256 of the record>``: delivery is at least once (a record in flight
when the controller dies is sent again after the restart), and a receiver
that drops an ``id`` it has seen gets each record exactly once. Any failure —
no connection, a timeout, an answer other than 2xx — is a ``QueryError`` the
worker retries later; redirects are not followed, no proxy or credential
comes from the environment, and messages never show a header value or the
URL's user info.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from gatectl.adapters.http import check_headers, transport_error
from gatectl.core.chain import Head, digest
from gatectl.core.redact import redact_url
from gatectl.errors import QueryError

__all__ = ["CONTENT_TYPE", "EVENT_TYPE", "HttpSink", "cloud_event"]

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
EVENT_TYPE = "io.gatectl.audit.record.v1"


def cloud_event(record: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The structured-mode CloudEvent carrying one audit record."""
    seq = int(record["seq"])
    event: dict[str, Any] = {
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": source,
        "id": f"{seq}-{digest(record)}",
        "time": record.get("time"),
        "subject": f"{record.get('namespace')}/{record.get('gate')}",
        "datacontenttype": "application/json",
        "data": dict(record),
    }
    return {k: v for k, v in event.items() if v is not None}


class HttpSink:
    """POSTs each record to ``url`` as a CloudEvent."""

    name = "http"
    batch = 1

    def __init__(
        self,
        url: str,
        *,
        source: str = "/gatectl",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.source = source
        check_headers(dict(headers or {}))
        self._client = httpx.Client(
            headers={"User-Agent": "gatectl", **dict(headers or {})},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    def holds(self) -> Head | None:
        return None

    def deliver(self, lines: Sequence[bytes]) -> None:
        for line in lines:
            event = cloud_event(json.loads(line), source=self.source)
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
            try:
                response = self._client.post(
                    self.url, content=body, headers={"Content-Type": CONTENT_TYPE}
                )
            except httpx.HTTPError as exc:
                raise _failed(str(transport_error(exc, url=self.url))) from exc
            except httpx.InvalidURL as exc:
                raise _failed(f"{redact_url(self.url)} is not a valid URL") from exc
            if not 200 <= response.status_code < 300:
                raise _failed(f"{redact_url(self.url)} answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


def _failed(message: str) -> QueryError:
    return QueryError(message)
