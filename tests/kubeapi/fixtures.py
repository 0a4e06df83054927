"""The ``kube_api`` fixture: the in-memory test API server, or a real cluster when asked.

With ``GATECTL_TEST_KUBECONFIG`` set, tests run against that cluster in a
fresh namespace (deleted afterwards) and tests that need the fake server's
fault injection call ``target.require_server()`` and are skipped. Use it from
a ``conftest.py``: ``from kubeapi.fixtures import kube_api  # noqa: F401``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gatectl.adapters.kube import (
    CRDS,
    NAMESPACES,
    ResourceKind,
    Resources,
    RetryPolicy,
    load_api_client,
)
from gatectl.errors import NotFoundError

from .server import KubeAPIServer

__all__ = ["KubeTarget", "kube_api"]

ENV = "GATECTL_TEST_KUBECONFIG"
FAST_RETRY = RetryPolicy(delays=(0.01, 0.02, 0.05, 0.1))


@dataclass
class KubeTarget:
    """What a test talks to: a client, a namespace of its own, and the fake server if any."""

    api_client: Any
    namespace: str
    kubeconfig: str
    server: KubeAPIServer | None

    def resources(self, kind: ResourceKind, **kwargs: Any) -> Resources:
        kwargs.setdefault("retry", FAST_RETRY)
        return Resources(self.api_client, kind, **kwargs)

    def require_server(self) -> KubeAPIServer:
        """The fake server; skips the test against a real cluster (fault injection, compaction)."""
        if self.server is None:
            pytest.skip("needs the test API server (fault injection); running on a real cluster")
        return self.server

    def require_crd(self, plural_group: str) -> None:
        """Skip when a real cluster lacks the CRD (the test server serves gatectl's built in)."""
        try:
            self.resources(CRDS).get(plural_group)
        except NotFoundError:
            if self.server is None:
                pytest.skip(f"CRD {plural_group} is not installed in the cluster")


@pytest.fixture
def kube_api() -> Iterator[KubeTarget]:
    """A ``KubeTarget`` in a fresh namespace; the server (or namespace) is gone afterwards."""
    namespace = f"gatectl-test-{secrets.token_hex(3)}"
    kubeconfig = os.environ.get(ENV)
    if kubeconfig:
        client = load_api_client(kubeconfig=kubeconfig)
        namespaces = Resources(client, NAMESPACES)
        namespaces.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        try:
            yield KubeTarget(client, namespace, kubeconfig, None)
        finally:
            namespaces.delete(namespace)
            client.close()
        return
    with KubeAPIServer(bookmark_interval=0.1) as server:
        client = load_api_client(kubeconfig=server.kubeconfig_path)
        Resources(client, NAMESPACES).create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        try:
            yield KubeTarget(client, namespace, server.kubeconfig_path, server)
        finally:
            client.close()
