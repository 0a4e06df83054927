"""Kubernetes Events (core/v1) about an object, so ``kubectl describe`` shows what gatectl did.

One Event per call; repeats are created anew rather than counted, which
keeps this a single POST with nothing to read first.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .client import EVENTS, ApiClient, Resources

__all__ = ["record_event"]

_MAX_MESSAGE = 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


def record_event(
    target: Resources | ApiClient,
    *,
    obj: Mapping[str, Any],
    reason: str,
    message: str,
    type: str = "Normal",
    component: str = "gatectl",
    clock: Callable[[], datetime] = _utcnow,
) -> dict[str, Any]:
    """Create an Event about ``obj`` in its namespace; returns the created Event.

    ``target`` is an ApiClient or a ``Resources`` for core/v1 events.
    Raises ``gatectl.errors.ClusterError`` like any other write.
    """
    resources = target if isinstance(target, Resources) else Resources(target, EVENTS)
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = clock().astimezone(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    name = meta.get("name") or "object"
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{name}.{int(now.timestamp() * 1e9):x}{secrets.token_hex(2)}",
            "namespace": namespace,
        },
        "involvedObject": {key: value for key, value in involved.items() if value is not None},
        "reason": reason,
        "message": message[:_MAX_MESSAGE],
        "type": type,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    return resources.create(event, namespace=namespace)
