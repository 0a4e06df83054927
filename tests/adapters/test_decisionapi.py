"""The decision API on the controller's HTTP server, driven by the exact requests the tools send.

Argo Rollouts' ``web`` metric provider and Flagger's webhooks are Go programs:
the requests below are the bytes Go's ``net/http`` writes for them (request
line, ``Host``, ``User-Agent: Go-http-client/1.1``, the configured headers,
``Accept-Encoding: gzip``; Flagger's body is ``json.Marshal`` of its
``CanaryWebhookPayload``). TokenReview authentication runs against a real
kube-apiserver.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from realkube.fixtures import real_kube  # noqa: F401

from gatectl.adapters.decisionapi import (
    DecisionAPI,
    DecisionBook,
    StaticTokens,
    TokenReviewer,
    decision_api,
)
from gatectl.adapters.exposition import Recorder
from gatectl.adapters.kube.client import (
    SUBJECTACCESSREVIEWS,
    TOKENREVIEWS,
    ResourceKind,
    Resources,
    load_api_client,
)
from gatectl.adapters.serving import Server, serve
from gatectl.core.observations import Action, Decision, Window
from gatectl.core.render import decision_to_dict
from gatectl.policy import Gate, GateSpec

TOKEN = "s3cr3t-token-for-argo"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REASONS = {
    Action.PROMOTE: (),
    Action.HOLD: ("promotion window: 47h0m remaining",),
    Action.FALLBACK: ("rollback trigger fired: exception_rate > 0.06 (0.081)",),
}


def _gate(name: str, namespace: str = "team-a") -> Gate:
    spec = GateSpec.model_validate(
        {
            "workflow": f"{name}-wf",
            "canary_traffic": 0.1,
            "promotion_window": "48h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    return Gate(name=name, namespace=namespace, spec=spec, source="test")


def _decision(action: Action) -> Decision:
    return Decision(
        action=action,
        current_step=0,
        current_share=0.1,
        next_step=-1 if action is Action.FALLBACK else 1 if action is Action.PROMOTE else 0,
        next_share=0.0 if action is Action.FALLBACK else 0.5 if action is Action.PROMOTE else 0.1,
        evaluated_at=NOW,
        window=Window(started_at=NOW, elapsed_seconds=3600.0, required_seconds=172800.0),
        samples=5230.0,
        criteria=(),
        triggers=(),
        reasons=REASONS[action],
    )


@pytest.fixture
def book() -> DecisionBook:
    book = DecisionBook()
    for name, action in (("promoting", Action.PROMOTE), ("holding", Action.HOLD)):
        book.record(_gate(name), _decision(action))
    book.record(_gate("falling"), _decision(Action.FALLBACK))
    return book


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# tokens of the delivery tools\n{TOKEN}\n\nflagger-token\n")
    return path


@pytest.fixture
def server(book: DecisionBook, token_file: Path) -> Iterator[Server]:
    api = DecisionAPI(book, [StaticTokens(token_file)])
    with serve(
        "127.0.0.1:0", recorder=Recorder(), healthy=lambda: True, ready=lambda: True, api=api
    ) as running:
        yield running


def _exchange(server: Server, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as is; the status, headers (lower case) and body of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body[: int(headers.get("content-length", len(body)))]


def _argo(server: Server, namespace: str, name: str, token: str | None = TOKEN) -> bytes:
    """Argo Rollouts' web provider: GET with the template's headers (Go's net/http)."""
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    return (
        f"GET /v1/namespaces/{namespace}/releasegates/{name}/decision HTTP/1.1\r\n"
        f"Host: gatectl.gatectl-system.svc:{server.port}\r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"{auth}"
        "Accept-Encoding: gzip\r\n"
        "\r\n"
    ).encode()


def _flagger(server: Server, hook: str, payload: dict[str, Any]) -> bytes:
    """Flagger's webhook call: POST, Content-Type application/json, json.Marshal'd payload."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return (
        f"POST /v1/flagger/{hook} HTTP/1.1\r\n"
        f"Host: gatectl.gatectl-system.svc:{server.port}\r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\n"
        "Accept-Encoding: gzip\r\n"
        "\r\n"
    ).encode() + body


def _payload(name: str, *, gate: str | None = None, token: str | None = "flagger-token") -> Any:
    metadata = {k: v for k, v in (("gate", gate), ("token", token)) if v is not None}
    return {
        "name": name,
        "namespace": "team-a",
        "phase": "Progressing",
        "checksum": "85d557f47b",
        "metadata": metadata,
    }


@pytest.mark.parametrize("name", ["promoting", "holding", "falling"])
def test_argo_gets_the_decision_as_evaluate_prints_it(server: Server, name: str) -> None:
    status, headers, body = _exchange(server, _argo(server, "team-a", name))
    assert status == 200
    assert headers["content-type"] == "application/json"
    action = {"promoting": Action.PROMOTE, "holding": Action.HOLD, "falling": Action.FALLBACK}
    expected = decision_to_dict(_decision(action[name]), gate=name, workflow=f"{name}-wf")
    assert json.loads(body) == expected


@pytest.mark.parametrize(
    ("gate", "token", "status", "message"),
    [
        pytest.param("team-a/holding", None, 401, "a bearer token is required", id="no-token"),
        pytest.param(
            "team-a/holding",
            "guess",
            403,
            "this token may not read releasegate team-a/holding",
            id="wrong-token",
        ),
        pytest.param(
            "team-b/holding",
            TOKEN,
            404,
            "no decision for releasegate team-b/holding yet",
            id="unknown-gate",
        ),
    ],
)
def test_argo_refusals(
    server: Server, gate: str, token: str | None, status: int, message: str
) -> None:
    namespace, name = gate.split("/")
    got, headers, body = _exchange(server, _argo(server, namespace, name, token))
    assert (got, body.decode()) == (status, message + "\n")
    assert "guess" not in body.decode() and TOKEN not in body.decode()
    if status == 401:
        assert headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("hook", "gate", "status", "said"),
    [
        pytest.param(
            "confirm-promotion", "promoting", 200, "promote: all criteria met", id="cp-promote"
        ),
        pytest.param(
            "confirm-promotion",
            "holding",
            403,
            "hold: promotion window: 47h0m remaining",
            id="cp-hold",
        ),
        pytest.param(
            "confirm-promotion",
            "falling",
            403,
            "fallback: rollback trigger fired: exception_rate > 0.06 (0.081)",
            id="cp-fallback",
        ),
        pytest.param(
            "confirm-traffic-increase",
            "promoting",
            200,
            "promote: all criteria met",
            id="cti-promote",
        ),
        pytest.param(
            "confirm-traffic-increase",
            "holding",
            403,
            "hold: promotion window: 47h0m remaining",
            id="cti-hold",
        ),
        pytest.param(
            "confirm-traffic-increase",
            "falling",
            403,
            "fallback: rollback trigger fired: exception_rate > 0.06 (0.081)",
            id="cti-fallback",
        ),
        pytest.param("rollback", "promoting", 403, "promote: all criteria met", id="rb-promote"),
        pytest.param(
            "rollback", "holding", 403, "hold: promotion window: 47h0m remaining", id="rb-hold"
        ),
        pytest.param(
            "rollback",
            "falling",
            200,
            "fallback: rollback trigger fired: exception_rate > 0.06 (0.081)",
            id="rb-fallback",
        ),
    ],
)
def test_flagger_hooks_answer_by_decision(
    server: Server, hook: str, gate: str, status: int, said: str
) -> None:
    got, _, body = _exchange(server, _flagger(server, hook, _payload("podinfo", gate=gate)))
    assert (got, body.decode()) == (status, f"gatectl: {said}\n")


def test_flagger_defaults_the_gate_to_the_canary_name(server: Server) -> None:
    got, _, _ = _exchange(server, _flagger(server, "confirm-promotion", _payload("promoting")))
    assert got == 200


def test_flagger_token_may_come_as_a_header(server: Server) -> None:
    raw = _flagger(server, "rollback", _payload("falling", token=None))
    raw = raw.replace(b"Content-Type:", b"Authorization: Bearer flagger-token\r\nContent-Type:")
    assert _exchange(server, raw)[0] == 200


@pytest.mark.parametrize(
    ("raw_body", "status", "message"),
    [
        pytest.param(
            b"{not json",
            400,
            "the body is not JSON (expected Flagger's webhook payload)",
            id="not-json",
        ),
        pytest.param(
            b"[]",
            400,
            "expected Flagger's webhook payload: an object with name, namespace",
            id="list",
        ),
        pytest.param(
            json.dumps({"name": "x", "namespace": "team-a"}).encode(),
            401,
            "a bearer token is required",
            id="no-token",
        ),
        pytest.param(
            json.dumps({**_payload("x"), "namespace": "Team A"}).encode(),
            400,
            "namespace: expected a Kubernetes name",
            id="bad-namespace",
        ),
        pytest.param(
            json.dumps(_payload("unknown")).encode(),
            403,
            "gatectl: no decision for releasegate team-a/unknown yet",
            id="never-decided-never-advances",
        ),
    ],
)
def test_flagger_refusals(server: Server, raw_body: bytes, status: int, message: str) -> None:
    raw = _flagger(server, "confirm-promotion", {}).split(b"\r\n\r\n")[0]
    raw = raw.replace(b"Content-Length: 2", f"Content-Length: {len(raw_body)}".encode())
    got, _, body = _exchange(server, raw + b"\r\n\r\n" + raw_body)
    assert (got, body.decode()) == (status, message + "\n")


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        pytest.param(
            b"POST /v1/namespaces/team-a/releasegates/holding/decision", 405, id="post-decision"
        ),
        pytest.param(b"GET /v1/flagger/rollback", 405, id="get-hook"),
        pytest.param(b"POST /v1/flagger/rollout", 404, id="unsupported-hook"),
        pytest.param(b"GET /v1/namespaces/team-a/releasegates", 404, id="no-list"),
    ],
)
def test_other_routes(server: Server, request_line: bytes, status: int) -> None:
    raw = request_line + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    assert _exchange(server, raw)[0] == status


def test_a_huge_body_is_refused_unread(server: Server) -> None:
    raw = b"POST /v1/flagger/rollback HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n{"
    assert _exchange(server, raw)[0] == 413


def test_without_authentication_the_api_is_off(book: DecisionBook) -> None:
    with serve(
        "127.0.0.1:0",
        recorder=Recorder(),
        healthy=lambda: True,
        ready=lambda: True,
        api=DecisionAPI(book, []),
    ) as running:
        status, _, body = _exchange(running, _argo(running, "team-a", "holding"))
    assert status == 404
    assert body.decode() == (
        "the decision API is off (gatectl run --api-token-file or --api-token-review turns it on)\n"
    )


def test_a_rotated_token_file_is_read_again(token_file: Path) -> None:
    tokens = StaticTokens(token_file)
    assert tokens.allows(TOKEN, namespace="a", name="b") is True
    token_file.write_text("rotated-token-with-another-length\n")
    assert tokens.allows(TOKEN, namespace="a", name="b") is None
    assert tokens.allows("rotated-token-with-another-length", namespace="a", name="b") is True


def test_the_book_forgets_deleted_gates(book: DecisionBook) -> None:
    book.forget(namespace="team-a", gate="holding")
    assert book.get("team-a", "holding") is None
    assert book.get("team-a", "promoting") is not None


# -- TokenReview against a real kube-apiserver ------------------------------------------------


def _serviceaccount_token(admin: Any, namespace: str, name: str) -> str:
    """A ServiceAccount allowed to get ReleaseGates in ``namespace`` only, and its token."""
    from kubernetes import client

    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": name},
            "rules": [
                {"apiGroups": ["gatectl.io"], "resources": ["releasegates"], "verbs": ["get"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    answer = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return str(answer.status.token)


class _Reviews:
    """``Resources.create`` of one review kind, as the controller's client sends it."""

    def __init__(self, api_client: Any, kind: ResourceKind) -> None:
        self._resources = Resources(api_client, kind)

    def create(self, body: Any, *, namespace: str | None = None) -> dict[str, Any]:
        return self._resources.create(body)


def test_tokenreview_lets_a_serviceaccount_read_only_its_own_namespaces_gates(
    real_kube: Any,  # noqa: F811
) -> None:
    admin = load_api_client(kubeconfig=str(real_kube.kubeconfig))
    namespace = f"team-{secrets.token_hex(3)}"
    try:
        token = _serviceaccount_token(admin, namespace, "argo-reader")
        reviewer = TokenReviewer(
            _Reviews(admin, TOKENREVIEWS), _Reviews(admin, SUBJECTACCESSREVIEWS)
        )
        assert reviewer.allows(token, namespace=namespace, name="triage") is True
        assert reviewer.allows(token, namespace="kube-system", name="triage") is None
        assert reviewer.allows("not-a-token", namespace=namespace, name="triage") is None
    finally:
        admin.close()


def test_the_book_keeps_nothing_once_the_api_is_off(book: DecisionBook) -> None:
    """``gatectl run`` without --api-token-file or --api-token-review: no decision is kept."""
    api = decision_api(book, token_file=None, token_review=False)
    assert api.authenticators == []
    assert book.get("team-a", "holding") is None
    book.record(_gate("holding"), _decision(Action.HOLD))
    assert book.get("team-a", "holding") is None


def test_the_book_keeps_decisions_when_the_api_is_on(book: DecisionBook, token_file: Path) -> None:
    decision_api(book, token_file=str(token_file), token_review=False)
    book.record(_gate("later"), _decision(Action.PROMOTE))
    found = book.get("team-a", "later")
    assert found is not None and found["decision"] == "promote"
    assert book.get("team-a", "holding") is not None
