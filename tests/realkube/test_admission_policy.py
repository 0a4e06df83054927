"""The chart's ValidatingAdmissionPolicy on a real kube-apiserver: an approval names its writer.

The policy is rendered from the chart with Helm's own engine and applied; a
ServiceAccount with rights to patch ReleaseGates then tries to forge an
approval (rejected, with the chart's message), approves with ``gatectl approve``
(accepted: the CLI writes who its credentials say), and an edit by someone
else that leaves the annotation as it was is accepted.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.controlplane import ControlPlane
from support.required import require_module

from realkube.chartrbac import CHART_DIR, render_chart
from realkube.test_control_plane import (
    GROUP,
    PLURAL,
    VERSION,
    create_gate,
    error_message,
    service_account_token,
    ticket_triage_gate,
)

pytestmark = [pytest.mark.slow]

KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.fixture(scope="module")
def admission_policy(admin_client: Any, releasegate_crd: dict[str, Any]) -> Iterator[str]:
    """The chart's policy and binding, applied for this module and removed after."""
    helm = require_module("helm_python", install="pip install -e '.[dev]' (helm-python-sdk)")
    chart = helm.Chart.load(str(CHART_DIR))
    try:
        release = f"vap-{secrets.token_hex(3)}"
        manifests = [
            m
            for m in render_chart(chart, {}, release=release, namespace="gatectl-system")
            if m["kind"] in KINDS
        ]
    finally:
        chart.close()
    assert sorted(m["kind"] for m in manifests) == sorted(KINDS)
    admission = client.AdmissionregistrationV1Api(admin_client)
    policy = next(m for m in manifests if m["kind"] == KINDS[0])
    binding = next(m for m in manifests if m["kind"] == KINDS[1])
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    try:
        yield str(policy["metadata"]["name"])
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])


def grant_patch(admin_client: Any, namespace: str, service_account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "approver"},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": [PLURAL],
                    "verbs": ["get", "list", "patch", "create"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "approver"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "approver",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
            ],
        },
    )


def annotate(api_client: Any, namespace: str, name: str, annotations: dict[str, str]) -> None:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": annotations}}
    )


def wait_until_enforced(api_client: Any, namespace: str) -> None:
    """Policies take effect a moment after creation: create forged probes until one is refused."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = ticket_triage_gate(f"probe-{secrets.token_hex(3)}")
        probe["metadata"]["annotations"] = {"gatectl.io/approved-by": "nobody-at-all"}
        try:
            create_gate(api_client, namespace, probe)
        except ApiException:
            return
        time.sleep(0.5)
    raise AssertionError("the ValidatingAdmissionPolicy never took effect")


def test_an_approval_must_name_the_user_who_writes_it(
    real_kube: ControlPlane,
    admin_client: Any,
    admission_policy: str,
) -> None:
    namespace = f"vap-{secrets.token_hex(3)}"
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": namespace}})
    create_gate(admin_client, namespace, ticket_triage_gate("triage"))
    token = service_account_token(admin_client, namespace, "approver")
    grant_patch(admin_client, namespace, "approver")
    kubeconfig = real_kube.write_kubeconfig(token, user="approver")
    approver = config.new_client_from_config(config_file=str(kubeconfig))
    me = f"system:serviceaccount:{namespace}:approver"
    try:
        wait_until_enforced(approver, namespace)

        with pytest.raises(ApiException) as forged:
            annotate(approver, namespace, "triage", {"gatectl.io/approved-by": "alice"})
        assert forged.value.status in (403, 422), forged.value.body
        assert (
            f"gatectl.io/approved-by must name the user who writes it ({me}), not alice:"
            " use gatectl approve, reset or fallback"
        ) in error_message(forged.value)

        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gatectl",
                "approve",
                "triage",
                "--kubeconfig",
                str(kubeconfig),
                "-n",
                namespace,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        gate = client.CustomObjectsApi(admin_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "triage"
        )
        assert gate["metadata"]["annotations"]["gatectl.io/approved-by"] == me

        # Someone else edits the gate: the approval annotation, left as it was, is accepted.
        client.CustomObjectsApi(admin_client).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "triage", {"spec": {"min_samples": 200}}
        )
        # ...but nobody may rewrite it to another name, the admin included.
        with pytest.raises(ApiException) as rewritten:
            annotate(admin_client, namespace, "triage", {"gatectl.io/reset-by": "alice"})
        assert "gatectl.io/reset-by must name the user who writes it (admin)" in error_message(
            rewritten.value
        )
    finally:
        approver.close()
