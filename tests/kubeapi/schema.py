"""Pruning of unknown fields, as a real API server does for a CRD's structural schema.

A real cluster silently drops every field of a custom resource that its
CRD's ``openAPIV3Schema`` does not declare (unless the schema says
``x-kubernetes-preserve-unknown-fields: true``), in ``spec`` and in
``status`` alike. A controller that writes a status field the CRD lacks
loses it on a real cluster; the test server must lose it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["prune"]

_ALWAYS_KEPT = ("apiVersion", "kind", "metadata")


def prune(obj: dict[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """``obj`` without the fields ``schema`` does not allow; metadata is never pruned."""
    if not schema:
        return obj
    kept = {key: obj[key] for key in _ALWAYS_KEPT if key in obj}
    body = {key: value for key, value in obj.items() if key not in _ALWAYS_KEPT}
    pruned = _prune(body, schema)
    return {**kept, **(pruned if isinstance(pruned, dict) else {})}


def _prune(value: Any, schema: Any) -> Any:
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        if properties is not None or preserve:
            properties = properties or {}
            return {
                key: _prune(item, properties[key]) if key in properties else item
                for key, item in value.items()
                if key in properties or preserve
            }
        if isinstance(additional, Mapping):
            return {key: _prune(item, additional) for key, item in value.items()}
        if additional is True:
            return value
        return {}
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune(item, items) for item in value] if isinstance(items, Mapping) else value
    return value
