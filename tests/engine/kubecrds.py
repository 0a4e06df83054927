"""Stand-in CRDs for the traffic objects gatectl writes (Istio, OpenFeature), and a resolver.

Only the shape the actuators touch matters, so each CRD keeps ``spec`` open
(``x-kubernetes-preserve-unknown-fields``), as the real ones do for the parts
gatectl writes. ``actuators_for`` wires ``Actuators`` to a cluster the way
``gatectl run --kubernetes`` does (``gatectl.engine.loop``).
"""

from __future__ import annotations

import time
from typing import Any

from realkube.fixtures import install_crd

from gatectl.adapters.kube import RetryPolicy
from gatectl.adapters.kube.client import (
    CONFIGMAPS,
    FEATUREFLAGS,
    ResourceKind,
    Resources,
    discover_kind,
)
from gatectl.engine.actuators import Actuators, ResourceAPI
from gatectl.errors import NotFoundError

__all__ = ["FEATUREFLAG_CRD", "VIRTUALSERVICE_CRD", "actuators_for", "install"]

FAST = RetryPolicy(delays=(0.01, 0.02, 0.05))


def _crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


VIRTUALSERVICE_CRD = _crd("networking.istio.io", "v1", "VirtualService", "virtualservices")
FEATUREFLAG_CRD = _crd("core.openfeature.dev", "v1beta1", "FeatureFlag", "featureflags")


def install(api_client: Any, crd: dict[str, Any]) -> None:
    """Install ``crd`` and wait until discovery serves its kind (the actuator looks it up)."""
    install_crd(api_client, crd)
    spec = crd["spec"]
    api_version = f"{spec['group']}/{spec['versions'][0]['name']}"
    deadline = time.monotonic() + 30
    while True:
        try:
            discover_kind(api_client, api_version, spec["names"]["kind"])
            return
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def actuators_for(api_client: Any) -> Actuators:
    """``Actuators`` for Kubernetes mode on ``api_client``, as ``gatectl run`` builds them."""
    kinds: dict[str, ResourceKind] = {"configmaps": CONFIGMAPS, "featureflags": FEATUREFLAGS}

    def resources(kind: str) -> ResourceAPI:
        if kind not in kinds and kind.startswith("apply:"):
            _, api_version, object_kind = kind.split(":", 2)
            kinds[kind] = discover_kind(api_client, api_version, object_kind)
        return Resources(api_client, kinds[kind], retry=FAST)

    return Actuators(resources=resources, kubernetes=True)
