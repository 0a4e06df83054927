"""Fixtures of the real-Kubernetes tests: one etcd + kube-apiserver per session.

``real_kube`` builds the binaries if need be (``scripts/kube-binaries.sh``:
minutes the first time, then cached) and starts a control plane on 127.0.0.1
once per session. If that fails, the tests are skipped on a developer machine
but fail under ``CI=true``: CI must really run them. ``GATECTL_REAL_KUBE=0``
skips them outside CI without building anything.
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
from support.controlplane import ControlPlane, ControlPlaneError, find_binaries

__all__ = ["CRD_FILE", "admin_client", "real_kube", "releasegate_crd"]

CRD_FILE = Path(__file__).resolve().parents[2] / "charts/gatectl/crds/releasegates.gatectl.io.yaml"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def real_kube(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    """A started etcd + kube-apiserver (admin kubeconfig at ``.kubeconfig``)."""
    if not _in_ci() and os.environ.get("GATECTL_REAL_KUBE", "").strip() == "0":
        pytest.skip("GATECTL_REAL_KUBE=0: no real control plane")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        # A first build takes minutes: let its progress lines reach the terminal.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            binaries = find_binaries()
        plane = ControlPlane(binaries).start()
    except ControlPlaneError as exc:
        message = f"no real Kubernetes control plane: {exc}"
        if _in_ci():
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def admin_client(real_kube: ControlPlane) -> Iterator[Any]:
    """The official client's ``ApiClient`` as the admin (``system:masters``)."""
    api_client = config.new_client_from_config(config_file=str(real_kube.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture(scope="session")
def releasegate_crd(admin_client: Any) -> dict[str, Any]:
    """The chart's ReleaseGate CRD, applied and Established; returns it as served."""
    api = client.ApiextensionsV1Api(admin_client)
    manifest = yaml.safe_load(CRD_FILE.read_text())
    # Raw JSON both ways: the client's models need not know every CRD field.
    api.create_custom_resource_definition(body=manifest, _preload_content=False)
    deadline = time.monotonic() + 30
    while True:
        served = json.loads(
            api.read_custom_resource_definition(
                manifest["metadata"]["name"], _preload_content=False
            ).data
        )
        conditions = {
            c["type"]: c["status"] for c in (served.get("status") or {}).get("conditions") or []
        }
        if conditions.get("Established") == "True":
            return dict(served)
        if time.monotonic() > deadline:
            pytest.fail(f"the CRD was not Established within 30s: {conditions}", pytrace=False)
        time.sleep(0.1)
