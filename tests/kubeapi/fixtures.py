"""The ``kube_api`` fixture: the in-memory test API server, or a real kube-apiserver.

``kube_api`` takes one parameter, the API server behind it:

- ``"fake"`` (the default when a test is not parametrised): the test API server
  of this package, which can inject faults (``target.require_server()``);
- ``"real"``: the session's real etcd + kube-apiserver (``realkube.fixtures``,
  the chart's CRDs installed), or, with ``GATECTL_TEST_KUBECONFIG`` set, the
  cluster that kubeconfig names (install the CRDs there first).

Either way the test gets a fresh namespace of its own. ``tests/e2e/conftest.py``
runs every e2e test that uses ``kube_api`` on both, except those marked
``@pytest.mark.fake_api_only`` (fault injection). Use it from a ``conftest.py``
or test module: ``from kubeapi.fixtures import kube_api  # noqa: F401``.
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

__all__ = ["BACKENDS", "ENV", "KubeTarget", "kube_api"]

ENV = "GATECTL_TEST_KUBECONFIG"
BACKENDS = ("fake", "real")
FAST_RETRY = RetryPolicy(delays=(0.01, 0.02, 0.05, 0.1))


@dataclass
class KubeTarget:
    """What a test talks to: a client, a namespace of its own, and the fake server if any."""

    api_client: Any
    namespace: str
    kubeconfig: str
    server: KubeAPIServer | None

    @property
    def real(self) -> bool:
        """True against a real kube-apiserver (no fault injection, real RBAC and admission)."""
        return self.server is None

    def resources(self, kind: ResourceKind, **kwargs: Any) -> Resources:
        kwargs.setdefault("retry", FAST_RETRY)
        return Resources(self.api_client, kind, **kwargs)

    def require_server(self) -> KubeAPIServer:
        """The fake server; a test that needs it must be marked ``fake_api_only``."""
        if self.server is None:
            pytest.fail(
                "this test injects faults into the test API server: mark it"
                " @pytest.mark.fake_api_only so that it runs on the fake server only",
                pytrace=False,
            )
        return self.server

    def require_crd(self, plural_group: str) -> None:
        """Fail when a real cluster lacks the CRD (the test server serves gatectl's built in)."""
        try:
            self.resources(CRDS).get(plural_group)
        except NotFoundError:
            if self.server is None:
                pytest.fail(f"CRD {plural_group} is not installed in the cluster", pytrace=False)


def _create_namespace(client: Any, name: str) -> Resources:
    namespaces = Resources(client, NAMESPACES)
    namespaces.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return namespaces


@pytest.fixture
def kube_api(request: pytest.FixtureRequest) -> Iterator[KubeTarget]:
    """A ``KubeTarget`` in a fresh namespace on the server ``request.param`` names."""
    backend = getattr(request, "param", "fake")
    if backend not in BACKENDS:
        raise ValueError(f"kube_api: unknown backend {backend!r}, expected one of {BACKENDS}")
    namespace = f"gatectl-test-{secrets.token_hex(3)}"
    if backend == "fake":
        with KubeAPIServer(bookmark_interval=0.1) as server:
            client = load_api_client(kubeconfig=server.kubeconfig_path)
            _create_namespace(client, namespace)
            try:
                yield KubeTarget(client, namespace, server.kubeconfig_path, server)
            finally:
                client.close()
        return
    external = os.environ.get(ENV)
    if external:
        client = load_api_client(kubeconfig=external)
        namespaces = _create_namespace(client, namespace)
        try:
            yield KubeTarget(client, namespace, external, None)
        finally:
            namespaces.delete(namespace)
            client.close()
        return
    # The session's control plane runs no namespace controller: a deleted namespace
    # would stay Terminating with everything in it, so it is left as it is.
    plane = request.getfixturevalue("real_kube")
    client = load_api_client(kubeconfig=str(plane.kubeconfig))
    _create_namespace(client, namespace)
    try:
        yield KubeTarget(client, namespace, str(plane.kubeconfig), None)
    finally:
        client.close()
