"""Which resources the test API server serves, and how a URL path names one.

A ``ResourceType`` says what the real API server would know from its
discovery data: group, version, plural, kind, scope and whether writes to
the main resource leave ``status`` alone (the status subresource).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTIN_TYPES", "ResourceType", "Route", "parse_path", "type_from_crd"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    scale_subresource: bool = False
    has_generation: bool = False
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """A CRD's openAPIV3Schema: unknown fields are pruned on every write."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``releasegates.gatectl.io`` as error messages spell it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True),
    ResourceType("", "v1", "configmaps", "ConfigMap"),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "events", "Event"),
    ResourceType("", "v1", "services", "Service", status_subresource=True),
    ResourceType("events.k8s.io", "v1", "events", "Event"),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        status_subresource=True,
        scale_subresource=True,
        has_generation=True,
    ),
    ResourceType(
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        "HTTPRoute",
        status_subresource=True,
        has_generation=True,
    ),
    ResourceType(
        "gatectl.io",
        "v1alpha1",
        "releasegates",
        "ReleaseGate",
        status_subresource=True,
        has_generation=True,
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status_subresource=True,
        has_generation=True,
    ),
)


def type_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition declares (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    found = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        found.append(
            ResourceType(
                spec.get("group", ""),
                version["name"],
                names.get("plural", ""),
                names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                status_subresource="status" in subresources,
                scale_subresource="scale" in subresources,
                has_generation=True,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return found


@dataclass(frozen=True)
class Route:
    """What a request path names: a collection, an object or an object's subresource."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str, types: Iterable[ResourceType]) -> Route | None:
    """Resolve ``/api/v1/...`` or ``/apis/GROUP/VERSION/...``; None when nothing is served there."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    served = {
        rtype.plural: rtype for rtype in types if (rtype.group, rtype.version) == (group, version)
    }
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in served:
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in served or len(rest) > 3:
        return None
    rtype = served[rest[0]]
    if namespace is not None and not rtype.namespaced:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Route(rtype, namespace, name, subresource)
