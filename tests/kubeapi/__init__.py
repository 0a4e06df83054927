"""A test Kubernetes API server that the real ``kubernetes`` client talks to over HTTP.

``KubeAPIServer`` (``server.py``) serves core/v1 configmaps, events,
namespaces, secrets and services; apps/v1 deployments (with ``/scale``);
coordination.k8s.io/v1 leases; events.k8s.io/v1 events;
gateway.networking.k8s.io/v1 httproutes; gatectl.io/v1alpha1 releasegates;
and apiextensions.k8s.io/v1 CRDs (creating one serves its resource and,
like a real cluster, prunes fields its schema does not declare).
``fixtures.py`` holds the ``kube_api`` fixture that yields this server or,
with ``GATECTL_TEST_KUBECONFIG`` set, a real cluster.
Run ``python -m kubeapi`` (with ``tests/`` on the path) to serve one by hand.
"""

from .server import Fault, KubeAPIServer, Request
from .store import ApiError

__all__ = ["ApiError", "Fault", "KubeAPIServer", "Request"]
