"""One real control plane per test session, shared by every test package that asks for it.

``real_kube`` (session scope) builds the binaries if need be
(``scripts/kube-binaries.sh``: minutes the first time, then cached), starts
etcd + kube-apiserver on 127.0.0.1 once, and installs the CRDs the operator's
tests need, Established: the chart's ReleaseGate CRD and a stand-in for
Gateway API's HTTPRoute (see ``HTTPROUTE_CRD``). A conftest imports it
(``from realkube.fixtures import real_kube``); when several conftests do,
each gets its own fixture definition, so the plane itself is kept here and
counted: the first user starts it, the last one stops it.

If it cannot start, the test is skipped on a developer machine but fails
under ``CI=true``: CI must really run it. ``GATECTL_REAL_KUBE=0`` skips these
tests outside CI without building anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.controlplane import ControlPlane, ControlPlaneError, find_binaries

__all__ = [
    "CRD_FILE",
    "HTTPROUTE_CRD",
    "in_ci",
    "install_crd",
    "real_kube",
]

CRD_FILE = Path(__file__).resolve().parents[2] / "charts/gatectl/crds/releasegates.gatectl.io.yaml"

_INT32 = {"type": "integer", "format": "int32"}
HTTPROUTE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "httproutes.gateway.networking.k8s.io",
        # *.k8s.io groups are protected: their CRDs must name the approved API review.
        "annotations": {
            "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
        },
    },
    "spec": {
        "group": "gateway.networking.k8s.io",
        "names": {
            "kind": "HTTPRoute",
            "listKind": "HTTPRouteList",
            "plural": "httproutes",
            "singular": "httproute",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                                "properties": {
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                            "properties": {
                                                "backendRefs": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "required": ["name"],
                                                        "properties": {
                                                            "group": {"type": "string"},
                                                            "kind": {"type": "string"},
                                                            "name": {
                                                                "type": "string",
                                                                "minLength": 1,
                                                                "maxLength": 253,
                                                            },
                                                            "namespace": {"type": "string"},
                                                            "port": {
                                                                **_INT32,
                                                                "minimum": 1,
                                                                "maximum": 65535,
                                                            },
                                                            "weight": {
                                                                **_INT32,
                                                                "minimum": 0,
                                                                "maximum": 1000000,
                                                                "default": 1,
                                                            },
                                                        },
                                                    },
                                                }
                                            },
                                        },
                                    }
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}
"""Gateway API's HTTPRoute, cut to what gatectl touches: ``spec.rules[].backendRefs[]`` as
Gateway API v1 types them (``weight`` an int32 in 0..1000000, so a float weight is refused);
everything else is kept unvalidated."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def install_crd(
    api_client: Any, manifest: dict[str, Any], *, timeout: float = 30.0
) -> dict[str, Any]:
    """Create ``manifest`` (or keep the one there) and wait until it is Established."""
    api = client.ApiextensionsV1Api(api_client)
    # Raw JSON both ways: the client's models need not know every CRD field.
    try:
        api.create_custom_resource_definition(body=manifest, _preload_content=False)
    except ApiException as exc:
        if exc.status != 409:  # 409: installed already (by another test package)
            raise
    deadline = time.monotonic() + timeout
    while True:
        served: dict[str, Any] = json.loads(
            api.read_custom_resource_definition(
                manifest["metadata"]["name"], _preload_content=False
            ).data
        )
        conditions = {
            c["type"]: c["status"] for c in (served.get("status") or {}).get("conditions") or []
        }
        if conditions.get("Established") == "True":
            return served
        if time.monotonic() > deadline:
            raise ControlPlaneError(
                f"CRD {manifest['metadata']['name']} not Established within {timeout:g}s:"
                f" {conditions}"
            )
        time.sleep(0.1)


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)


class _Shared:
    """The session's control plane, started by the first user, stopped by the last."""

    plane: ControlPlane | None = None
    error: str | None = None
    users = 0

    @classmethod
    def acquire(cls, pytestconfig: pytest.Config) -> ControlPlane:
        if cls.plane is None and cls.error is None:
            try:
                cls.plane = cls._start(pytestconfig)
            except ControlPlaneError as exc:
                cls.error = str(exc)  # said once; not built again for every test
            except ApiException as exc:
                cls.error = f"installing the CRDs: {exc.status} {_message(exc)}"
        if cls.plane is not None:
            cls.users += 1
            return cls.plane
        message = f"no real Kubernetes control plane: {cls.error}"
        if in_ci():
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)

    @classmethod
    def release(cls) -> None:
        cls.users -= 1
        if cls.users <= 0 and cls.plane is not None:
            cls.plane.stop()
            cls.plane = None

    @staticmethod
    def _start(pytestconfig: pytest.Config) -> ControlPlane:
        capture = pytestconfig.pluginmanager.getplugin("capturemanager")
        # A first build takes minutes: let its progress lines reach the terminal.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            binaries = find_binaries()
        plane = ControlPlane(binaries).start()
        try:
            admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
            try:
                install_crd(admin, yaml.safe_load(CRD_FILE.read_text()))
                install_crd(admin, HTTPROUTE_CRD)
            finally:
                admin.close()
        except BaseException:
            plane.stop()
            raise
        return plane


@pytest.fixture(scope="session")
def real_kube(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    """A started etcd + kube-apiserver with the CRDs installed (admin kubeconfig: ``.kubeconfig``)."""
    if not in_ci() and os.environ.get("GATECTL_REAL_KUBE", "").strip() == "0":
        pytest.skip("GATECTL_REAL_KUBE=0: no real control plane")
    plane = _Shared.acquire(pytestconfig)
    try:
        yield plane
    finally:
        _Shared.release()
