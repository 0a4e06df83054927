"""A ReleaseGate's own Prometheus credentials: read from its namespace, never from a file.

On Kubernetes a gate names its bearer token as ``prometheus.auth.secretRef``
and its CA bundle as ``prometheus.ca.secretRef`` or ``.configMapRef`` — keys of
objects in the gate's own namespace, read with the controller's RBAC (``get``
on ``secrets`` and ``configmaps``). A gate cannot name another namespace, so a
team can only hand the controller credentials it already holds.

Reads are cached for ``ttl`` seconds per object, so 10,000 gates sharing one
Secret cost one read per ``ttl``, and a rotated token is picked up within it.
Errors name the object and key, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gatectl.errors import ForbiddenError, GatectlError, NotFoundError
from gatectl.policy.models import Gate, ObjectKeyRef

__all__ = ["GateCredentials", "KubeSecretReader", "ObjectReader", "credentials_for"]

Kind = Literal["secrets", "configmaps"]


class ObjectReader(Protocol):
    """Reads one key of a Secret or ConfigMap (the kube reader; a dict in tests)."""

    def value(self, kind: Kind, *, namespace: str, ref: ObjectKeyRef) -> str:
        """The key's value as text; ``GatectlError`` naming the object when it cannot."""
        ...


@dataclass(frozen=True)
class GateCredentials:
    """What the controller read for one gate: a bearer token and/or a CA bundle (PEM)."""

    bearer_token: str | None = None
    ca_data: str | None = None

    @property
    def fingerprint(self) -> str:
        """Tells two credentials apart (for client caching) without holding their value."""
        digest = hashlib.sha256()
        for part in (self.bearer_token, self.ca_data):
            digest.update(b"\0" if part is None else b"\1" + part.encode())
        return digest.hexdigest()[:16]


NONE = GateCredentials()


def credentials_for(gate: Gate, reader: ObjectReader | None) -> GateCredentials:
    """The credentials ``gate``'s ``prometheus.auth`` / ``prometheus.ca`` name."""
    settings = gate.spec.prometheus
    if settings.auth is None and settings.ca is None:
        return NONE
    if reader is None:
        raise GatectlError(
            "prometheus.auth / prometheus.ca name a Secret or ConfigMap, which only"
            " `gatectl run --kubernetes` reads"
        )
    token = None
    if settings.auth is not None:
        token = reader.value("secrets", namespace=gate.namespace, ref=settings.auth.secret_ref)
    ca = None
    if settings.ca is not None:
        if settings.ca.secret_ref is not None:
            ca = reader.value("secrets", namespace=gate.namespace, ref=settings.ca.secret_ref)
        elif settings.ca.config_map_ref is not None:
            ca = reader.value(
                "configmaps", namespace=gate.namespace, ref=settings.ca.config_map_ref
            )
    return GateCredentials(bearer_token=token, ca_data=ca)


class _Resources(Protocol):
    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...


_NOUN = {"secrets": "Secret", "configmaps": "ConfigMap"}


class KubeSecretReader:
    """Reads Secret and ConfigMap keys through the Kubernetes API, with a short cache."""

    def __init__(
        self,
        resources: Callable[[Kind], _Resources],
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resources = resources
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[Kind, str, str], tuple[float, Mapping[str, Any]]] = {}

    def _data(self, kind: Kind, namespace: str, name: str) -> Mapping[str, Any]:
        key = (kind, namespace, name)
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        where = f"{_NOUN[kind]} {namespace}/{name}"
        try:
            obj = self._resources(kind).get(name, namespace=namespace)
        except NotFoundError:
            raise GatectlError(f"{where} not found") from None
        except ForbiddenError:
            raise GatectlError(
                f"the controller may not read {where} (RBAC: get {kind} in {namespace})"
            ) from None
        data = obj.get("data") or {}
        self._cache[key] = (now, data)
        return data

    def value(self, kind: Kind, *, namespace: str, ref: ObjectKeyRef) -> str:
        data = self._data(kind, namespace, ref.name)
        where = f"{_NOUN[kind]} {namespace}/{ref.name}"
        raw = data.get(ref.key)
        if not isinstance(raw, str) or not raw:
            raise GatectlError(f"{where} has no key {ref.key!r}")
        if kind == "configmaps":
            return raw
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise GatectlError(f"{where}: key {ref.key!r} is not base64 UTF-8 text") from None
