"""``traffic.kind: patch``: set two weights, by JSON pointer, in any Kubernetes object.

AI traffic often splits in an object gatectl has no actuator for — an Istio
VirtualService, a KServe LLMInferenceService, an SMI TrafficSplit. This
actuator reads the object, and when the weights at ``ai_weight`` and
``deterministic_weight`` differ from the share, sends a server-side apply under
the field manager ``gatectl`` holding only what it sets. A GitOps tool can then
be told to leave exactly gatectl's fields alone (``managedFields``).

Server-side apply treats a list without merge keys as one value, so where a
pointer passes through a list the whole list is sent (as read, with the weight
changed): gatectl then co-owns that list, and nothing in it is lost. Only a
numeric weight (or a missing one inside an existing object) is ever set.

``apply_body`` and ``weights_at`` are pure; ``apply_patch`` does the I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from gatectl.core.flagd import split_of
from gatectl.policy.models import TrafficSettings

__all__ = ["FIELD_MANAGER", "PatchError", "apply_body", "apply_patch", "weights_at"]

FIELD_MANAGER = "gatectl"
"""The field manager gatectl applies under (what GitOps tools are told to ignore)."""


class PatchError(ValueError):
    """A pointer that does not lead to a weight in the object (the message says where)."""


class ApplyAPI(Protocol):
    """Read one object; server-side apply to it."""

    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...

    def apply(
        self,
        name: str,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
    ) -> dict[str, Any]: ...


def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def _index(node: list[Any], part: str, pointer: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise PatchError(f"{pointer}: no item {part!r} in a list of {len(node)}")
    return int(part)


def weights_at(obj: Mapping[str, Any], pointer: str) -> float | None:
    """The number at ``pointer`` (None when the last key is missing); PatchError otherwise."""
    parts = _parts(pointer)
    node: Any = obj
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            node = node[_index(node, part, pointer)]
        elif isinstance(node, dict):
            if part not in node:
                if last:
                    return None
                raise PatchError(f"{pointer}: no {'/'.join(parts[: depth + 1])} in the object")
            node = node[part]
        else:
            raise PatchError(f"{pointer}: {'/'.join(parts[:depth])} is not an object or a list")
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise PatchError(f"{pointer}: holds {type(node).__name__}, not a weight (a number)")
    return float(node)


def apply_body(
    current: Mapping[str, Any], wanted: Mapping[str, int], *, namespace: str | None
) -> dict[str, Any]:
    """The apply configuration setting each pointer of ``wanted`` in ``current``.

    Objects on the way hold only the keys that lead to a weight; a list on the
    way is sent whole (a copy of ``current``'s, weights changed).
    """
    meta = current.get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": current.get("apiVersion"),
        "kind": current.get("kind"),
        "metadata": {"name": meta.get("name")},
    }
    if namespace is not None:
        body["metadata"]["namespace"] = namespace
    for pointer, value in wanted.items():
        weights_at(current, pointer)  # the path exists and ends at a number (or nothing)
        parts = _parts(pointer)
        source: Any = current
        target: Any = body
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(source, list):
                index = _index(source, part, pointer)
                if last:
                    target[index] = value
                else:
                    source, target = source[index], target[index]
                continue
            if last:
                target[part] = value
                continue
            child = source[part]
            if isinstance(child, list):
                if part not in target:
                    target[part] = copy.deepcopy(child)
            else:
                target.setdefault(part, {})
            source, target = child, target[part]
    return body


def apply_patch(api: ApplyAPI, traffic: TrafficSettings, share: float, namespace: str) -> bool:
    """Set the two weights of ``traffic.target`` for ``share``; True when an apply was sent."""
    assert traffic.target is not None
    assert traffic.ai_weight is not None and traffic.deterministic_weight is not None
    name = traffic.target.name
    current = api.get(name, namespace=namespace)
    ai, deterministic = split_of(share, traffic.total)
    wanted = {traffic.ai_weight: ai, traffic.deterministic_weight: deterministic}
    if all(weights_at(current, pointer) == value for pointer, value in wanted.items()):
        return False
    api.apply(name, apply_body(current, wanted, namespace=namespace), namespace=namespace)
    return True
