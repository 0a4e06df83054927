"""The chart renders and lints in every mode; what it renders is least privilege and hardened."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
from chartlib import (
    CHART_DIR,
    NAMESPACE,
    SCENARIOS,
    Manifest,
    of_kind,
    one,
    render,
)

SCENARIO_PARAMS = [pytest.param(values, id=name) for name, values in SCENARIOS.items()]


def container(manifests: list[Manifest]) -> dict[str, Any]:
    deployment = one(manifests, "Deployment")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def rules_of(manifests: list[Manifest], kind: str) -> list[dict[str, Any]]:
    return [rule for role in of_kind(manifests, kind) for rule in role["rules"]]


@pytest.mark.parametrize("values", SCENARIO_PARAMS)
def test_chart_lints_without_warnings(values: dict[str, Any]) -> None:
    report = helm.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("kube_version", ["v1.29.0", "v1.33.0", "v1.37.0"])
def test_chart_lints_for_each_supported_kubernetes(kube_version: str) -> None:
    report = helm.lint(str(CHART_DIR), {}, strict=True, kube_version=kube_version)
    assert report["errors"] == [], report


def test_default_install_has_every_part_issue_4_lists(chart: Any) -> None:
    kinds = sorted(m["kind"] for m in render(chart))
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ConfigMap",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )


def test_monitoring_objects_appear_only_when_enabled(chart: Any) -> None:
    on = render(chart, SCENARIOS["cluster-everything-on"])
    assert one(on, "ServiceMonitor")["spec"]["endpoints"][0]["honorLabels"] is True
    assert len(one(on, "PrometheusRule")["spec"]["groups"]) == 2
    off = render(chart)
    assert of_kind(off, "ServiceMonitor") == [] and of_kind(off, "PrometheusRule") == []


# -- RBAC ----------------------------------------------------------------------------

GATE_RULES = {  # each shown needed on a real API server: tests/realkube/test_chart_rbac.py
    ("gatectl.io", "releasegates"): {"get", "list", "watch"},
    ("gatectl.io", "releasegates/status"): {"update"},
    ("", "configmaps"): {"get", "create", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "update"},
    ("apps", "deployments"): {"get", "patch"},
    ("", "events"): {"create"},
    ("", "secrets"): {"get"},
}


def grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


@pytest.mark.parametrize("values", SCENARIO_PARAMS)
def test_rbac_has_no_wildcards_anywhere(chart: Any, values: dict[str, Any]) -> None:
    manifests = render(chart, values)
    for rule in rules_of(manifests, "ClusterRole") + rules_of(manifests, "Role"):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert "resourceNames" not in rule or "*" not in rule["resourceNames"]
        assert "nonResourceURLs" not in rule


def test_cluster_scope_grants_exactly_what_the_controller_uses(chart: Any) -> None:
    manifests = render(chart)
    assert grants(rules_of(manifests, "ClusterRole")) == GATE_RULES
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gatectl", "namespace": NAMESPACE}
    ]


def test_reading_secrets_is_a_grant_the_platform_can_turn_off(chart: Any) -> None:
    manifests = render(chart, {"rbac": {"readSecrets": False}})
    granted = grants(rules_of(manifests, "ClusterRole"))
    assert ("", "secrets") not in granted
    assert granted == {k: v for k, v in GATE_RULES.items() if k != ("", "secrets")}


def test_leases_are_granted_only_in_the_release_namespace(chart: Any) -> None:
    for values in SCENARIOS.values():
        manifests = render(chart, values)
        lease_roles = [
            r
            for r in of_kind(manifests, "Role")
            if ("coordination.k8s.io", "leases") in grants(r["rules"])
        ]
        if values.get("leaderElection", {}).get("enabled", True) is False:
            assert lease_roles == []
            continue
        (role,) = lease_roles
        assert role["metadata"]["namespace"] == NAMESPACE
        sharded = values.get("sharding", {}).get("enabled", False)
        assert grants(role["rules"]) == {
            ("coordination.k8s.io", "leases"): (
                {"list", "create", "update"} if sharded else {"get", "create", "update"}
            )
        }
        for cluster_role in of_kind(manifests, "ClusterRole"):
            assert ("coordination.k8s.io", "leases") not in grants(cluster_role["rules"])


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [
        pytest.param(
            SCENARIOS["namespaced-release-namespace"], [NAMESPACE], id="release-namespace"
        ),
        pytest.param(
            SCENARIOS["namespaced-two-namespaces"], ["support", "billing"], id="two-namespaces"
        ),
    ],
)
def test_namespaced_scope_has_a_role_per_watched_namespace_and_nothing_cluster_wide(
    chart: Any, values: dict[str, Any], namespaces: list[str]
) -> None:
    manifests = render(chart, values)
    assert (
        of_kind(manifests, "ClusterRole") == [] and of_kind(manifests, "ClusterRoleBinding") == []
    )
    gate_roles = [
        r
        for r in of_kind(manifests, "Role")
        if not r["metadata"]["name"].endswith("-leader-election")
    ]
    assert sorted(r["metadata"]["namespace"] for r in gate_roles) == sorted(namespaces)
    bindings = [
        b
        for b in of_kind(manifests, "RoleBinding")
        if not b["metadata"]["name"].endswith("-leader-election")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    args = container(manifests)["args"]
    assert flag_values(args, "--namespace") == namespaces


def test_traffic_grants_can_be_dropped_when_unused(chart: Any) -> None:
    manifests = render(chart, SCENARIOS["namespaced-two-namespaces"])
    for role in of_kind(manifests, "Role"):
        granted = grants(role["rules"])
        assert ("apps", "deployments") not in granted
        assert ("gateway.networking.k8s.io", "httproutes") not in granted


def test_rbac_can_be_left_to_the_cluster_admin(chart: Any) -> None:
    manifests = render(
        chart, {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops"}}
    )
    assert not [
        m
        for m in manifests
        if m["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    ]
    assert of_kind(manifests, "ServiceAccount") == []
    spec = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ops"


# -- Deployment ----------------------------------------------------------------------


def test_default_deployment_runs_two_replicas_with_leader_election(chart: Any) -> None:
    manifests = render(chart)
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert container(manifests)["args"] == [
        "run",
        "--kubernetes",
        "--metrics-address",
        "0.0.0.0:8080",
        "--leader-elect",
        "--lease-namespace",
        "$(POD_NAMESPACE)",
        "--prometheus-url",
        "http://prometheus-operated.monitoring.svc:9090",
        "--audit-buffer",
        "/var/lib/gatectl/audit/$(POD_NAME)",
        "--audit-buffer-mib",
        "256",
        "--audit-stdout",
    ]


def test_pod_identity_comes_from_the_downward_api(chart: Any) -> None:
    env = {e["name"]: e for e in container(render(chart))["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_probes_hit_healthz_and_readyz_on_the_metrics_port(chart: Any) -> None:
    main = container(render(chart))
    assert main["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]


@pytest.mark.parametrize("values", SCENARIO_PARAMS)
def test_pod_is_hardened_in_every_mode(chart: Any, values: dict[str, Any]) -> None:
    manifests = render(chart, values)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    security = container(manifests)["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod


def test_prometheus_connection_settings_become_flags_and_mounts(chart: Any) -> None:
    manifests = render(chart, SCENARIOS["cluster-everything-on"])
    main = container(manifests)
    args = main["args"]
    assert flag_values(args, "--prometheus-url") == ["https://mimir.example:8443/prometheus"]
    assert flag_values(args, "--prometheus-header") == ["X-Scope-OrgID: tenant-a"]
    assert flag_values(args, "--prometheus-bearer-token-file") == [
        "/var/run/secrets/prometheus/token"
    ]
    assert flag_values(args, "--prometheus-ca-file") == ["/var/run/secrets/prometheus-ca/ca.crt"]
    assert flag_values(args, "--namespace") == ["support", "billing"]
    volumes = {
        v["name"]: v for v in one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["prometheus-token"]["secret"]["secretName"] == "prom-token"
    assert volumes["prometheus-token"]["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert volumes["prometheus-ca"]["secret"]["secretName"] == "prom-ca"
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert mounts["prometheus-token"] == "/var/run/secrets/prometheus"
    assert of_kind(manifests, "Secret") == [], "an existing Secret must not be duplicated"
    assert main["image"] == "ghcr.io/gatectl/gatectl@sha256:" + "a" * 64


def test_inline_bearer_token_goes_into_a_secret_not_into_args(chart: Any) -> None:
    manifests = render(chart, SCENARIOS["namespaced-two-namespaces"])
    secret = one(manifests, "Secret")
    assert secret["data"] == {"token": "czNjcjN0"}
    args = container(manifests)["args"]
    assert not any("s3cr3t" in a for a in args)
    volumes = {
        v["name"]: v for v in one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["prometheus-token"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert volumes["prometheus-ca"]["configMap"]["name"] == "ca"


def test_without_prometheus_auth_there_are_no_auth_flags(chart: Any) -> None:
    args = container(render(chart))["args"]
    for flag in (
        "--prometheus-header",
        "--prometheus-bearer-token-file",
        "--prometheus-ca-file",
        "--namespace",
    ):
        assert flag not in args


def test_service_and_monitor_select_the_controller_pods(chart: Any) -> None:
    manifests = render(chart, SCENARIOS["cluster-everything-on"])
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(manifests, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    monitor = one(manifests, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_dashboard_configmap_carries_the_sidecar_label(chart: Any) -> None:
    config_map = one(render(chart), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


# -- values.schema.json ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param({"rbac": {"scope": "everywhere"}}, "/rbac/scope", id="unknown-rbac-scope"),
        pytest.param({"replicaCount": "2"}, "/replicaCount", id="replicas-as-string"),
        pytest.param({"replicaCount": 0}, "/replicaCount", id="zero-replicas"),
        pytest.param(
            {"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url", id="url-without-scheme"
        ),
        pytest.param({"prometheus": {"url": ""}}, "/prometheus/url", id="empty-url"),
        pytest.param(
            {"prometheus": {"headers": {"X-Org": 5}}}, "/prometheus/headers", id="header-not-string"
        ),
        pytest.param(
            {"promethues": {"url": "http://p:9090"}}, "promethues", id="misspelt-top-level-key"
        ),
        pytest.param({"serviceMonitor": {"enabeld": True}}, "enabeld", id="misspelt-nested-key"),
        pytest.param({"image": {"tag": "latest"}}, "/image/tag", id="latest-tag"),
        pytest.param({"image": {"digest": "sha256:abc"}}, "/image/digest", id="short-digest"),
        pytest.param(
            {"watchNamespaces": ["Support"]}, "/watchNamespaces", id="namespace-not-dns-label"
        ),
        pytest.param(
            {"watchNamespaces": "support"}, "/watchNamespaces", id="namespaces-not-a-list"
        ),
        pytest.param(
            {"prometheusRule": {"inconclusiveFor": "half an hour"}},
            "inconclusiveFor",
            id="bad-duration",
        ),
        pytest.param(
            {"prometheusRule": {"queryErrorRatio": 2}}, "queryErrorRatio", id="ratio-above-one"
        ),
        pytest.param(
            {"securityContext": {"runAsNonRoot": False}}, "runAsNonRoot", id="root-container"
        ),
        pytest.param(
            {"securityContext": {"allowPrivilegeEscalation": True}},
            "allowPrivilegeEscalation",
            id="privilege-escalation",
        ),
        pytest.param({"metrics": {"port": 80}}, "/metrics/port", id="privileged-port"),
        pytest.param(
            {"podDisruptionBudget": {"maxUnavailable": 0}}, "maxUnavailable", id="pdb-blocks-all"
        ),
    ],
)
def test_bad_values_are_rejected_by_the_schema(
    chart: Any, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


@pytest.mark.parametrize("values", SCENARIO_PARAMS)
def test_every_scenario_passes_the_schema(chart: Any, values: dict[str, Any]) -> None:
    chart.validate_schema(values)


def test_every_default_value_is_documented_in_the_chart_readme(chart: Any) -> None:
    readme = (CHART_DIR / "README.md").read_text()

    def keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
        found: list[str] = []
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if (
                isinstance(value, dict)
                and value
                and path
                not in {
                    "resources",
                    "podSecurityContext",
                    "securityContext",
                    "livenessProbe",
                    "readinessProbe",
                    "dashboard.labels",
                }
            ):
                found.extend(keys(value, f"{path}."))
            else:
                found.append(path)
        return found

    missing = [key for key in keys(chart.values) if f"`{key}`" not in readme]
    assert missing == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, "every namespace", id="cluster"),
        pytest.param(SCENARIOS["namespaced-two-namespaces"], "support, billing", id="namespaced"),
        pytest.param(SCENARIOS["namespaced-release-namespace"], NAMESPACE, id="release-namespace"),
    ],
)
def test_notes_say_which_namespaces_are_watched(
    chart: Any, values: dict[str, Any], expected: str
) -> None:
    notes = chart.render(values, name="gatectl", namespace=NAMESPACE)["gatectl/templates/NOTES.txt"]
    assert f"watches ReleaseGates in {expected}" in notes or f"namespaces {expected}" in notes
    assert "port-forward svc/gatectl 8080:8080" in notes


def test_container_has_a_writable_home_on_the_read_only_filesystem(chart: Any) -> None:
    main = container(render(chart))
    env = {e["name"]: e.get("value") for e in main["env"]}
    mounts = {m["mountPath"] for m in main["volumeMounts"]}
    assert env["HOME"] == "/tmp" and "/tmp" in mounts


def test_integration_grants_are_opt_in_and_exactly_what_they_say(chart: Any) -> None:
    values = {
        "rbac": {
            "featureFlags": True,
            "tokenReview": True,
            "patchTargets": [
                {"apiGroup": "networking.istio.io", "resource": "virtualservices"},
                {"apiGroup": "serving.kserve.io", "resource": "llminferenceservices"},
            ],
        }
    }
    manifests = render(chart, values)
    extra = {
        k: v for k, v in grants(rules_of(manifests, "ClusterRole")).items() if k not in GATE_RULES
    }
    assert extra == {
        ("core.openfeature.dev", "featureflags"): {"get", "update"},
        ("networking.istio.io", "virtualservices"): {"get", "patch"},
        ("serving.kserve.io", "llminferenceservices"): {"get", "patch"},
    }
    delegated = [
        b
        for b in of_kind(manifests, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert len(delegated) == 1
    off = render(chart)
    assert not [
        b
        for b in of_kind(off, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    ]
