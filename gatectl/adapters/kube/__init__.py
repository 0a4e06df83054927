"""gatectl's Kubernetes layer: the only package that imports ``kubernetes`` (in ``client.py``).

Everything speaks plain dicts and raises ``gatectl.errors.ClusterError``
subclasses (``ConflictError`` 409, ``NotFoundError`` 404, ``ForbiddenError``
401/403, ``TooManyRequestsError`` 429, ``ServerError`` 5xx; ``status=None``
for a connection failure).

    api = load_api_client(kubeconfig=None, context=None)   # kubeconfig / in-cluster / ~/.kube
    gates = Resources(api, RELEASEGATES)
    gate = gates.get("triage", namespace="default")
    gates.patch_status("triage", {"status": {...}}, namespace="default")
    gates.replace(gate, namespace="default")   # stale resourceVersion -> ConflictError

``Resources(api, kind, *, retry=DEFAULT_RETRY, sleep=time.sleep)`` for a
``ResourceKind(group, version, plural, namespaced=True)``:
``get(name, *, namespace)``, ``list(*, namespace=None, label_selector=None,
field_selector=None) -> ObjectList(items, resource_version)``,
``create(body, *, namespace)``, ``replace(body, *, namespace)``,
``replace_status(body, *, namespace)``, ``patch(name, patch, *, namespace,
patch_type=None)`` (a dict is a merge patch, a list a JSON patch; a
``metadata.resourceVersion`` inside is a precondition), ``patch_status(...)``,
``delete(name, *, namespace, resource_version=None)``, ``watch(...)`` (raw
events), and ``update(name, mutate, *, namespace, status=False, attempts=5)``:
read-modify-write that re-reads and calls ``mutate`` again on a 409.
Transient failures (429 with Retry-After, 5xx, connection errors) are
retried on ``RetryPolicy.delays``, logged ``#2/5``; a 409 never is blindly:
re-read and decide again (``update`` does exactly that). Kinds provided:
``RELEASEGATES``, ``CONFIGMAPS``, ``EVENTS``, ``LEASES``, ``DEPLOYMENTS``,
``HTTPROUTES``, ``NAMESPACES``, ``CRDS``.

``Watcher(resources, *, namespace=None, label_selector=None,
timeout_seconds=60)``: ``events(*, stop=None, max_iterations=None)`` yields
``WatchEvent(type, object)`` (ADDED / MODIFIED / DELETED): list, then watch
from the list's resourceVersion, bookmarks advance it, 410 Gone relists and
reports what changed meanwhile; ``run(handler, ...)`` calls a handler.

``LeaderElector(api_or_resources, *, namespace, name, identity,
lease_duration=15, renew_deadline=10, retry_period=2, clock=...)``:
``try_acquire_or_renew() -> bool``, ``is_leader``, ``release()``,
``run(*, stop, on_started_leading=None, on_stopped_leading=None)`` and
``start(...) -> Thread``.

``record_event(api_or_resources, *, obj, reason, message, type="Normal",
component="gatectl") -> dict`` creates a core/v1 Event about ``obj``.

``whoami(api) -> str`` is the authenticated username (SelfSubjectReview).

``TokenBucket(qps=50, burst=100)``: a client-side rate limit like client-go's;
``load_api_client(..., rate_limit=bucket)`` (or ``set_rate_limit(api, bucket)``)
makes every request through that client take a token first, retries too.

``map_api_exception(exc, *, what="")`` is the one translation of
``kubernetes.client.ApiException``.
"""

from __future__ import annotations

from .client import (
    CONFIGMAPS,
    CRDS,
    DEFAULT_RETRY,
    DEPLOYMENTS,
    EVENTS,
    HTTPROUTES,
    LEASES,
    NAMESPACES,
    NO_RETRY,
    RELEASEGATES,
    SECRETS,
    SELFSUBJECTREVIEWS,
    ApiClient,
    ObjectList,
    ResourceKind,
    Resources,
    RetryPolicy,
    call_with_retries,
    load_api_client,
    map_api_exception,
)
from .events import record_event
from .identity import whoami
from .leader import LeaderElector
from .ratelimit import TokenBucket, set_rate_limit
from .watch import Watcher, WatchEvent

__all__ = [
    "CONFIGMAPS",
    "CRDS",
    "DEFAULT_RETRY",
    "DEPLOYMENTS",
    "EVENTS",
    "HTTPROUTES",
    "LEASES",
    "NAMESPACES",
    "NO_RETRY",
    "RELEASEGATES",
    "SECRETS",
    "SELFSUBJECTREVIEWS",
    "ApiClient",
    "LeaderElector",
    "ObjectList",
    "ResourceKind",
    "Resources",
    "RetryPolicy",
    "TokenBucket",
    "WatchEvent",
    "Watcher",
    "call_with_retries",
    "load_api_client",
    "map_api_exception",
    "record_event",
    "set_rate_limit",
    "whoami",
]
