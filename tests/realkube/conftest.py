"""Fixtures of the real-Kubernetes tests: the session's etcd + kube-apiserver and an admin client.

``real_kube`` comes from ``realkube.fixtures`` (shared with the e2e tests: one
control plane per session, the chart's CRD installed); see there for how it
is built, and skipped outside CI or failed under ``CI=true`` when it cannot be.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import config
from support.controlplane import ControlPlane

from realkube.fixtures import CRD_FILE, install_crd, real_kube

__all__ = ["CRD_FILE", "admin_client", "real_kube", "releasegate_crd"]


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
    return install_crd(admin_client, yaml.safe_load(CRD_FILE.read_text()))
