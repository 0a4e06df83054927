"""Request handling of the test API server: one function per verb, discovery, watch streams.

The HTTP plumbing (sockets, chunked encoding, fault injection) lives in
``server.py``; the object semantics in ``store.py``. This module maps the
API's URL and verb conventions onto the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from .patches import json_patch, merge_patch
from .resources import ResourceType, Route, parse_path
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import ApiError, Obj, Store, WatchEvent

if TYPE_CHECKING:
    from email.message import Message

    from .server import KubeAPIServer

__all__ = ["REASONS", "USERNAME", "handle"]

USERNAME = "kubeapi-admin"
"""Who the test API server says every caller is (SelfSubjectReview)."""

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class Responder(Protocol):
    api: KubeAPIServer
    headers: Message

    def _send_json(
        self, status: int, body: Any, *, headers: Mapping[str, str] | None = None
    ) -> None: ...
    def _start_chunked(self) -> None: ...
    def _send_chunk(self, payload: Mapping[str, Any]) -> None: ...
    def _end_chunked(self) -> None: ...


def handle(h: Responder, method: str, path: str, query: Mapping[str, str], raw: bytes) -> int:
    """Answer one request; returns the HTTP status sent. Errors are raised as ``ApiError``."""
    store = h.api.store
    if method == "POST" and path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
        # Who am I: a real API server answers with the authenticated user (gatectl approve,
        # reset, fallback record it); this one has a single user.
        review = json.loads(raw or b"{}")
        review["status"] = {"userInfo": {"username": USERNAME, "groups": ["system:masters"]}}
        h._send_json(201, review)
        return 201
    if method == "GET" and (found := _discovery(store, path)) is not None:
        h._send_json(200, found)
        return 200
    route = parse_path(path, store.types)
    if route is None or (route.rtype.namespaced and route.namespace is None and route.name):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    rtype, ns, name, sub = route.rtype, route.namespace, route.name, route.subresource
    if sub not in (None, "status", "scale") or (
        (sub == "status" and not rtype.status_subresource)
        or (sub == "scale" and not rtype.scale_subresource)
    ):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    content_type = (h.headers.get("Content-Type") or "application/json").split(";")[0].strip()
    if name is None:
        return _collection(h, method, route=route, query=query, raw=raw, content_type=content_type)
    if sub == "scale":
        return _scale(h, method, route, raw, content_type)
    status = sub == "status"
    if method == "GET":
        h._send_json(200, store.get(rtype, ns, name))
        return 200
    if method == "PUT":
        body = _object_body(raw, content_type)
        h._send_json(200, store.update(rtype, ns, name, body, status=status))
        return 200
    if method == "PATCH":
        kind = _patch_type(content_type)
        obj, created = store.patch(
            rtype, ns, name, _decode(raw, content_type), patch_type=kind, status=status
        )
        code = 201 if created else 200
        h._send_json(code, obj)
        return code
    if method == "DELETE":
        options = _decode(raw, content_type) or {}
        gone = store.delete(rtype, ns, name, preconditions=options.get("preconditions"))
        h._send_json(200, _success(rtype, gone))
        return 200
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")


def _collection(
    h: Responder,
    method: str,
    *,
    route: Route,
    query: Mapping[str, str],
    raw: bytes,
    content_type: str,
) -> int:
    store, rtype, ns = h.api.store, route.rtype, route.namespace
    if method == "GET" and query.get("watch") in ("true", "1"):
        _watch(h, route, query)
        return 200
    if method == "GET":
        items, rv = store.list(rtype, ns, match=_selectors(query))
        h._send_json(200, _list(rtype, items, rv))
        return 200
    if method == "POST":
        h._send_json(201, store.create(rtype, ns, _object_body(raw, content_type)))
        return 201
    if method == "DELETE":
        items, _ = store.list(rtype, ns, match=_selectors(query))
        gone = [store.delete(rtype, ns, obj["metadata"]["name"]) for obj in items]
        h._send_json(200, _list(rtype, gone, store.rv))
        return 200
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")


def _scale(h: Responder, method: str, route: Route, raw: bytes, content_type: str) -> int:
    """``/scale``: an ``autoscaling/v1`` Scale view of ``spec.replicas``."""
    store, rtype, ns, name = h.api.store, route.rtype, route.namespace, route.name
    assert name is not None
    obj = store.get(rtype, ns, name)
    if method in ("PUT", "PATCH"):
        body = _decode(raw, content_type)
        if method == "PATCH":
            apply = json_patch if _patch_type(content_type) == "json" else merge_patch
            body = apply(_scale_of(obj), body)
        replicas = ((body or {}).get("spec") or {}).get("replicas")
        wanted_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
        patch: Obj = {"spec": {"replicas": replicas}}
        if wanted_rv:
            patch["metadata"] = {"resourceVersion": wanted_rv}
        obj, _ = store.patch(rtype, ns, name, patch, patch_type="merge", status=False)
    elif method != "GET":
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on scale")
    h._send_json(200, _scale_of(obj))
    return 200


def _scale_of(obj: Mapping[str, Any]) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion")},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
    }


# -- watch -------------------------------------------------------------------------


def _watch(h: Responder, route: Route, query: Mapping[str, str]) -> None:
    """Stream ADDED/MODIFIED/DELETED/BOOKMARK/ERROR lines until timeoutSeconds or shutdown."""
    store, rtype = h.api.store, route.rtype
    match = _selectors(query)
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
    start = query.get("resourceVersion") or ""
    initial: list[Obj] = []
    if start in ("", "0"):
        initial, last = store.list(rtype, route.namespace, match=match)
    else:
        try:
            last = int(start)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid resource version {start!r}") from exc
    h._start_chunked()
    for obj in initial:
        h._send_chunk({"type": "ADDED", "object": obj})
    next_bookmark = time.monotonic() + h.api.bookmark_interval
    stopping = h.api._stopping
    while not stopping.is_set() and time.monotonic() < deadline:
        try:
            events, last = _wait_for_events(store, last, timeout=0.1)
        except ApiError as exc:
            h._send_chunk({"type": "ERROR", "object": exc.body()})
            break
        for event in events:
            line = _watch_line(event, route, match)
            if line is not None:
                h._send_chunk(line)
        if bookmarks and time.monotonic() >= next_bookmark:
            next_bookmark = time.monotonic() + h.api.bookmark_interval
            h._send_chunk(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": rtype.kind,
                        "apiVersion": rtype.api_version,
                        "metadata": {"resourceVersion": str(last), "annotations": {}},
                    },
                }
            )
    h._end_chunked()


def _wait_for_events(store: Store, last: int, *, timeout: float) -> tuple[list[WatchEvent], int]:
    """History after ``last`` (waiting up to ``timeout`` for some) and the version it reaches."""
    with store.cond:
        events = store.events_after(last)
        if not events:
            store.cond.wait(timeout=timeout)
            events = store.events_after(last)
        return events, max(last, store.rv)


def _watch_line(
    event: WatchEvent, route: Route, match: Callable[[Mapping[str, Any]], bool]
) -> Obj | None:
    rtype = route.rtype
    if (event.rtype.group, event.rtype.plural) != (rtype.group, rtype.plural):
        return None
    if route.namespace is not None and event.namespace != route.namespace:
        return None
    now = match(event.obj)
    before = event.previous is not None and match(event.previous)
    kind = event.type
    if kind == "MODIFIED" and now != before:
        kind = "ADDED" if now else "DELETED"  # the object entered or left the selection
    elif not now and not before:
        return None
    return {"type": kind, "object": event.obj}


# -- helpers -----------------------------------------------------------------------


def _selectors(query: Mapping[str, str]) -> Callable[[Mapping[str, Any]], bool]:
    try:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
    except SelectorError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from exc
    return lambda obj: labels(obj) and fields(obj)


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(400, "BadRequest", f"the request body could not be decoded: {exc}") from exc


def _object_body(raw: bytes, content_type: str) -> Obj:
    body = _decode(raw, content_type)
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return body


def _patch_type(content_type: str) -> str:
    kind = PATCH_TYPES.get(content_type)
    if kind is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {', '.join(PATCH_TYPES)}",
        )
    return kind


def _list(rtype: ResourceType, items: list[Obj], rv: int) -> Obj:
    return {
        "apiVersion": rtype.api_version,
        "kind": f"{rtype.kind}List",
        "metadata": {"resourceVersion": str(rv)},
        "items": items,
    }


def _success(rtype: ResourceType, gone: Obj) -> Obj:
    meta = gone["metadata"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": meta["name"],
            "group": rtype.group,
            "kind": rtype.plural,
            "uid": meta["uid"],
        },
    }


def _discovery(store: Store, path: str) -> Obj | None:
    path = path.rstrip("/")
    if path == "/version":
        return {
            "major": "1",
            "minor": "30",
            "gitVersion": "v1.30.0-gatectl-kubeapi",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.22.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        group_versions: dict[str, list[str]] = {}
        for rtype in store.types:
            if rtype.group:
                versions = group_versions.setdefault(rtype.group, [])
                if rtype.version not in versions:
                    versions.append(rtype.version)
        groups = [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {
                    "groupVersion": f"{group}/{versions[0]}",
                    "version": versions[0],
                },
            }
            for group, versions in group_versions.items()
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    parts = [part for part in path.split("/") if part]
    if parts == ["api", "v1"]:
        group, version = "", "v1"
    elif len(parts) == 3 and parts[0] == "apis":
        group, version = parts[1], parts[2]
    else:
        return None
    served = [t for t in store.types if (t.group, t.version) == (group, version)]
    if not served:
        return None
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    resources: list[Obj] = []
    for rtype in served:
        common = {"singularName": "", "namespaced": rtype.namespaced, "kind": rtype.kind}
        resources.append({"name": rtype.plural, **common, "verbs": verbs})
        if rtype.status_subresource:
            resources.append(
                {"name": f"{rtype.plural}/status", **common, "verbs": ["get", "patch", "update"]}
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
