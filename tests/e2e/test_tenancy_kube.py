"""A tenant tries to reach past its namespace through a ReleaseGate, and fails (PRODUCT.md §9).

Each test writes ReleaseGates as an untrusted team would, runs the real
``gatectl run --kubernetes --once`` with the platform's flags, and checks that
(1) the gate is ``Invalid`` with a message that says what and why, and (2)
nothing left for a place the platform did not allow: capturing loopback
servers stand for the tenant's own Prometheus and webhook receiver and record
every request they get. The platform's own Prometheus is a capture too, so the
test sees that the controller's token goes there and nowhere else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi.fixtures import KubeTarget, kube_api  # noqa: F401
from support.capture import Capture

from e2e.kube_support import Api, apply_crd, gatectl_cli, releasegate
from gatectl.adapters.kube import CONFIGMAPS, CRDS, NAMESPACES, SECRETS

TOKEN = "platform-token-do-not-leak"


@pytest.fixture
def kube(kube_api: KubeTarget) -> KubeTarget:  # noqa: F811
    apply_crd(kube_api.resources(CRDS))
    kube_api.require_crd("releasegates.gatectl.io")
    return kube_api


@pytest.fixture
def api(kube: KubeTarget) -> Api:
    return Api(kube)


@pytest.fixture
def platform() -> Iterator[Capture]:
    """The platform's Prometheus (a capture answering empty vectors)."""
    with Capture() as capture:
        yield capture


@pytest.fixture
def tenant() -> Iterator[Capture]:
    """A server the tenant controls."""
    with Capture() as capture:
        yield capture


def run_once(kube: KubeTarget, tmp_path: Path, platform: str, *extra: str) -> str:
    token = tmp_path / "token"
    token.write_text(TOKEN, encoding="utf-8")
    done = gatectl_cli(
        "run",
        "--kubernetes",
        "--once",
        "--kubeconfig",
        kube.kubeconfig,
        "-n",
        kube.namespace,
        "--prometheus-url",
        platform,
        "--prometheus-bearer-token-file",
        str(token),
        "--prometheus-header",
        "X-Scope-OrgID: platform",
        *extra,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_invalid(api: Api, name: str, message: str) -> None:
    status = api.status(name)
    assert status.get("phase") == "Invalid", status
    assert message in str(status.get("message")), status
    assert "step" not in status, "an invalid gate was evaluated"


def test_a_gate_pointing_at_its_own_prometheus_gets_no_credential(
    kube: KubeTarget, api: Api, platform: Capture, tenant: Capture, tmp_path: Path
) -> None:
    api.create(releasegate("steal", prometheus={"url": tenant.url}))
    api.create(releasegate("honest"))

    run_once(kube, tmp_path, platform.url)

    assert tenant.seen() == []
    assert_invalid(api, "steal", f"spec.prometheus.url: {tenant.url} is not a Prometheus")
    queries = platform.seen()
    assert queries, "the honest gate was not evaluated"
    assert {r.headers.get("Authorization") for r in queries} == {f"Bearer {TOKEN}"}
    assert api.status("honest")["step"] == 1


def test_an_allowed_prometheus_is_queried_with_the_controllers_credentials(
    kube: KubeTarget, api: Api, platform: Capture, tenant: Capture, tmp_path: Path
) -> None:
    api.create(releasegate("allowed", prometheus={"url": f"{tenant.url}/tenant-a"}))

    run_once(kube, tmp_path, platform.url, "--prometheus-allowed-url", f"{tenant.url}/tenant-a")

    seen = tenant.seen()
    assert seen, "the allowed Prometheus was not queried"
    assert all(r.path.startswith("/tenant-a/api/v1/query") for r in seen), seen
    assert {r.headers.get("Authorization") for r in seen} == {f"Bearer {TOKEN}"}
    assert {r.headers.get("X-Scope-OrgID") for r in seen} == {"platform"}
    assert api.status("allowed")["step"] == 1


def test_a_gate_naming_a_file_on_the_controller_sends_nothing(
    kube: KubeTarget, api: Api, platform: Capture, tmp_path: Path
) -> None:
    secret = tmp_path / "service-account-token"
    secret.write_text("the-controllers-service-account-token", encoding="utf-8")
    api.create(releasegate("file-token", prometheus={"bearer_token_file": str(secret)}))
    api.create(releasegate("file-ca", prometheus={"ca_file": str(secret)}))

    stderr = run_once(kube, tmp_path, platform.url)

    assert_invalid(api, "file-token", "spec.prometheus.bearer_token_file: a ReleaseGate may not")
    assert_invalid(api, "file-ca", "spec.prometheus.ca_file: a ReleaseGate may not")
    for request in platform.seen():
        assert "the-controllers-service-account-token" not in str(request.headers)
    assert "the-controllers-service-account-token" not in stderr


def test_traffic_in_another_teams_namespace_is_refused_and_left_alone(
    kube: KubeTarget, api: Api, platform: Capture, tmp_path: Path
) -> None:
    billing = f"{kube.namespace}-billing"
    kube.resources(NAMESPACES).create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": billing}}
    )
    configmaps = kube.resources(CONFIGMAPS)
    configmaps.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "router", "namespace": billing},
            "data": {"share": "0.5", "share_mode": "canary"},
        },
        namespace=billing,
    )
    traffic = {"kind": "configmap", "name": "router", "namespace": billing}
    api.create(releasegate("reach", traffic=traffic))

    run_once(kube, tmp_path, platform.url)

    assert_invalid(api, "reach", f"spec.traffic.namespace: {billing} is not the gate's namespace")
    assert configmaps.get("router", namespace=billing)["data"] == {
        "share": "0.5",
        "share_mode": "canary",
    }


