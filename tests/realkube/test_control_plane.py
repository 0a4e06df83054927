"""The chart's CRD, validation and RBAC against a real kube-apiserver (no fake server).

What only a real API server checks: that the CRD's schema is structural and
accepted (Established), that its OpenAPI validation rejects a bad
ReleaseGate with 422 naming the field, that a ServiceAccount's TokenRequest
token is authorized by RBAC (403 before a Role grants access, 200 after) and
that a ValidatingAdmissionPolicy applies to ReleaseGates.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.controlplane import ControlPlane

pytestmark = pytest.mark.slow

GROUP, VERSION, PLURAL = "gatectl.io", "v1alpha1", "releasegates"
POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "ticket-triage.yaml"
T = TypeVar("T")


def ticket_triage_gate(name: str, **overrides: Any) -> dict[str, Any]:
    """A ReleaseGate whose spec is ``policies/ticket-triage.yaml``'s gate, with overrides."""
    spec = dict(yaml.safe_load(POLICY_FILE.read_text())["workflow_release_gate"])
    spec.update(overrides)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReleaseGate",
        "metadata": {"name": name},
        "spec": spec,
    }


def eventually(attempt: Callable[[], T], *, timeout: float = 15.0) -> T:
    """``attempt()``'s result once it stops raising (caches in the server settle)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except (ApiException, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def error_message(exc: ApiException) -> str:
    return str(json.loads(exc.body).get("message", exc.body))


@pytest.fixture
def namespace(admin_client: Any) -> str:
    """A fresh namespace (left behind: no namespace controller runs to empty it)."""
    name = f"realkube-{secrets.token_hex(3)}"
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": name}})
    return name


def create_gate(api_client: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return created


def creation_error(api_client: Any, namespace: str, body: dict[str, Any]) -> ApiException:
    """The API error creating ``body``; an AssertionError (deleting it) if it was created."""
    try:
        create_gate(api_client, namespace, body)
    except ApiException as exc:
        return exc
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body["metadata"]["name"]
    )
    raise AssertionError(f"{body['metadata']['name']} was created")


def test_the_chart_crd_is_established_with_a_structural_schema(
    releasegate_crd: dict[str, Any],
) -> None:
    conditions = {c["type"]: c for c in releasegate_crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    assert "NonStructuralSchema" not in conditions
    assert releasegate_crd["status"]["acceptedNames"]["shortNames"] == ["rg"]


def test_a_valid_releasegate_is_stored_as_sent(
    admin_client: Any, releasegate_crd: dict[str, Any], namespace: str
) -> None:
    body = ticket_triage_gate("ticket-triage")
    # Established: served, but the handler may lag a moment behind the condition.
    created = eventually(lambda: create_gate(admin_client, namespace, body))
    assert created["metadata"]["uid"]
    read = client.CustomObjectsApi(admin_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "ticket-triage"
    )
    # Nothing pruned: every field of the policy is in the schema or preserved.
    assert read["spec"] == body["spec"]
    assert read["spec"]["canary_traffic"] == 0.1
    assert read["spec"]["promotion_window_hours"] == 48


DROP = object()  # an override that removes the field


@pytest.mark.parametrize(
    ("overrides", "field", "why"),
    [
        ({"canary_traffic": "abc"}, "spec.canary_traffic", 'must be of type number: "string"'),
        ({"canary_traffic": 1.5}, "spec.canary_traffic", "less than or equal to 1"),
        ({"success_criteria": DROP}, "spec.success_criteria", "Required value"),
        ({"fallback_mode": "sideways"}, "spec.fallback_mode", "Unsupported value"),
    ],
    ids=["not-a-number", "above-one", "missing-required", "not-in-enum"],
)
@pytest.mark.usefixtures("releasegate_crd")
def test_an_invalid_releasegate_is_rejected_with_422_naming_the_field(
    admin_client: Any, namespace: str, overrides: dict[str, Any], field: str, why: str
) -> None:
    body = ticket_triage_gate("bad-gate", **overrides)
    body["spec"] = {key: value for key, value in body["spec"].items() if value is not DROP}

    def rejected() -> ApiException:
        exc = creation_error(admin_client, namespace, body)
        assert exc.status == 422, exc.body  # not 404: the CRD's handler is up
        return exc

    exc = eventually(rejected)
    message = error_message(exc)
    assert field in message
    assert why in message
    causes = json.loads(exc.body)["details"]["causes"]
    assert field in {cause["field"] for cause in causes}


def service_account_token(admin_client: Any, namespace: str, name: str) -> str:
    """A token for a new ServiceAccount, from the TokenRequest API (nothing stored)."""
    core = client.CoreV1Api(admin_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    # Audiences left empty: the API server's own (the issuer) are filled in.
    request = {"spec": {"audiences": [], "expirationSeconds": 600}}
    issued = core.create_namespaced_service_account_token(name, namespace, request)
    token: str = issued.status.token
    return token


def grant_read(admin_client: Any, namespace: str, service_account: str) -> None:
    """A Role that reads ReleaseGates, bound to the ServiceAccount."""
    rbac = client.RbacAuthorizationV1Api(admin_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "releasegate-reader"},
            "rules": [
                {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "releasegate-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "releasegate-reader",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
            ],
        },
    )


def test_a_serviceaccount_token_is_denied_until_a_role_grants_it(
    real_kube: ControlPlane, admin_client: Any, releasegate_crd: dict[str, Any], namespace: str
) -> None:
    eventually(lambda: create_gate(admin_client, namespace, ticket_triage_gate("visible")))
    token = service_account_token(admin_client, namespace, "reader")
    kubeconfig = real_kube.write_kubeconfig(token, user="reader")
    reader_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        reader = client.CustomObjectsApi(reader_client)

        with pytest.raises(ApiException) as denied:
            reader.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        assert denied.value.status == 403, denied.value.body
        message = error_message(denied.value)
        assert f"system:serviceaccount:{namespace}:reader" in message
        assert 'cannot list resource "releasegates"' in message

        grant_read(admin_client, namespace, "reader")

        def listed() -> list[str]:
            items = reader.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            return [item["metadata"]["name"] for item in items["items"]]

        assert eventually(listed) == ["visible"]
        # Only what the Role grants: reading, in this namespace.
        with pytest.raises(ApiException) as still_denied:
            create_gate(reader_client, namespace, ticket_triage_gate("not-allowed"))
        assert still_denied.value.status == 403
        with pytest.raises(ApiException) as elsewhere:
            reader.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        assert elsewhere.value.status == 403
    finally:
        reader_client.close()


def test_a_validating_admission_policy_applies_to_releasegates(
    admin_client: Any, releasegate_crd: dict[str, Any], namespace: str
) -> None:
    admission = client.AdmissionregistrationV1Api(admin_client)
    name = f"gates-start-small-{namespace}"
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": [VERSION],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": [PLURAL],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "object.spec.canary_traffic <= 0.25",
                        "message": "canary_traffic above 0.25 needs a review",
                    }
                ],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )
    try:

        def denied() -> str:
            big = ticket_triage_gate("big", canary_traffic=0.5)
            exc = creation_error(admin_client, namespace, big)
            assert exc.status == 422, exc.body
            return error_message(exc)

        # The policy reaches the admission plugin asynchronously.
        assert "canary_traffic above 0.25 needs a review" in eventually(denied)
        assert create_gate(admin_client, namespace, ticket_triage_gate("small"))["spec"]
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
