"""The object store behind the test API server: objects, resourceVersions, watch history.

Every write takes the next value of one global counter as the object's
``resourceVersion`` (a string, as the real API server sends it) and appends
an event to a bounded history that watches replay from. ``compact()`` forgets
that history, so a watch from an older version gets "410 Gone".

Semantics kept from the real API server because controllers depend on them:
stale ``metadata.resourceVersion`` on an update or in a patch -> 409;
with a status subresource, main-resource writes keep the stored ``status``
and status writes keep everything else; ``generation`` moves only when the
spec (everything but metadata and status) changes; an update that changes
nothing is a no-op (same resourceVersion, no watch event); an object with
finalizers is only marked (``deletionTimestamp``) by a delete and goes once
an update removes its last finalizer; fields a CRD's schema does not declare
are pruned, as a real cluster does (``schema.py``).
"""

from __future__ import annotations

import builtins
import copy
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .patches import PatchError, json_patch, merge_patch
from .resources import BUILTIN_TYPES, ResourceType, type_from_crd
from .schema import prune

__all__ = ["ApiError", "Store", "WatchEvent"]

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class ApiError(Exception):
    """An error the server answers with a ``kind: Status`` body."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        super().__init__(message)

    def body(self) -> Obj:
        """The ``kind: Status`` object the real API server sends."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.status,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class WatchEvent:
    """One write, as watches replay it."""

    rv: int
    rtype: ResourceType
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    previous: Obj | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(obj: Mapping[str, Any], *, with_status: bool) -> Obj:
    skip = {"metadata", "apiVersion", "kind"} | (set() if with_status else {"status"})
    return {key: value for key, value in obj.items() if key not in skip}


