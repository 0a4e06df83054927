"""A gate's own Prometheus credentials, read from its namespace: values, errors, caching."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gatectl.engine.credentials import GateCredentials, KubeSecretReader, credentials_for
from gatectl.errors import ForbiddenError, GatectlError, NotFoundError
from gatectl.policy.models import Gate, GateSpec


def gate(namespace: str = "support", **prometheus: Any) -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "prometheus": prometheus,
        }
    )
    return Gate(name="triage", namespace=namespace, spec=spec)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Objects:
    """Secrets and ConfigMaps by (kind, namespace, name); counts reads."""

    def __init__(self, objects: dict[tuple[str, str, str], Any]) -> None:
        self.objects = objects
        self.reads = 0

    def resources(self, kind: str) -> Any:
        objects = self

        class Kind:
            def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any]:
                objects.reads += 1
                found = objects.objects.get((kind, str(namespace), name))
                if isinstance(found, Exception):
                    raise found
                if found is None:
                    raise NotFoundError("not found", status=404)
                return {"data": found}

        return Kind()


OBJECTS = {
    ("secrets", "support", "prom"): {"token": b64("team-token\n"), "bad": "%%%"},
    ("secrets", "support", "ca"): {"ca.crt": b64("-----BEGIN CERTIFICATE-----\n")},
    ("configmaps", "support", "ca"): {"ca.crt": "-----BEGIN CERTIFICATE-----\n"},
    ("secrets", "billing", "prom"): {"token": b64("billing-token")},
    ("secrets", "support", "locked"): ForbiddenError("forbidden", status=403),
}


def reader(clock: list[float] | None = None) -> tuple[KubeSecretReader, Objects]:
    objects = Objects(OBJECTS)
    now = clock if clock is not None else [0.0]
    return KubeSecretReader(objects.resources, ttl=30.0, clock=lambda: now[0]), objects


def test_no_reference_means_no_credentials_and_no_read() -> None:
    kube, objects = reader()
    assert credentials_for(gate(), kube) == GateCredentials()
    assert objects.reads == 0


def test_a_token_and_a_ca_are_read_from_the_gates_own_namespace() -> None:
    kube, _ = reader()
    creds = credentials_for(
        gate(
            auth={"secretRef": {"name": "prom", "key": "token"}},
            ca={"configMapRef": {"name": "ca", "key": "ca.crt"}},
        ),
        kube,
    )
    assert creds == GateCredentials(
        bearer_token="team-token\n", ca_data="-----BEGIN CERTIFICATE-----\n"
    )


def test_a_gate_reads_only_its_own_namespace() -> None:
    kube, _ = reader()
    creds = credentials_for(
        gate("billing", auth={"secretRef": {"name": "prom", "key": "token"}}), kube
    )
    assert creds.bearer_token == "billing-token"
    with pytest.raises(GatectlError, match=r"^Secret billing/ca not found$"):
        credentials_for(gate("billing", ca={"secretRef": {"name": "ca", "key": "ca.crt"}}), kube)


@pytest.mark.parametrize(
    ("prometheus", "message"),
    [
        pytest.param(
            {"auth": {"secretRef": {"name": "nope", "key": "token"}}},
            "Secret support/nope not found",
            id="missing-secret",
        ),
        pytest.param(
            {"auth": {"secretRef": {"name": "prom", "key": "password"}}},
            "Secret support/prom has no key 'password'",
            id="missing-key",
        ),
        pytest.param(
            {"auth": {"secretRef": {"name": "prom", "key": "bad"}}},
            "Secret support/prom: key 'bad' is not base64 UTF-8 text",
            id="not-base64",
        ),
        pytest.param(
            {"auth": {"secretRef": {"name": "locked", "key": "token"}}},
            "the controller may not read Secret support/locked (RBAC: get secrets in support)",
            id="forbidden",
        ),
        pytest.param(
            {"ca": {"configMapRef": {"name": "nope", "key": "ca.crt"}}},
            "ConfigMap support/nope not found",
            id="missing-configmap",
        ),
    ],
)
def test_what_cannot_be_read_is_named_never_shown(prometheus: dict[str, Any], message: str) -> None:
    kube, _ = reader()
    with pytest.raises(GatectlError) as caught:
        credentials_for(gate(**prometheus), kube)
    assert str(caught.value) == message
    assert "team-token" not in str(caught.value)


def test_outside_kubernetes_a_reference_cannot_be_read() -> None:
    with pytest.raises(GatectlError, match="only `gatectl run --kubernetes` reads"):
        credentials_for(gate(auth={"secretRef": {"name": "prom", "key": "token"}}), None)


def test_reads_are_cached_for_the_ttl_then_read_again() -> None:
    clock = [0.0]
    kube, objects = reader(clock)
    g = gate(auth={"secretRef": {"name": "prom", "key": "token"}})
    for _ in range(100):
        credentials_for(g, kube)
    assert objects.reads == 1
    clock[0] = 31.0
    credentials_for(g, kube)
    assert objects.reads == 2


def test_fingerprints_tell_credentials_apart_without_holding_them() -> None:
    one = GateCredentials(bearer_token="a")
    assert one.fingerprint == GateCredentials(bearer_token="a").fingerprint
    assert one.fingerprint != GateCredentials(bearer_token="b").fingerprint
    assert one.fingerprint != GateCredentials(ca_data="a").fingerprint