def test_cross_namespace_traffic_works_when_the_platform_allows_it(
    kube: KubeTarget, api: Api, platform: Capture, tmp_path: Path
) -> None:
    other = f"{kube.namespace}-router"
    kube.resources(NAMESPACES).create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    api.create(
        releasegate("across", traffic={"kind": "configmap", "name": "r", "namespace": other})
    )

    run_once(kube, tmp_path, platform.url, "--allow-cross-namespace-traffic")

    assert kube.resources(CONFIGMAPS).get("r", namespace=other)["data"]["share"] == "0.05"


def test_a_webhook_to_anywhere_is_refused_without_an_allowlist(
    kube: KubeTarget, api: Api, platform: Capture, tenant: Capture, tmp_path: Path
) -> None:
    api.create(releasegate("hook", webhook={"url": f"{tenant.url}/hook"}))

    run_once(kube, tmp_path, platform.url)

    assert_invalid(api, "hook", "spec.webhook.url: webhooks are off on this controller")
    assert tenant.seen() == []


def test_a_file_actuator_in_a_releasegate_is_refused(
    kube: KubeTarget, api: Api, platform: Capture, tmp_path: Path
) -> None:
    target = tmp_path / "overwritten.json"
    api.create(releasegate("writer", traffic={"kind": "file", "path": str(target)}))

    run_once(kube, tmp_path, platform.url)

    assert_invalid(api, "writer", "spec.traffic.kind: file writes on the controller's filesystem")
    assert not target.exists()


def test_a_gates_own_token_comes_from_a_secret_in_its_namespace(
    kube: KubeTarget, api: Api, platform: Capture, tenant: Capture, tmp_path: Path
) -> None:
    kube.resources(SECRETS).create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "team-prometheus", "namespace": kube.namespace},
            "data": {"token": base64.b64encode(b"the-teams-own-token").decode()},
        },
        namespace=kube.namespace,
    )
    auth = {"secretRef": {"name": "team-prometheus", "key": "token"}}
    api.create(releasegate("own", prometheus={"url": f"{tenant.url}/team", "auth": auth}))
    missing = {"secretRef": {"name": "no-such-secret", "key": "token"}}
    api.create(releasegate("missing", prometheus={"url": f"{tenant.url}/team", "auth": missing}))

    stderr = run_once(kube, tmp_path, platform.url, "--prometheus-allowed-url", tenant.url)

    seen = tenant.seen()
    assert seen, "the gate's Prometheus was not queried"
    assert {r.headers.get("Authorization") for r in seen} == {"Bearer the-teams-own-token"}
    assert api.status("own")["step"] == 1
    status = api.status("missing")
    assert f"Secret {kube.namespace}/no-such-secret not found" in str(status.get("message"))
    assert "the-teams-own-token" not in stderr
    assert TOKEN not in str([r.headers for r in seen])


def test_an_allowed_webhook_is_signed_with_the_gates_own_key(
    kube: KubeTarget, api: Api, platform: Capture, tenant: Capture, tmp_path: Path
) -> None:
    kube.resources(SECRETS).create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "webhook-signing", "namespace": kube.namespace},
            "data": {"hmac": base64.b64encode(b"shared-hmac-key").decode()},
        },
        namespace=kube.namespace,
    )
    webhook = {"url": f"{tenant.url}/hook", "secretRef": {"name": "webhook-signing", "key": "hmac"}}
    fast = {"scrape_interval": "1s"}
    api.create(releasegate("signed", webhook=webhook, prometheus=fast))
    api.create(releasegate("unsigned", webhook={"url": f"{tenant.url}/hook"}, prometheus=fast))
    allow = ("--webhook-allowed-url", f"{tenant.url}/hook")

    run_once(kube, tmp_path, platform.url, *allow)  # warming up: nothing to announce yet
    time.sleep(2.5)
    run_once(kube, tmp_path, platform.url, *allow)  # past warm-up: a change of decision

    hooks = [r for r in tenant.seen() if r.path == "/hook"]
    assert len(hooks) == 1, hooks
    (hook,) = hooks
    expected = "sha256=" + hmac.new(b"shared-hmac-key", hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Gatectl-Signature"] == expected
    assert json.loads(hook.body)["gate"] == "signed"
    assert TOKEN not in str(hook.headers)
    assert_invalid(api, "unsigned", "spec.webhook.secretRef: webhooks are signed")
