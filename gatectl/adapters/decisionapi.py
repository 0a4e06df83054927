"""The decision API: other delivery tools ask the controller what it decided.

Served beside ``/metrics`` (``gatectl.adapters.serving``):

- ``GET /v1/namespaces/{ns}/releasegates/{name}/decision``: the gate's latest
  decision, the JSON ``gatectl evaluate -o json`` prints (Argo Rollouts' ``web``
  metric provider reads ``result.decision``);
- ``POST /v1/flagger/{confirm-promotion,confirm-traffic-increase,rollback}``:
  Flagger's webhook payload (``name``, ``namespace``, ``phase``, ``metadata``
  with an optional ``gate``, else the Canary's name); 200 when the gate's
  latest decision is ``promote`` (``fallback`` for ``rollback``), 403 otherwise,
  the reason in the body (Flagger puts it in its events).

Every request is authenticated: a bearer token (``Authorization: Bearer``, or
``metadata.token`` for Flagger, which sends no headers) that is one of the
static tokens in a file, or that a Kubernetes TokenReview accepts for a user a
SubjectAccessReview allows to ``get`` that ReleaseGate. With neither set up,
``/v1`` answers 404: the API is off. Tokens are never logged or echoed.

The answers come from ``DecisionBook``, which the controller fills as it
decides (``BookedRecorder``); a gate not decided since the controller started
(or on a replica that is not the leader) is 404, which Argo counts as an error
and Flagger as "not yet".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gatectl.adapters.exposition import Recorder
from gatectl.core.observations import Decision
from gatectl.core.render import decision_to_dict
from gatectl.errors import GatectlError
from gatectl.policy.models import Gate

__all__ = [
    "FLAGGER_HOOKS",
    "Answer",
    "Authenticator",
    "BookedRecorder",
    "DecisionAPI",
    "DecisionBook",
    "StaticTokens",
    "TokenReviewer",
    "decision_api",
]

log = logging.getLogger("gatectl.api")

FLAGGER_HOOKS = ("confirm-promotion", "confirm-traffic-increase", "rollback")
_DECISION = re.compile(
    r"^/v1/namespaces/([a-z0-9][-a-z0-9.]*)/releasegates/([a-z0-9][-a-z0-9.]*)/decision$"
)
_FLAGGER = re.compile(r"^/v1/flagger/([a-z-]+)$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: int, message: str, **headers: str) -> Answer:
    return Answer(status, _TEXT, f"{message}\n".encode(), tuple(headers.items()))


class DecisionBook:
    """The latest decision of every gate this controller decided; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], tuple[str, Decision]] = {}
        self.keeping = True
        """False once the API is known to be off: no decision is kept (each holds its
        evidence, a few KB a gate) for an API that answers 404."""

    def record(self, gate: Gate, decision: Decision) -> None:
        if not self.keeping:
            return
        with self._lock:
            self._latest[(gate.namespace, gate.name)] = (gate.workflow, decision)

    def stop_keeping(self) -> None:
        """The API is off: forget every decision and keep none from now on."""
        with self._lock:
            self.keeping = False
            self._latest.clear()

    def forget(self, *, namespace: str, gate: str) -> None:
        with self._lock:
            self._latest.pop((namespace, gate), None)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The decision as ``gatectl evaluate -o json`` prints it, or None."""
        with self._lock:
            found = self._latest.get((namespace, name))
        if found is None:
            return None
        workflow, decision = found
        return decision_to_dict(decision, gate=name, workflow=workflow)


class BookedRecorder(Recorder):
    """The controller's ``Recorder`` that also keeps each decision in a ``DecisionBook``."""

    def __init__(self, book: DecisionBook, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book = book

    def record_decision(self, gate: Gate, decision: Decision, *, phase: str) -> None:
        super().record_decision(gate, decision, phase=phase)
        self.book.record(gate, decision)

    def forget(self, *, namespace: str, gate: str) -> None:
        super().forget(namespace=namespace, gate=gate)
        self.book.forget(namespace=namespace, gate=gate)


class Authenticator(Protocol):
    """Whether ``token`` may read gate ``namespace/name``: True, False, or None (no opinion)."""

    def allows(self, token: str, *, namespace: str, name: str) -> bool | None: ...


class StaticTokens:
    """Tokens from a file (one a line; ``#`` comments), re-read when the file changes.

    A static token reads every gate: give it to delivery tools the platform runs.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._digests: frozenset[bytes] = frozenset()
        self._load()

    def _load(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime, info.st_size)
            if stamp == self._stamp:
                return
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise GatectlError(f"--api-token-file {self.path}: {exc.strerror or exc}") from None
        tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not tokens:
            raise GatectlError(f"--api-token-file {self.path}: holds no token")
        self._digests = frozenset(hashlib.sha256(t.encode()).digest() for t in tokens)
        self._stamp = stamp

    def allows(self, token: str, *, namespace: str, name: str) -> bool | None:
        with self._lock:
            try:
                self._load()
            except GatectlError as exc:
                log.warning("%s; keeping the tokens read before", exc)
            digests = self._digests
        digest = hashlib.sha256(token.encode()).digest()
        return any(hmac.compare_digest(digest, d) for d in digests) or None


class _Reviews(Protocol):
    def create(
        self, body: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...


class TokenReviewer:
    """A token Kubernetes authenticates (TokenReview) for a user allowed to get the ReleaseGate.

    ``tokenreviews`` and ``subjectaccessreviews`` are two ``Resources`` (the
    ClusterRole ``system:auth-delegator`` grants creating both). Answers are
    kept ``ttl`` seconds, keyed by the token's SHA-256 and the gate.
    """

    def __init__(
        self,
        tokenreviews: _Reviews,
        subjectaccessreviews: _Reviews,
        *,
        audiences: Sequence[str] = (),
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokenreviews
        self._access = subjectaccessreviews
        self.audiences = list(audiences)
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[bytes, str, str], tuple[float, bool]] = {}

    def allows(self, token: str, *, namespace: str, name: str) -> bool | None:
        key = (hashlib.sha256(token.encode()).digest(), namespace, name)
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1] or None
        allowed = self._review(token, namespace=namespace, name=name)
        with self._lock:
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = (now, allowed)
        return allowed or None

    def _review(self, token: str, *, namespace: str, name: str) -> bool:
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = self.audiences
        review = self._tokens.create(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return False
        user = status.get("user") or {}
        access = self._access.create(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.get("username", ""),
                    "uid": user.get("uid", ""),
                    "groups": user.get("groups") or [],
                    "extra": user.get("extra") or {},
                    "resourceAttributes": {
                        "namespace": namespace,
                        "verb": "get",
                        "group": "gatectl.io",
                        "resource": "releasegates",
                        "name": name,
                    },
                },
            }
        )
        return bool((access.get("status") or {}).get("allowed"))


class DecisionAPI:
    """Routes ``/v1`` requests: authenticate, look the decision up, answer."""

    def __init__(self, book: DecisionBook, authenticators: Sequence[Authenticator]) -> None:
        self.book = book
        self.authenticators = list(authenticators)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """One request (``path`` without its query string; header names in lower case)."""
        if not self.authenticators:
            return _text(
                404,
                "the decision API is off (gatectl run --api-token-file"
                " or --api-token-review turns it on)",
            )
        if (found := _DECISION.match(path)) is not None:
            if method not in ("GET", "HEAD"):
                return _text(405, "use GET", Allow="GET")
            return self._decision(headers, found.group(1), found.group(2))
        if (hook := _FLAGGER.match(path)) is not None:
            if hook.group(1) not in FLAGGER_HOOKS:
                return _text(
                    404, f"no Flagger hook {hook.group(1)!r}; try {', '.join(FLAGGER_HOOKS)}"
                )
            if method != "POST":
                return _text(405, "use POST", Allow="POST")
            return self._flagger(hook.group(1), headers, body)
        return _text(
            404, "not found: /v1/namespaces/NS/releasegates/NAME/decision or /v1/flagger/HOOK"
        )

    def _authorized(self, token: str | None, namespace: str, name: str) -> Answer | None:
        """None when ``token`` may read the gate; else the 401/403/503 to send."""
        if not token:
            return _text(401, "a bearer token is required", **{"WWW-Authenticate": "Bearer"})
        try:
            verdicts = [
                a.allows(token, namespace=namespace, name=name) for a in self.authenticators
            ]
        except GatectlError as exc:
            log.warning("decision API: cannot check a token: %s", exc)
            return _text(503, "cannot check the token now; try again", **{"Retry-After": "5"})
        if any(verdicts):
            return None
        return _text(403, f"this token may not read releasegate {namespace}/{name}")

    def _decision(self, headers: Mapping[str, str], namespace: str, name: str) -> Answer:
        refused = self._authorized(_bearer(headers), namespace, name)
        if refused is not None:
            return refused
        decision = self.book.get(namespace, name)
        if decision is None:
            return _text(404, f"no decision for releasegate {namespace}/{name} yet")
        return Answer(200, _JSON, json.dumps(decision).encode())

    def _flagger(self, hook: str, headers: Mapping[str, str], body: bytes) -> Answer:
        try:
            payload = json.loads(body)
        except ValueError:
            return _text(400, "the body is not JSON (expected Flagger's webhook payload)")
        if not isinstance(payload, dict):
            return _text(400, "expected Flagger's webhook payload: an object with name, namespace")
        metadata = payload.get("metadata") or {}
        if not isinstance(metadata, dict):
            return _text(400, "metadata must be an object of strings")
        namespace = payload.get("namespace")
        name = metadata.get("gate") or payload.get("name")
        for field, value in (("namespace", namespace), ("metadata.gate or name", name)):
            if not isinstance(value, str) or not _NAME.match(value):
                return _text(400, f"{field}: expected a Kubernetes name")
        assert isinstance(namespace, str) and isinstance(name, str)
        token = _bearer(headers) or metadata.get("token")
        refused = self._authorized(token if isinstance(token, str) else None, namespace, name)
        if refused is not None:
            return refused
        decision = self.book.get(namespace, name)
        if decision is None:
            return _text(403, f"gatectl: no decision for releasegate {namespace}/{name} yet")
        action = decision["decision"]
        wanted = "fallback" if hook == "rollback" else "promote"
        reason = "; ".join(decision.get("reasons") or []) or "all criteria met"
        said = f"gatectl: {action}: {reason}"[:1000]
        return _text(200 if action == wanted else 403, said)


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def decision_api(
    book: DecisionBook,
    *,
    token_file: str | None,
    token_review: bool,
    audiences: Sequence[str] = (),
    kubeconfig: str | None = None,
    context: str | None = None,
) -> DecisionAPI:
    """The API ``gatectl run`` serves: its authenticators from the flags (none: the API is off)."""
    authenticators: list[Authenticator] = []
    if token_file:
        authenticators.append(StaticTokens(token_file))
    if token_review:
        from gatectl.adapters.kube.client import (
            SUBJECTACCESSREVIEWS,
            TOKENREVIEWS,
            Resources,
            load_api_client,
        )

        client = load_api_client(kubeconfig=kubeconfig, context=context)
        authenticators.append(
            TokenReviewer(
                Resources(client, TOKENREVIEWS),
                Resources(client, SUBJECTACCESSREVIEWS),
                audiences=audiences,
            )
        )
    if not authenticators:
        book.stop_keeping()  # the API answers 404: nothing will read the book
    return DecisionAPI(book, authenticators)
