"""The one seam between gatectl and the ``kubernetes`` package.

Only this module imports ``kubernetes``. It loads a client (kubeconfig,
in-cluster, ``~/.kube/config``), translates ``ApiException`` into
``gatectl.errors`` in one function (``map_api_exception``), and offers
``Resources``: get / list / create / replace / patch / status writes / delete
/ watch for one resource type, speaking plain dicts, with retries for
transient failures (429 honouring Retry-After, 5xx, connection errors) on a
schedule that is plain data. A 409 is never retried here: the caller must
re-read the object and decide again.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as _k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gatectl.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
)

from .ratelimit import TokenBucket, rate_limit_of, set_rate_limit
from .retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy, call_with_retries

__all__ = [
    "CONFIGMAPS",
    "CRDS",
    "DEFAULT_RETRY",
    "DEPLOYMENTS",
    "EVENTS",
    "FEATUREFLAGS",
    "HTTPROUTES",
    "LEASES",
    "LIST_PAGE",
    "NAMESPACES",
    "NO_RETRY",
    "RELEASEGATES",
    "SECRETS",
    "SELFSUBJECTREVIEWS",
    "SUBJECTACCESSREVIEWS",
    "TOKENREVIEWS",
    "ApiClient",
    "ObjectList",
    "ResourceKind",
    "Resources",
    "RetryPolicy",
    "call_with_retries",
    "discover_kind",
    "load_api_client",
    "map_api_exception",
]

log = logging.getLogger(__name__)

ApiClient = Any
"""``kubernetes.client.ApiClient``; kept as ``Any`` so no other module needs ``kubernetes``."""

Obj = dict[str, Any]
k8s_config: Any = _k8s_config  # untyped functions: Any at the seam


def load_api_client(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    rate_limit: TokenBucket | None = None,
    connections: int | None = None,
) -> ApiClient:
    """A client from ``kubeconfig``, else in-cluster, else ``$KUBECONFIG`` / ~/.kube/config.

    With ``rate_limit``, every request made through the client takes a token from it.
    ``connections``: keep at least this many connections to the API server open (the
    client's default is 5 a CPU; a write pool and the watches need one each, or urllib3
    opens and drops a connection per request beyond its pool).
    """

    def configured() -> Any:
        configuration = k8s.Configuration()
        if connections is not None:
            configuration.connection_pool_maxsize = max(
                configuration.connection_pool_maxsize, connections
            )
        return configuration

    try:
        api = None
        if kubeconfig is None and context is None:
            try:
                configuration = configured()
                k8s_config.load_incluster_config(client_configuration=configuration)
                api = k8s.ApiClient(configuration)
            except ConfigException:
                pass
        if api is None:
            api = k8s_config.new_client_from_config(
                config_file=kubeconfig, context=context, client_configuration=configured()
            )
    except (ConfigException, OSError, ValueError) as exc:
        where = kubeconfig or "in-cluster or default kubeconfig"
        raise ClusterError(f"cannot load Kubernetes configuration ({where}): {exc}") from exc
    set_rate_limit(api, rate_limit)
    return api


def _status_message(exc: ApiException) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            status = json.loads(body)
            if isinstance(status, dict) and status.get("message"):
                reason = status.get("reason") or exc.reason
                return f"{reason}: {status['message']}"
        except ValueError:
            pass
    return str(exc.reason or "no reason given")


def _retry_after(exc: ApiException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_api_exception(exc: ApiException, *, what: str = "") -> ClusterError:
    """The gatectl error for a failed API call, chosen by HTTP status."""
    status = int(exc.status or 0)
    message = f"{what}: {status} {_status_message(exc)}" if what else _status_message(exc)
    if status == 409:
        return ConflictError(message, status=status)
    if status == 404:
        return NotFoundError(message, status=status)
    if status in (401, 403):
        return ForbiddenError(message, status=status)
    if status == 429:
        return TooManyRequestsError(message, status=status, retry_after=_retry_after(exc))
    if status >= 500:
        return ServerError(message, status=status)
    return ClusterError(message, status=status or None)


@dataclass(frozen=True)
class ResourceKind:
    """A resource type as the API's URLs name it; ``group`` is ``""`` for core/v1."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        parts = [base, self.plural, *(p for p in (name, subresource) if p is not None)]
        return "/".join(parts)


