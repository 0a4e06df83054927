"""ApiException -> gatectl errors, and which failures are retried (never a 409)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from kubeapi import KubeAPIServer
from kubeapi.fixtures import KubeTarget
from kubernetes.client.exceptions import ApiException

from gatectl.adapters.kube import (
    CONFIGMAPS,
    Resources,
    RetryPolicy,
    load_api_client,
    map_api_exception,
)
from gatectl.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
)

from .objects import configmap


def api_exception(
    status: int, *, body: str | None = None, retry_after: str | None = None
) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = body
    exc.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return exc


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(409, ConflictError, id="409-conflict"),
        pytest.param(404, NotFoundError, id="404-not-found"),
        pytest.param(401, ForbiddenError, id="401-unauthorized"),
        pytest.param(403, ForbiddenError, id="403-forbidden"),
        pytest.param(429, TooManyRequestsError, id="429-too-many"),
        pytest.param(500, ServerError, id="500-internal"),
        pytest.param(503, ServerError, id="503-unavailable"),
        pytest.param(422, ClusterError, id="422-invalid-is-plain-cluster-error"),
        pytest.param(400, ClusterError, id="400-bad-request"),
    ],
)
def test_status_codes_map_to_gatectl_errors(status: int, expected: type[ClusterError]) -> None:
    error = map_api_exception(api_exception(status), what="get x")
    assert type(error) is expected
    assert error.status == status


def test_status_body_message_is_kept() -> None:
    body = '{"kind": "Status", "reason": "Conflict", "message": "the object has been modified"}'
    error = map_api_exception(api_exception(409, body=body), what="PUT releasegates replace g")
    assert str(error) == "PUT releasegates replace g: 409 Conflict: the object has been modified"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(None, None, id="absent"),
        pytest.param("soon", None, id="unparseable"),
    ],
)
def test_retry_after_header_is_carried(header: str | None, expected: float | None) -> None:
    error = map_api_exception(api_exception(429, retry_after=header))
    assert isinstance(error, TooManyRequestsError)
    assert error.retry_after == expected


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def configmaps(kube_api: KubeTarget, pauses: list[float]) -> Resources:
    kube_api.require_server()
    return Resources(
        kube_api.api_client,
        CONFIGMAPS,
        retry=RetryPolicy(delays=(0.1, 0.2, 0.4, 0.8)),
        sleep=pauses.append,
    )


def calls(kube_api: KubeTarget, method: str, name: str) -> list[int]:
    assert kube_api.server is not None
    return [
        r.status for r in kube_api.server.requests if r.method == method and r.path.endswith(name)
    ]


def test_server_errors_are_retried_then_succeed(
    kube_api: KubeTarget,
    configmaps: Resources,
    pauses: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ns = kube_api.namespace
    configmaps.create(configmap("flaky"), namespace=ns)
    assert kube_api.server is not None
    kube_api.server.fail_next(2, status=503, path_contains="/configmaps/flaky")
    with caplog.at_level(logging.WARNING, logger="gatectl.adapters.kube"):
        assert configmaps.get("flaky", namespace=ns)["metadata"]["name"] == "flaky"
    assert calls(kube_api, "GET", "/flaky") == [503, 503, 200]
    assert pauses == [0.1, 0.2]
    assert ["#2/5" in m for m in caplog.messages] == [True, False]
    assert "#3/5" in caplog.messages[1]


def test_too_many_requests_waits_as_long_as_retry_after_says(
    kube_api: KubeTarget, configmaps: Resources, pauses: list[float]
) -> None:
    ns = kube_api.namespace
    assert kube_api.server is not None
    kube_api.server.fail_next(1, status=429, retry_after=3, path_contains="/configmaps")
    configmaps.create(configmap("throttled"), namespace=ns)
    assert pauses == [3.0]


def test_retries_give_up_after_the_last_attempt(
    kube_api: KubeTarget, configmaps: Resources, pauses: list[float]
) -> None:
    assert kube_api.server is not None
    kube_api.server.fail_next(10, status=500, path_contains="/configmaps/down")
    with pytest.raises(ServerError, match="500"):
        configmaps.get("down", namespace=kube_api.namespace)
    assert calls(kube_api, "GET", "/down") == [500] * 5
    assert pauses == [0.1, 0.2, 0.4, 0.8]


def test_conflicts_are_never_retried(
    kube_api: KubeTarget, configmaps: Resources, pauses: list[float]
) -> None:
    ns = kube_api.namespace
    stale = configmaps.create(configmap("contested"), namespace=ns)
    configmaps.patch("contested", {"data": {"a": "1"}}, namespace=ns)
    with pytest.raises(ConflictError):
        configmaps.replace(stale, namespace=ns)
    assert calls(kube_api, "PUT", "/contested") == [409]
    assert pauses == []


def test_unreachable_server_is_a_cluster_error_without_status(kube_api: KubeTarget) -> None:
    server = kube_api.require_server()
    server.stop()
    resources = Resources(kube_api.api_client, CONFIGMAPS, retry=RetryPolicy(delays=(0.0,)))
    with pytest.raises(ClusterError) as caught:
        resources.get("anything", namespace="default")
    assert caught.value.status is None


def test_missing_kubeconfig_is_a_cluster_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ClusterError, match="cannot load Kubernetes configuration"):
        load_api_client(kubeconfig=str(missing))


def test_kubeconfig_context_is_honoured(tmp_path: Path) -> None:
    with KubeAPIServer() as server:
        config = server.kubeconfig()
        config["contexts"].append(
            {"name": "other", "context": {"cluster": "kubeapi", "user": "kubeapi"}}
        )
        config["current-context"] = "broken"
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        api_client = load_api_client(kubeconfig=str(path), context="other")
        assert Resources(api_client, CONFIGMAPS).list(namespace="default").items == []
        api_client.close()
