"""What a ReleaseGate may ask of a shared controller: URL allowlists and every refusal, whole."""

from __future__ import annotations

from typing import Any

import pytest

from gatectl.engine.tenancy import Tenancy, url_allowed, violations
from gatectl.policy.models import Gate, GateSpec

KEY = {"name": "webhook-signing", "key": "hmac"}
PLATFORM = Tenancy(
    kubernetes=True,
    prometheus_urls=("http://prometheus.monitoring:9090", "https://mimir.example/prometheus"),
    webhook_urls=("https://hooks.example/gatectl/",),
)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        pytest.param("http://prometheus.monitoring:9090", True, id="exact"),
        pytest.param("http://prometheus.monitoring:9090/", True, id="trailing-slash"),
        pytest.param("http://PROMETHEUS.monitoring:9090/api", True, id="host-case"),
        pytest.param("https://mimir.example/prometheus", True, id="path-prefix-exact"),
        pytest.param("https://mimir.example:443/prometheus/x", True, id="default-port"),
        pytest.param("https://mimir.example/prometheus-evil", False, id="path-not-a-segment"),
        pytest.param("https://mimir.example/", False, id="above-the-prefix"),
        pytest.param("http://prometheus.monitoring:9090.evil.example", False, id="longer-host"),
        pytest.param("http://prometheus.monitoring:9091", False, id="other-port"),
        pytest.param("https://prometheus.monitoring:9090", False, id="other-scheme"),
        pytest.param("http://prometheus.monitoring", False, id="default-port-differs"),
        pytest.param("http://evil@prometheus.monitoring:9090", False, id="user-info"),
        pytest.param("http://127.0.0.1:9090", False, id="loopback"),
        pytest.param("http://169.254.169.254/latest", False, id="link-local"),
        pytest.param("file:///etc/passwd", False, id="file-scheme"),
        pytest.param("http://prometheus.monitoring:99999", False, id="bad-port"),
        pytest.param("not a url", False, id="garbage"),
    ],
)
def test_url_allowed_matches_scheme_host_port_and_a_path_prefix(url: str, allowed: bool) -> None:
    assert url_allowed(url, PLATFORM.prometheus_urls) is allowed


def test_no_prefixes_allow_nothing() -> None:
    assert url_allowed("http://prometheus.monitoring:9090", ()) is False


def gate(**spec: Any) -> Gate:
    body: dict[str, Any] = {
        "canary_traffic": 0.1,
        "promotion_window": "1h",
        "success_criteria": {"exception_rate": "<= 0.04"},
        **spec,
    }
    return Gate(name="triage", namespace="support", spec=GateSpec.model_validate(body))