RELEASEGATES = ResourceKind("gatectl.io", "v1alpha1", "releasegates")
CONFIGMAPS = ResourceKind("", "v1", "configmaps")
SECRETS = ResourceKind("", "v1", "secrets")
EVENTS = ResourceKind("", "v1", "events")
NAMESPACES = ResourceKind("", "v1", "namespaces", namespaced=False)
LEASES = ResourceKind("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = ResourceKind("apps", "v1", "deployments")
HTTPROUTES = ResourceKind("gateway.networking.k8s.io", "v1", "httproutes")
CRDS = ResourceKind("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
SELFSUBJECTREVIEWS = ResourceKind(
    "authentication.k8s.io", "v1", "selfsubjectreviews", namespaced=False
)
FEATUREFLAGS = ResourceKind("core.openfeature.dev", "v1beta1", "featureflags")
TOKENREVIEWS = ResourceKind("authentication.k8s.io", "v1", "tokenreviews", namespaced=False)
SUBJECTACCESSREVIEWS = ResourceKind(
    "authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False
)


def discover_kind(api_client: ApiClient, api_version: str, kind: str) -> ResourceKind:
    """The resource type serving ``kind`` in ``api_version``, from the API's discovery data."""
    group, _, version = api_version.rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    probe = Resources(api_client, ResourceKind(group, version, ""))
    found = probe._json("GET", base, what=f"discover {api_version}")
    for resource in found.get("resources") or []:
        if resource.get("kind") == kind and "/" not in str(resource.get("name", "")):
            return ResourceKind(
                group, version, str(resource["name"]), bool(resource.get("namespaced", True))
            )
    raise NotFoundError(f"the API serves no kind {kind} in {api_version}", status=404)


LIST_PAGE = 500
"""Objects a list asks for at once (client-go's pager default)."""


@dataclass(frozen=True)
class ObjectList:
    """A list response: the items and the resourceVersion to watch from."""

    items: list[Obj]
    resource_version: str


_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class Resources:
    """CRUD for one resource type through a ``kubernetes`` ApiClient, in plain dicts.

    Namespaced kinds take ``namespace=`` on every call (``None`` lists across
    all namespaces). Errors are ``gatectl.errors.ClusterError`` subclasses.
    """

    def __init__(
        self,
        api_client: ApiClient,
        kind: ResourceKind,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        request_timeout: float = 30.0,
    ) -> None:
        self.api_client = api_client
        self.kind = kind
        self.retry = retry
        self.sleep = sleep
        self.request_timeout = request_timeout

    def get(self, name: str, *, namespace: str | None = None) -> Obj:
        return self._json("GET", self.kind.path(namespace, name), what=f"get {name}")

    def list(
        self,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        query = _query(labelSelector=label_selector, fieldSelector=field_selector)
        body = self._json("GET", self.kind.path(namespace), query=query, what="list")
        meta = body.get("metadata") or {}
        return ObjectList(list(body.get("items") or []), str(meta.get("resourceVersion", "")))

    def pages(
        self,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int = LIST_PAGE,
    ) -> Iterator[ObjectList]:
        """The list in pages of at most ``limit`` objects, as client-go's pager reads it.

        The pages are one consistent snapshot (the API server serves every
        continuation from the first page's resourceVersion, which each page
        carries). A fleet's list is never one response held whole: 30,000
        ReleaseGates with statuses are ~100 MB of JSON, parsed to several times
        that, and one such answer can outlast the server's request timeout.
        A snapshot compacted away mid-list (410) raises ``ClusterError``.
        """
        token: str | None = None
        while True:
            query = _query(labelSelector=label_selector, limit=str(limit), **{"continue": token})
            body = self._json("GET", self.kind.path(namespace), query=query, what="list")
            meta = body.get("metadata") or {}
            items = list(body.get("items") or [])
            del body
            yield ObjectList(items, str(meta.get("resourceVersion", "")))
            token = meta.get("continue") or None
            if token is None:
                return

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        name = (body.get("metadata") or {}).get("name", "")
        return self._json("POST", self.kind.path(namespace), body=body, what=f"create {name}")

    def replace(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        """PUT the whole object; a stale ``metadata.resourceVersion`` raises ConflictError."""
        name = body["metadata"]["name"]
        path = self.kind.path(namespace, name)
        return self._json("PUT", path, body=body, what=f"replace {name}")

    def replace_status(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Obj:
        name = body["metadata"]["name"]
        path = self.kind.path(namespace, name, "status")
        return self._json("PUT", path, body=body, what=f"replace status of {name}")

    def patch(
        self,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        patch_type: Literal["merge", "json", "strategic"] | None = None,
    ) -> Obj:
        """Merge patch for a mapping, JSON patch for a list of operations (unless told).

        A ``metadata.resourceVersion`` in a merge patch (or a JSON patch ``test``
        of it) is a precondition: stale means ConflictError.
        """
        return self._patch(name, patch, namespace=namespace, patch_type=patch_type, sub=None)

    def apply(
        self,
        name: str,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str = "gatectl",
        force: bool = True,
    ) -> Obj:
        """Server-side apply: ``body`` holds exactly the fields ``field_manager`` owns.

        With ``force``, fields another manager owns with other values are taken
        over rather than refused with a conflict.
        """
        query = _query(fieldManager=field_manager, force="true" if force else None)
        return self._json(
            "PATCH",
            self.kind.path(namespace, name),
            query=query,
            body=body,
            content_type="application/apply-patch+yaml",
            what=f"apply {name}",
        )

    def patch_status(
        self,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        patch_type: Literal["merge", "json"] | None = None,
    ) -> Obj:
        """Patch the status subresource: only ``status`` changes."""
        return self._patch(name, patch, namespace=namespace, patch_type=patch_type, sub="status")

    def update(
        self,
        name: str,
        mutate: Callable[[Obj], Obj | None],
        *,
        namespace: str | None = None,
        status: bool = False,
        attempts: int = 5,
    ) -> Obj:
        """Read, ``mutate``, write back; on 409 read again and call ``mutate`` on the fresh copy.

        ``mutate`` gets a copy of the current object and returns the object to
        write, or None to write nothing (the current object is returned). With
        ``status=True`` the write goes to the status subresource. Raises
        ConflictError only when every one of ``attempts`` lost a race.
        """
        for attempt in range(1, attempts + 1):
            current = self.get(name, namespace=namespace)
            wanted = mutate(copy.deepcopy(current))
            if wanted is None:
                return current
            wanted.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
                "resourceVersion"
            ]
            try:
                if status:
                    return self.replace_status(wanted, namespace=namespace)
                return self.replace(wanted, namespace=namespace)
            except ConflictError:
                if attempt == attempts:
                    raise
                log.info(
                    "update of %s %s conflicted; re-reading (#%d/%d)",
                    self.kind.plural,
                    name,
                    attempt + 1,
                    attempts,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(
        self, name: str, *, namespace: str | None = None, resource_version: str | None = None
    ) -> None:
        body = None
        if resource_version is not None:
            body = {"preconditions": {"resourceVersion": resource_version}}
        self._json("DELETE", self.kind.path(namespace, name), body=body, what=f"delete {name}")

    def watch(
        self,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 60,
        bookmarks: bool = True,
    ) -> Generator[Obj, None, None]:
        """Raw watch events (``{"type": ..., "object": ...}``) until the server ends the stream.

        Not retried: the watch loop (``gatectl.adapters.kube.watch``) decides what to do.
        """
        query = _query(
            watch="true",
            resourceVersion=resource_version,
            labelSelector=label_selector,
            timeoutSeconds=str(timeout_seconds),
            allowWatchBookmarks="true" if bookmarks else None,
        )
        response = self._send(
            "GET",
            self.kind.path(namespace),
            query=query,
            body=None,
            content_type=None,
            timeout=(self.request_timeout, timeout_seconds + self.request_timeout),
            what="watch",
        )
        finished = False
        try:
            yield from _json_lines(response, what=f"watch {self.kind.plural}")
            finished = True
        finally:
            if not finished:
                response.close()  # a half-read stream must not go back to the pool
            response.release_conn()

    # -- internals -------------------------------------------------------------

    def _patch(
        self,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None,
        patch_type: str | None,
        sub: str | None,
    ) -> Obj:
        kind = patch_type or ("json" if isinstance(patch, Sequence) else "merge")
        return self._json(
            "PATCH",
            self.kind.path(namespace, name, sub),
            body=patch,
            content_type=_PATCH_TYPES[kind],
            what=f"patch {sub + ' of ' if sub else ''}{name}",
        )

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = "application/json",
    ) -> Obj:
        label = f"{method} {self.kind.plural} {what}".strip()

        def attempt() -> Obj:
            response = self._send(
                method,
                path,
                query=query,
                body=body,
                content_type=content_type if body is not None else None,
                timeout=self.request_timeout,
                what=label,
            )
            try:
                data = response.data
            finally:
                response.release_conn()
            try:
                return cast(Obj, json.loads(data)) if data else {}
            except ValueError as exc:
                raise ServerError(f"{label}: response is not JSON", status=None) from exc

        return call_with_retries(attempt, what=label, policy=self.retry, sleep=self.sleep)

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | None,
        body: Any,
        content_type: str | None,
        timeout: float | tuple[float, float],
        what: str,
    ) -> Any:
        """One request through the ApiClient (its auth, TLS, proxy); the raw urllib3 response.

        Every request, a retry too, first takes a token of the client's rate limit.
        """
        bucket = rate_limit_of(self.api_client)
        if bucket is not None:
            bucket.wait()
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            request = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=list(query or ()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(*request, _request_timeout=timeout)
            if not 200 <= response.status <= 299:
                response.read()
                response.response.release_conn()
                raise ApiException.from_response(
                    http_resp=response, body=response.data.decode(errors="replace"), data=None
                )
            return response.response
        except ApiException as exc:
            raise map_api_exception(exc, what=what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(f"{what}: {exc}", status=None) from exc


def _query(**params: str | None) -> list[tuple[str, str]]:
    return [(key, value) for key, value in params.items() if value is not None]


def _json_lines(response: Any, *, what: str) -> Iterator[Obj]:
    buffer = b""
    try:
        for chunk in response.stream(amt=None, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield cast(Obj, json.loads(line))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterError(f"{what}: stream broken: {exc}", status=None) from exc
    except ValueError as exc:
        raise ClusterError(f"{what}: bad JSON in stream: {exc}", status=None) from exc