class Store:
    """Thread-safe objects and history; every method takes and returns copies."""

    def __init__(
        self, *, history: int = 10_000, auto_namespaces: bool = True, prune: bool = True
    ) -> None:
        self.cond = threading.Condition()
        self.types: list[ResourceType] = list(BUILTIN_TYPES)
        self.objects: dict[Key, Obj] = {}
        self.rv = 0
        self.history: deque[WatchEvent] = deque(maxlen=history)
        self.compacted_rv = 0
        self.auto_namespaces = auto_namespaces
        self.prune = prune
        with self.cond:
            for name in ("default", "kube-system", "kube-public"):
                self._ensure_namespace(name)

    # -- reads -------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        with self.cond:
            return copy.deepcopy(self._existing(rtype, namespace, name))

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        match: Callable[[Mapping[str, Any]], bool] = lambda obj: True,
    ) -> tuple[list[Obj], int]:
        """Matching objects sorted by namespace and name, and the current resourceVersion."""
        with self.cond:
            items = [
                copy.deepcopy(obj)
                for (group, plural, ns, _), obj in sorted(self.objects.items())
                if (group, plural) == (rtype.group, rtype.plural)
                and (namespace is None or ns == namespace)
                and match(obj)
            ]
            return items, self.rv

    def events_after(self, rv: int) -> builtins.list[WatchEvent]:
        """History newer than ``rv``; raises 410 when part of it was compacted away."""
        with self.cond:
            if rv < self.compacted_rv:
                raise ApiError(
                    410, "Expired", f"too old resource version: {rv} ({self.compacted_rv})"
                )
            return [event for event in self.history if event.rv > rv]

    # -- writes ------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Obj) -> Obj:
        with self.cond:
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(400, "BadRequest", "metadata must be an object")
            self._check_namespace(rtype, namespace, meta)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            name = meta.get("name")
            if not name:
                raise ApiError(
                    422, "Invalid", f"{rtype.kind} is invalid: metadata.name: Required value"
                )
            self._check_name(rtype, name)
            ns = namespace or ""
            if rtype.namespaced:
                self._require_namespace(ns)
            key = (rtype.group, rtype.plural, ns, name)
            if key in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{rtype.qualified} "{name}" already exists',
                    details={"name": name, "group": rtype.group, "kind": rtype.plural},
                )
            if rtype.status_subresource and rtype.plural != "customresourcedefinitions":
                obj.pop("status", None)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            for transient in ("resourceVersion", "deletionTimestamp", "managedFields"):
                meta.pop(transient, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            if rtype.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            if rtype.has_generation:
                meta["generation"] = 1
            if rtype.plural == "customresourcedefinitions":
                self._register_crd(obj)
            obj = prune(obj, self._schema(rtype))
            return self._commit(rtype, key, "ADDED", obj, None)

    def update(
        self, rtype: ResourceType, namespace: str | None, name: str, body: Obj, *, status: bool
    ) -> Obj:
        with self.cond:
            old = self._existing(rtype, namespace, name)
            meta = body.get("metadata") or {}
            if meta.get("name") not in (None, name):
                raise ApiError(
                    400, "BadRequest", "the name of the object does not match the name on the URL"
                )
            self._check_namespace(rtype, namespace, meta)
            self._check_precondition(rtype, old, meta.get("resourceVersion"))
            return self._write(rtype, old, copy.deepcopy(body), status=status)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str,
        status: bool,
    ) -> tuple[Obj, bool]:
        """Apply a patch; returns the object and whether it was created (apply only)."""
        with self.cond:
            try:
                old = self._existing(rtype, namespace, name)
            except ApiError:
                if patch_type != "apply":
                    raise
                body = copy.deepcopy(patch)
                body.setdefault("metadata", {})["name"] = name
                return self.create(rtype, namespace, body), True
            try:
                if patch_type == "json":
                    new = json_patch(old, patch)
                else:
                    if not isinstance(patch, dict):
                        raise PatchError("a merge patch must be a JSON object", status=400)
                    new = merge_patch(old, patch)
            except PatchError as exc:
                reason = "BadRequest" if exc.status == 400 else "Invalid"
                raise ApiError(exc.status, reason, str(exc)) from exc
            self._check_precondition(rtype, old, (new.get("metadata") or {}).get("resourceVersion"))
            return self._write(rtype, old, new, status=status), False

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
    ) -> Obj:
        with self.cond:
            old = self._existing(rtype, namespace, name)
            wanted = preconditions or {}
            self._check_precondition(rtype, old, wanted.get("resourceVersion"))
            if wanted.get("uid") not in (None, old["metadata"]["uid"]):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: {wanted['uid']}, "
                    f"UID in object meta: {old['metadata']['uid']}",
                )
            key = self._key(rtype, namespace, name)
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return copy.deepcopy(old)
                marked = copy.deepcopy(old)
                marked["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
                if rtype.has_generation:
                    marked["metadata"]["generation"] = int(old["metadata"].get("generation", 0)) + 1
                return self._commit(rtype, key, "MODIFIED", marked, old)
            return self._commit(rtype, key, "DELETED", copy.deepcopy(old), old)

    def compact(self) -> int:
        """Forget all history: a watch from any older resourceVersion now gets 410."""
        with self.cond:
            self.history.clear()
            self.compacted_rv = self.rv
            return self.rv

    # -- internals -----------------------------------------------------------

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return (rtype.group, rtype.plural, namespace or "", name)

    def _existing(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(self._key(rtype, namespace, name))
        if obj is None:
            raise ApiError(
                404,
                "NotFound",
                f'{rtype.qualified} "{name}" not found',
                details={"name": name, "group": rtype.group, "kind": rtype.plural},
            )
        return obj

    def _check_name(self, rtype: ResourceType, name: str) -> None:
        if not _NAME.match(name):
            raise ApiError(
                422,
                "Invalid",
                f'{rtype.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.'",
            )

    def _check_namespace(
        self, rtype: ResourceType, namespace: str | None, meta: Mapping[str, Any]
    ) -> None:
        if rtype.namespaced and namespace is None:
            raise ApiError(405, "MethodNotAllowed", "a namespaced resource needs a namespace")
        if rtype.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )

    def _require_namespace(self, namespace: str) -> None:
        if ("", "namespaces", "", namespace) in self.objects:
            return
        if not self.auto_namespaces:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )
        self._ensure_namespace(namespace)

    def _ensure_namespace(self, name: str) -> None:
        ns_type = self.types[0]
        key = ("", "namespaces", "", name)
        if key not in self.objects:
            obj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": _now()},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            self._commit(ns_type, key, "ADDED", obj, None)

    def _check_precondition(self, rtype: ResourceType, old: Obj, wanted: Any) -> None:
        if wanted in (None, "") or str(wanted) == old["metadata"]["resourceVersion"]:
            return
        name = old["metadata"]["name"]
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            details={"name": name, "group": rtype.group, "kind": rtype.plural},
        )

    def _write(self, rtype: ResourceType, old: Obj, new: Obj, *, status: bool) -> Obj:
        if status:
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif rtype.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        fixed_fields = ("name", "namespace", "uid", "creationTimestamp", "generation")
        for fixed in (*fixed_fields, "deletionTimestamp", "deletionGracePeriodSeconds"):
            if fixed in old["metadata"]:
                meta[fixed] = old["metadata"][fixed]
            else:
                meta.pop(fixed, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        new = prune(new, self._schema(rtype))
        meta = new["metadata"]
        if new == old:
            return copy.deepcopy(old)
        with_status = not rtype.status_subresource
        if rtype.has_generation and _spec_of(new, with_status=with_status) != _spec_of(
            old, with_status=with_status
        ):
            meta["generation"] = int(old["metadata"].get("generation", 0)) + 1
        if rtype.plural == "customresourcedefinitions":
            self._register_crd(new)
        key = self._key(rtype, meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit(rtype, key, "DELETED", new, old)  # last finalizer removed
        return self._commit(rtype, key, "MODIFIED", new, old)

    def _commit(
        self, rtype: ResourceType, key: Key, kind: str, obj: Obj, previous: Obj | None
    ) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if kind == "DELETED":
            del self.objects[key]
        else:
            self.objects[key] = obj
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(WatchEvent(self.rv, rtype, key[2], kind, copy.deepcopy(obj), previous))
        self.cond.notify_all()
        return copy.deepcopy(obj)

    def _schema(self, rtype: ResourceType) -> Mapping[str, Any] | None:
        """The schema of the type as currently served (a CRD may have been replaced)."""
        if not self.prune:
            return None
        for known in self.types:
            if (known.group, known.version, known.plural) == (
                rtype.group,
                rtype.version,
                rtype.plural,
            ):
                return known.schema
        return None

    def _register_crd(self, crd: Obj) -> None:
        for rtype in type_from_crd(crd):
            self.types = [
                known
                for known in self.types
                if (known.group, known.version, known.plural)
                != (rtype.group, rtype.version, rtype.plural)
            ]
            self.types.append(rtype)
        crd["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"},
            ],
            "acceptedNames": (crd.get("spec") or {}).get("names", {}),
        }
