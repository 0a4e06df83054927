"""The chart installed on a real API server as Helm would, minus the pod: RBAC, account, token.

``install()`` renders the chart with Helm's own engine (helm-python-sdk) for a
release of its own, creates its namespaces, applies the rendered
ServiceAccount, Roles/ClusterRoles and bindings with the admin client (less
one rule, for the tests that show each rule is needed), asks the TokenRequest
API for the ServiceAccount's token and writes a kubeconfig holding it.
``Install.controller()`` is the chart's Deployment as a process: its
container's ``args`` and ``env`` exactly, with only what a kubelet or the
test must fill in (``$(POD_NAMESPACE)``, a loopback metrics address, the
test's Prometheus, the kubeconfig instead of the in-cluster token).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from e2e.kube_support import ControllerProcess, free_port
from kubernetes import client as k8s
from support.controlplane import ControlPlane

from gatectl.adapters.kube import NAMESPACES, ResourceKind, Resources, load_api_client

__all__ = ["CHART_DIR", "Install", "Rule", "grants", "install", "render_chart", "without_rule"]

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "gatectl"
RBAC = "rbac.authorization.k8s.io"
KINDS = {
    "ServiceAccount": ResourceKind("", "v1", "serviceaccounts"),
    "Role": ResourceKind(RBAC, "v1", "roles"),
    "RoleBinding": ResourceKind(RBAC, "v1", "rolebindings"),
    "ClusterRole": ResourceKind(RBAC, "v1", "clusterroles", namespaced=False),
    "ClusterRoleBinding": ResourceKind(RBAC, "v1", "clusterrolebindings", namespaced=False),
}
Rule = tuple[str, str, str]
"""(apiGroup, resource, verb): one permission of a rendered Role or ClusterRole."""
Manifest = dict[str, Any]


def render_chart(
    chart: Any, values: Mapping[str, Any], *, release: str, namespace: str
) -> list[Manifest]:
    """Every manifest the chart renders for this release (NOTES.txt left out)."""
    rendered = chart.render(dict(values), name=release, namespace=namespace, is_install=True)
    return [
        document
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


def _rules(manifest: Manifest) -> Iterator[Rule]:
    for rule in manifest.get("rules") or []:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    yield (group, resource, verb)


def grants(manifests: list[Manifest]) -> set[Rule]:
    """Every (apiGroup, resource, verb) the rendered Roles and ClusterRoles grant."""
    return {
        rule
        for manifest in manifests
        if manifest["kind"] in ("Role", "ClusterRole")
        for rule in _rules(manifest)
    }


def without_rule(manifests: list[Manifest], missing: Rule) -> list[Manifest]:
    """The manifests with one verb on one resource taken out of every Role/ClusterRole."""
    out = []
    for manifest in manifests:
        if manifest["kind"] in ("Role", "ClusterRole"):
            kept: dict[tuple[str, str], list[str]] = {}
            for group, resource, verb in _rules(manifest):
                if (group, resource, verb) != missing:
                    kept.setdefault((group, resource), []).append(verb)
            rules = [
                {"apiGroups": [group], "resources": [resource], "verbs": verbs}
                for (group, resource), verbs in kept.items()
            ]
            out.append({**manifest, "rules": rules})
        else:
            out.append(manifest)
    return out


@dataclass
class Install:
    """One release of the chart on the real API server, and the controller it would run."""

    release: str
    namespace: str
    """The release namespace: the ServiceAccount, the Lease."""
    gates: str
    """Where the test's ReleaseGates and their traffic objects live."""
    manifests: list[Manifest]
    kubeconfig: Path
    """The ServiceAccount's token, nothing else."""

    @property
    def deployment(self) -> Manifest:
        (found,) = [m for m in self.manifests if m["kind"] == "Deployment"]
        return found

    @property
    def identity(self) -> str:
        return f"{self.release}-pod-0"

    def args(self, *, prometheus_url: str, metrics_port: int | None) -> list[str]:
        """The container's args as the kubelet would pass them, pointed at this test's servers."""
        container = self.deployment["spec"]["template"]["spec"]["containers"][0]
        args = [str(a).replace("$(POD_NAMESPACE)", self.namespace) for a in container["args"]]
        for flag, value in (
            ("--prometheus-url", prometheus_url),
            ("--metrics-address", f"127.0.0.1:{metrics_port}" if metrics_port else None),
        ):
            at = args.index(flag)
            if value is None:
                del args[at : at + 2]
            else:
                args[at + 1] = value
        return [*args, "--kubeconfig", str(self.kubeconfig), "--tick", "0.2"]

    def controller(
        self, *, prometheus_url: str, log_path: Path, once: bool = False
    ) -> ControllerProcess:
        """The chart's controller (``once``: one pass, no leader election, no endpoints)."""
        port = None if once else free_port()
        args = self.args(prometheus_url=prometheus_url, metrics_port=port)
        if once:
            if "--leader-elect" in args:
                args.remove("--leader-elect")
                at = args.index("--lease-namespace")
                del args[at : at + 2]
            args.append("--once")
        env = {"POD_NAME": self.identity, "POD_NAMESPACE": self.namespace}
        return ControllerProcess.from_args(
            args, log_path=log_path, metrics_port=port, identity=self.identity, env=env
        )


def _create(admin: Any, manifest: Manifest) -> None:
    kind = KINDS[manifest["kind"]]
    namespace = manifest["metadata"].get("namespace") if kind.namespaced else None
    Resources(admin, kind).create(manifest, namespace=namespace)


def _token(admin: Any, namespace: str, service_account: str) -> str:
    """A ServiceAccount token from the TokenRequest API (the server's own audience)."""
    request = {"spec": {"audiences": [], "expirationSeconds": 3600}}
    issued = k8s.CoreV1Api(admin).create_namespaced_service_account_token(
        service_account, namespace, request
    )
    token: str = issued.status.token
    return token


def install(
    plane: ControlPlane,
    chart: Any,
    *,
    scope: str,
    missing: Rule | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Install:
    """Render and apply the chart's RBAC and ServiceAccount for a new release in ``scope``.

    ``namespaced``: a Role in the gates' namespace (``watchNamespaces``) and the
    leader-election Role in the release namespace. ``cluster``: the default
    install (every namespace), with ``-l gatectl.io/test=RELEASE`` through
    ``extraArgs`` so that it leaves other tests' gates alone.
    """
    release = f"rbac-{secrets.token_hex(3)}"
    namespace, gates = f"{release}-system", f"{release}-gates"
    values: dict[str, Any]
    if scope == "namespaced":
        values = {"rbac": {"scope": "namespaced"}, "watchNamespaces": [gates]}
    elif scope == "cluster":
        values = {"extraArgs": ["--selector", f"gatectl.io/test={release}"]}
    else:
        raise ValueError(f"scope {scope!r}")
    values.update(extra or {})  # e.g. {"sharding": {"enabled": True}}
    manifests = render_chart(chart, values, release=release, namespace=namespace)
    applied = without_rule(manifests, missing) if missing else manifests
    admin = load_api_client(kubeconfig=str(plane.kubeconfig))
    try:
        for name in (namespace, gates):
            Resources(admin, NAMESPACES).create({"metadata": {"name": name}})
        for manifest in applied:
            if manifest["kind"] in KINDS:
                _create(admin, manifest)
        (account,) = [m for m in manifests if m["kind"] == "ServiceAccount"]
        token = _token(admin, namespace, account["metadata"]["name"])
    finally:
        admin.close()
    kubeconfig = plane.write_kubeconfig(token, user=f"{release}-controller")
    return Install(release, namespace, gates, applied, kubeconfig)