@pytest.mark.parametrize(
    ("spec", "messages"),
    [
        pytest.param({}, [], id="nothing-asked"),
        pytest.param(
            {"prometheus": {"url": "https://mimir.example/prometheus/tenant-a"}},
            [],
            id="allowed-url",
        ),
        pytest.param(
            {"prometheus": {"url": "http://attacker.example:9090"}},
            [
                "spec.prometheus.url: http://attacker.example:9090 is not a Prometheus this"
                " controller may query (allowed: http://prometheus.monitoring:9090,"
                " https://mimir.example/prometheus); the platform adds one with"
                " --prometheus-allowed-url"
            ],
            id="foreign-url",
        ),
        pytest.param(
            {"prometheus": {"url": "http://me:s3cret@attacker.example:9090"}},
            [
                "spec.prometheus.url: http://***@attacker.example:9090 is not a Prometheus this"
                " controller may query (allowed: http://prometheus.monitoring:9090,"
                " https://mimir.example/prometheus); the platform adds one with"
                " --prometheus-allowed-url"
            ],
            id="foreign-url-password-redacted",
        ),
        pytest.param(
            {"prometheus": {"bearer_token_file": "/var/run/secrets/kubernetes.io/token"}},
            [
                "spec.prometheus.bearer_token_file: a ReleaseGate may not name files on the"
                " controller; use prometheus.auth.secretRef (a Secret in the gate's namespace)"
            ],
            id="token-file",
        ),
        pytest.param(
            {"prometheus": {"ca_file": "/etc/ssl/private/key.pem"}},
            [
                "spec.prometheus.ca_file: a ReleaseGate may not name files on the controller;"
                " use prometheus.ca.secretRef or prometheus.ca.configMapRef"
            ],
            id="ca-file",
        ),
        pytest.param(
            {"traffic": {"kind": "configmap", "name": "router", "namespace": "billing"}},
            [
                "spec.traffic.namespace: billing is not the gate's namespace (support); the"
                " controller writes traffic only in the gate's own namespace unless started"
                " with --allow-cross-namespace-traffic"
            ],
            id="other-namespace",
        ),
        pytest.param(
            {"traffic": {"kind": "configmap", "name": "router", "namespace": "support"}},
            [],
            id="own-namespace-named",
        ),
        pytest.param(
            {"traffic": {"kind": "file", "path": "/etc/cron.d/x"}},
            [
                "spec.traffic.kind: file writes on the controller's filesystem and is for"
                " file mode only; on Kubernetes use configmap, httproute or deployment"
            ],
            id="file-traffic",
        ),
        pytest.param(
            {
                "traffic": {
                    "kind": "openfeature",
                    "flag": "triage-ai",
                    "ai_variant": "ai",
                    "deterministic_variant": "rules",
                    "path": "/etc/flagd/flags.json",
                }
            },
            [
                "spec.traffic.source: a flag file is on the controller's filesystem and is for"
                " file mode only; on Kubernetes use source configmap or featureflag"
            ],
            id="openfeature-flag-file",
        ),
        pytest.param(
            {"webhook": {"url": "http://169.254.169.254/latest/meta-data", "secretRef": KEY}},
            [
                "spec.webhook.url: http://169.254.169.254/latest/meta-data is not an allowed"
                " webhook destination (allowed: https://hooks.example/gatectl/)"
            ],
            id="webhook-elsewhere",
        ),
        pytest.param(
            {"webhook": {"url": "https://hooks.example/gatectl/support", "secretRef": KEY}},
            [],
            id="webhook-ok",
        ),
        pytest.param(
            {"webhook": {"url": "https://hooks.example/gatectl/support"}},
            [
                "spec.webhook.secretRef: webhooks are signed (X-Gatectl-Signature, HMAC-SHA256):"
                " name the Secret key in the gate's namespace that holds the signing key"
            ],
            id="webhook-unsigned",
        ),
        pytest.param(
            {
                "webhook": {
                    "url": "https://hooks.example/gatectl/support",
                    "signing_key_file": "/var/run/secrets/kubernetes.io/serviceaccount/token",
                }
            },
            [
                "spec.webhook.signing_key_file: a ReleaseGate may not name files on the"
                " controller; use webhook.secretRef (a Secret in the gate's namespace)"
            ],
            id="webhook-key-file",
        ),
    ],
)
def test_what_a_gate_may_not_ask_is_said_whole(spec: dict[str, Any], messages: list[str]) -> None:
    assert violations(gate(**spec), PLATFORM) == messages


def test_webhooks_are_off_without_an_allowlist() -> None:
    tenancy = Tenancy(kubernetes=True, prometheus_urls=PLATFORM.prometheus_urls)

    assert violations(gate(webhook={"url": "https://hooks.example/gatectl/x"}), tenancy) == [
        "spec.webhook.url: webhooks are off on this controller (the platform enables them"
        " with --webhook-allowed-url)"
    ]


def test_cross_namespace_traffic_when_the_platform_allows_it() -> None:
    tenancy = Tenancy(kubernetes=True, cross_namespace_traffic=True)

    assert (
        violations(gate(traffic={"kind": "configmap", "name": "r", "namespace": "b"}), tenancy)
        == []
    )


def test_file_mode_trusts_its_policy_files() -> None:
    spec = {
        "prometheus": {"url": "http://anywhere:9090", "bearer_token_file": "/run/token"},
        "traffic": {"kind": "file", "path": "/srv/router/share.json"},
        "webhook": {"url": "http://127.0.0.1:8080/hook"},
    }
    assert violations(gate(**spec), Tenancy(kubernetes=False)) == []
